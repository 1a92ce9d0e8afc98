package loadgen

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"
)

// refTarget serves a reference milter (github.com/d--j/go-milter's server)
// on a unix socket for the test.
func refTarget(t *testing.T, o RefOptions) Target {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ref.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewRefServer(o)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return Target{Name: "ref", Network: "unix", Address: sock}
}

func testWorld(t *testing.T) *World {
	t.Helper()
	w, err := LoadWorld("", nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// 200 sessions against a do-nothing milter with protocol v6 and with v2 (the
// milter answering v2 to Postfix's v6, as heloguard does today, and Postfix
// offering v2): every session completes, every identity is accepted.
func TestRunAgainstReference(t *testing.T) {
	w := testWorld(t)
	for _, tc := range []struct {
		name            string
		offer, answered uint32
		client          string
	}{
		{"v6", 6, 6, ClientLean},
		{"v2 milter", 6, 2, ClientLean},
		{"v2 offered", 2, 2, ClientLean},
		{"v6 go-milter client", 6, 6, ClientGoMilter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := refTarget(t, RefOptions{Version: tc.answered, Actions: AddHeaders, Protocol: NRHeader | NoUnknown | NoData,
				Macros: [numStages][]string{stageConnect: {"j", "{client_addr}"}}})
			r, err := Run(context.Background(), Options{Target: target, World: w, Workers: 4, Sessions: 200, Headers: 20,
				Version: tc.offer, Timeout: 5 * time.Second, Client: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			if r.Sessions != 200 || r.Errors != 0 {
				t.Fatalf("%d sessions, %d errors: %+v", r.Sessions, r.Errors, r.ErrorSamples)
			}
			total := 0
			for id, vs := range r.Verdicts {
				if len(vs) != 1 || vs["accepted"] == 0 {
					t.Errorf("%s: %v", id, vs)
				}
				total += vs["accepted"]
			}
			if total != 200 || len(r.Verdicts) != len(w.Identities) {
				t.Errorf("verdicts %v", r.Verdicts)
			}
			if r.Whole.N != 200 || r.Whole.P50 <= 0 || r.Whole.P99 < r.Whole.P50 || r.Stages[StageHeaders].N != 200 {
				t.Errorf("latencies %+v, headers %+v", r.Whole, r.Stages[StageHeaders])
			}
			if tc.client == ClientLean && (r.Negotiated == nil || r.Negotiated.Version != tc.answered || r.Negotiated.Protocol&NRHeader == 0) {
				t.Errorf("negotiated %v", r.Negotiated)
			}
		})
	}
}

// The library's own do-nothing milter, as it comes: protocol 6 and 2, and
// with SMFIP_SKIP, which it answers to RCPT, header fields and body chunks.
func TestRunAgainstNoOpMilter(t *testing.T) {
	w := testWorld(t)
	v2 := milter.WithNegotiationCallback(func(_, _ uint32, _, acts milter.OptAction, _, proto milter.OptProtocol, _ milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
		return 2, acts, proto, milter.DataSize64K, nil
	})
	for _, tc := range []struct {
		name    string
		opts    []milter.Option
		version uint32
	}{
		{"v6", nil, 6},
		{"v2", []milter.Option{v2}, 2},
		{"v6 skip", []milter.Option{milter.WithProtocol(milter.OptSkip)}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "noop.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			srv := milter.NewServer(append(tc.opts, milter.WithMilter(func() milter.Milter { return milter.NoOpMilter{} }))...)
			go srv.Serve(ln)
			defer srv.Close()
			r, err := Run(context.Background(), Options{Target: Target{Name: "noop", Network: "unix", Address: sock}, World: w,
				Workers: 4, Sessions: 200, Headers: 4, Version: 6, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r.Sessions != 200 || r.Errors != 0 {
				t.Fatalf("%d sessions, %d errors: %+v", r.Sessions, r.Errors, r.ErrorSamples)
			}
			for id, vs := range r.Verdicts {
				if len(vs) != 1 || vs["accepted"] == 0 {
					t.Errorf("%s: %v", id, vs)
				}
			}
			if r.Negotiated.Version != tc.version {
				t.Errorf("negotiated %s", r.Negotiated)
			}
		})
	}
}

// countingMilter counts header events and, having negotiated NR_HDR, sends
// no reply to them: a client that waited for one would never finish.
type countingMilter struct {
	refMilter
	headers *atomic.Int64
}

func (c countingMilter) Header(string, string, milter.Modifier) (*milter.Response, error) {
	c.headers.Add(1)
	return milter.RespContinue, nil
}

func TestNoHeaderReplyHonoured(t *testing.T) {
	var headers atomic.Int64
	sock := filepath.Join(t.TempDir(), "nr.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := milter.NewServer(milter.WithMilter(func() milter.Milter { return countingMilter{headers: &headers} }),
		milter.WithProtocols(milter.OptNoHeaderReply|milter.OptNoEOHReply|milter.OptNoRcptReply))
	go srv.Serve(ln)
	defer srv.Close()
	w := testWorld(t)
	start := time.Now()
	r, err := Run(context.Background(), Options{Target: Target{Name: "nr", Network: "unix", Address: sock}, World: w,
		Workers: 2, Sessions: 50, Headers: 20, Version: 6, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.Sessions != 50 {
		t.Fatalf("%d sessions, %d errors: %+v", r.Sessions, r.Errors, r.ErrorSamples)
	}
	if n := headers.Load(); n != 50*20 {
		t.Errorf("the milter got %d header events, want %d", n, 50*20)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("50 sessions took %s: the client waited for replies", d)
	}
	if r.Negotiated.Protocol != NRHeader|NREOH|NRRcpt {
		t.Errorf("negotiated %s", r.Negotiated)
	}
}

// A milter that refuses both recipients with a 550 'y' reply: the sessions
// end with ABORT and QUIT and are counted as refused at RCPT.
func TestRunRefusedAtRcpt(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(6, 0, 0), replies: map[byte][][]byte{cmdRcpt: {spkt(replyCode, "550 5.7.1 no\x00")}}}
	target := f.start()
	w := &World{Name: "test", Identities: testIDs}
	r, err := Run(context.Background(), Options{Target: target, World: w, Workers: 2, Sessions: 20, Headers: 20, Version: 6})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.Verdicts["office365"]["refused 550 at rcpt"] != 10 || r.Verdicts["v6-no-ptr"]["refused 550 at rcpt"] != 10 {
		t.Fatalf("verdicts %v, errors %+v", r.Verdicts, r.ErrorSamples)
	}
	for _, s := range f.all(20) {
		if c := commands(s); !strings.HasSuffix(c, "DR R DR R A Q") || strings.Contains(c, "L") || strings.Contains(c, " E") {
			t.Errorf("commands %s", c)
		}
	}
	if r.Stages[StageHeaders].N != 0 || r.Stages[StageRcpt].N != 20 {
		t.Errorf("stages timed: headers %d, rcpt %d", r.Stages[StageHeaders].N, r.Stages[StageRcpt].N)
	}
}

// Errors are counted with a sample, the session goes on with the next.
func TestRunCountsErrors(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(6, 0, 0), replies: map[byte][][]byte{cmdEOB: {pkt(modAddHeader, 'X', 0, 'y', 0)}}}
	r, err := Run(context.Background(), Options{Target: f.start(), World: &World{Identities: testIDs[:1]}, Workers: 1, Sessions: 3, Headers: 4, Version: 6})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 3 || r.Sessions != 0 || len(r.ErrorSamples) != 1 || r.ErrorSamples[0].Count != 3 ||
		r.ErrorSamples[0].Stage != "eom" || !strings.Contains(r.ErrorSamples[0].Message, "without ADDHDRS negotiated") {
		t.Errorf("%d errors, %d sessions, samples %+v", r.Errors, r.Sessions, r.ErrorSamples)
	}
}

func TestRunRefusesOffLoopback(t *testing.T) {
	_, err := Run(context.Background(), Options{Target: Target{Name: "far", Network: "tcp", Address: "192.0.2.1:8894"},
		World: testWorld(t), Workers: 1, Sessions: 1, Version: 6})
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("Run to 192.0.2.1: %v", err)
	}
}

// The built-in world: the identities Postfix would see, named as it would.
func TestBenchWorld(t *testing.T) {
	w := testWorld(t)
	byName := map[string]Identity{}
	for _, id := range w.Identities {
		byName[id.Name] = id
	}
	if id := byName["office365"]; id.Host != "mail-bl2nam02on0131.outbound.protection.outlook.com" || id.connectHost() != id.Host || id.resolve() != "OK" {
		t.Errorf("office365: %+v", id)
	}
	if id := byName["office365-ipv6"]; !id.IPv6 || id.Host == "" {
		t.Errorf("office365-ipv6: %+v", id)
	}
	if id := byName["no-ptr"]; id.Host != "" || id.connectHost() != "[192.0.2.77]" || id.resolve() != "FAIL" || id.clientName() != "unknown" {
		t.Errorf("no-ptr: %+v", id)
	}
	if _, err := LoadWorld("", []string{"office365", "nope"}); err == nil || !strings.Contains(err.Error(), `no case named "nope"`) {
		t.Errorf("an unknown case: %v", err)
	}
	if w, err := LoadWorld("", []string{"sparkpost"}); err != nil || len(w.Identities) != 1 {
		t.Errorf("one case: %v", err)
	}
}
