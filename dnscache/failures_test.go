package dnscache

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// Every kind of DNS trouble is named in the tally with its cause and server,
// and named again, as cached, when the cache answers with it.
func TestFailureCauses(t *testing.T) {
	records := []string{
		"host.example. 300 IN A 192.0.2.1",
		"loop1.example. 300 IN CNAME loop2.example.",
		"loop2.example. 300 IN CNAME loop1.example.",
	}
	for i := range 12 {
		records = append(records, fmt.Sprintf("long%d.example. 300 IN CNAME long%d.example.", i, i+1))
	}
	records = append(records, "long12.example. 300 IN A 192.0.2.12")
	// world serves records with fault f on host.example.
	world := func(f dnsworld.Fault) func(t *testing.T) string {
		return func(t *testing.T) string {
			var faults []fault
			if f != "" {
				faults = append(faults, fault{"host.example.", dns.TypeANY, f})
			}
			s := startZone(t, records, faults...)
			return s.Addr
		}
	}
	custom := func(h dns.HandlerFunc) func(t *testing.T) string {
		return func(t *testing.T) string { return startCustom(t, h) }
	}
	tests := []struct {
		name   string
		server func(t *testing.T) string
		qname  string
		want   Cause // "" = no failure (an answer, or NXDOMAIN/NODATA)
	}{
		{"no answer", world(dnsworld.FaultTimeout), "host.example.", CauseTimeout},
		{"answer after the timeout", func(t *testing.T) string {
			z := dnsworld.NewZone()
			z.AddRR(records[0])
			z.AddFault("host.example.", dns.TypeA, dnsworld.FaultLate)
			z.SetLateDelay(time.Second)
			s, err := dnsworld.Start(z)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s.Addr
		}, "host.example.", CauseTimeout},
		{"SERVFAIL", world(dnsworld.FaultServfail), "host.example.", CauseServFail},
		{"REFUSED", world(dnsworld.FaultRefused), "host.example.", CauseRefused},
		{"lame referral", custom(func(w dns.ResponseWriter, req *dns.Msg) {
			m := reply(req, dns.RcodeSuccess)
			m.RecursionAvailable = false
			w.WriteMsg(m)
		}), "host.example.", CauseLame},
		{"TC, TCP closed", world(dnsworld.FaultTruncateNoTCP), "host.example.", CauseTruncated},
		{"TC over TCP too", custom(func(w dns.ResponseWriter, req *dns.Msg) {
			m := reply(req, dns.RcodeSuccess)
			m.Truncated = true
			w.WriteMsg(m)
		}), "host.example.", CauseTruncated},
		{"garbage", world(dnsworld.FaultGarbage), "host.example.", CauseMalformed},
		{"wrong ID", world(dnsworld.FaultWrongID), "host.example.", CauseMismatch},
		{"CNAME loop", world(""), "loop1.example.", CauseCNAMELoop},
		{"CNAME chain too long", world(""), "long0.example.", CauseCNAMELoop},
		{"FORMERR", custom(func(w dns.ResponseWriter, req *dns.Msg) { w.WriteMsg(reply(req, dns.RcodeFormatError)) }),
			"host.example.", CauseRcode},
		{"connection refused", func(t *testing.T) string { return closedUDPPort(t) }, "host.example.", CauseNetwork},
		{"flapping, retried", world(dnsworld.FaultFlap), "host.example.", ""},
		{"NXDOMAIN is no failure", world(""), "nope.example.", ""},
		{"NODATA is no failure", world(""), "loop2.example.", ""}, // asked for MX below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.server(t)
			clk := newClock()
			r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Now: clk.Now}, addr)
			qtype := dns.TypeA
			if tt.name == "NODATA is no failure" {
				qtype, tt.qname = dns.TypeMX, "host.example."
			}
			var want []Failure
			if tt.want != "" {
				want = []Failure{{Name: tt.qname[:len(tt.qname)-1], Type: dns.TypeToString[qtype], Cause: tt.want, Server: addr}}
			}
			for _, cached := range []bool{false, true} {
				var tally Tally
				_, err := r.Lookup(WithTally(context.Background(), &tally), tt.qname, qtype)
				if (err != nil && !isNotFound(err)) != (tt.want != "") {
					t.Fatalf("error %v, want a failure: %v", err, tt.want != "")
				}
				for i := range want {
					want[i].Cached = cached
				}
				if got := tally.Failures(); !reflect.DeepEqual(got, want) {
					t.Errorf("cached %v: failures %+v, want %+v", cached, got, want)
				}
				if tt.want != "" && tally.Expires() != time.Unix(0, 1) {
					t.Errorf("a failure must expire the tally at once, expires %v", tally.Expires())
				}
			}
			// After FailureTTL the failure is gone from the cache: asked again.
			clk.Advance(DefaultFailureTTL)
			var tally Tally
			r.Lookup(WithTally(context.Background(), &tally), tt.qname, qtype)
			if got := tally.Failures(); tt.want != "" && (len(got) != 1 || got[0].Cached) {
				t.Errorf("after FailureTTL: %+v, want a fresh failure", got)
			}
		})
	}
}

// The caller's deadline is a timeout of the lookups it cut short, from no
// server; a caller that cancels (the connection closed) meets no DNS trouble.
func TestFailureOfTheCaller(t *testing.T) {
	s := startZone(t, []string{"host.example. 300 IN A 192.0.2.1"})
	s.SetDelay(300 * time.Millisecond)
	r := newResolver(t, Config{Timeout: time.Second}, s.Addr)
	var tally Tally
	ctx, cancel := context.WithTimeout(WithTally(context.Background(), &tally), 50*time.Millisecond)
	defer cancel()
	_, err := r.Lookup(ctx, "host.example.", dns.TypeA)
	checkErr(t, err, context.DeadlineExceeded, "host.example.")
	want := []Failure{{Name: "host.example", Type: "A", Cause: CauseTimeout}}
	if got := tally.Failures(); !reflect.DeepEqual(got, want) {
		t.Errorf("deadline: %+v, want %+v", got, want)
	}

	var tally2 Tally
	ctx2, cancel2 := context.WithCancel(WithTally(context.Background(), &tally2))
	cancel2()
	if _, err := r.Lookup(ctx2, "other.example.", dns.TypeA); err == nil {
		t.Fatal("no error from a canceled lookup")
	}
	if got := tally2.Failures(); got != nil {
		t.Errorf("canceled: %+v, want none", got)
	}
}

// The tally keeps one failure per name and type, at most MaxFailures, and
// the tallies it is nested in keep them too.
func TestFailuresBoundedAndShared(t *testing.T) {
	var faults []fault
	for i := range MaxFailures + 2 {
		faults = append(faults, fault{fmt.Sprintf("f%d.example.", i), dns.TypeANY, dnsworld.FaultServfail})
	}
	s := startZone(t, nil, faults...)
	r := newResolver(t, Config{Attempts: 1}, s.Addr)
	var outer Tally
	ctx, _ := r.Track(WithTally(context.Background(), &outer))
	inner := tallyOf(ctx)
	r.LookupTXT(ctx, "F0.example.")
	r.LookupTXT(ctx, "f0.example.") // the same, from the cache
	r.LookupMX(ctx, "f0.example.")  // another type
	for i := 1; i < MaxFailures+2; i++ {
		r.LookupTXT(ctx, fmt.Sprintf("f%d.example.", i))
	}
	for _, tl := range []*Tally{inner, &outer} {
		got := tl.Failures()
		if len(got) != MaxFailures {
			t.Fatalf("%d failures, want %d: %+v", len(got), MaxFailures, got)
		}
		if got[0] != (Failure{Name: "F0.example", Type: "TXT", Cause: CauseServFail, Server: s.Addr}) ||
			got[1].Name != "f0.example" || got[1].Type != "MX" || got[2].Name != "f1.example" {
			t.Errorf("failures %+v", got)
		}
	}
}

// A dead server costs one timeout, not one per lookup: the next lookups go
// first to the server that answered.
func TestDeadServerAvoided(t *testing.T) {
	var dead atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() { // reads queries and never answers
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			dead.Add(1)
		}
	}()
	good := startZone(t, []string{"a.example. 300 IN A 192.0.2.1", "b.example. 300 IN A 192.0.2.2", "c.example. 300 IN TXT \"c\""})
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond}, pc.LocalAddr().String(), good.Addr)
	ctx := context.Background()
	var tally Tally
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"a.example.", dns.TypeA}, {"b.example.", dns.TypeA}, {"c.example.", dns.TypeTXT}} {
		if _, err := r.Lookup(WithTally(ctx, &tally), q.name, q.qtype); err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
	}
	if n := dead.Load(); n != 1 {
		t.Errorf("the dead server was asked %d times, want once", n)
	}
	if f := tally.Failures(); f != nil {
		t.Errorf("failures %+v: a lookup the other server answered did not fail", f)
	}
}

// Silence after a bad reply does not hide it: the cause is the reply's.
func TestFailureCauseSurvivesSilence(t *testing.T) {
	var n atomic.Int64
	addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		switch n.Add(1) {
		case 1:
			m := reply(req, dns.RcodeSuccess, rr(t, "host.example. 300 IN A 192.0.2.66"))
			m.Id ^= 1
			w.WriteMsg(m) // a spoofer's guess, then nothing
		case 2:
			w.WriteMsg(reply(req, dns.RcodeServerFailure))
		}
		// then silence
	})
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 3}, addr)
	var tally Tally
	_, err := r.Lookup(WithTally(context.Background(), &tally), "host.example.", dns.TypeA)
	checkErr(t, err, ErrServFail, "host.example.")
	if got := tally.Failures(); len(got) != 1 || got[0].Cause != CauseServFail {
		t.Errorf("mismatch, SERVFAIL, silence: %+v, want servfail", got)
	}
	n.Store(0)
	r = newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 1}, addr)
	tally = Tally{}
	_, err = r.Lookup(WithTally(context.Background(), &tally), "host.example.", dns.TypeA)
	checkErr(t, err, ErrTimeout, "host.example.")
	if got := tally.Failures(); len(got) != 1 || got[0].Cause != CauseMismatch {
		t.Errorf("mismatch, then silence: %+v, want mismatch", got)
	}
}

// A failed first server is asked first again after retryFirstAfter, once per
// period while it stays dead, and returns to service when it answers.
func TestFirstServerRetried(t *testing.T) {
	var asked atomic.Int64
	var alive atomic.Bool
	good := startZone(t, []string{"a.example. 1 IN A 192.0.2.1", "b.example. 1 IN A 192.0.2.2", "c.example. 1 IN A 192.0.2.3", "d.example. 1 IN A 192.0.2.4"})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() { // silent while dead; forwards to the good server once alive
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			asked.Add(1)
			if !alive.Load() {
				continue
			}
			c, err := net.Dial("udp", good.Addr)
			if err != nil {
				continue
			}
			c.Write(buf[:n])
			c.SetReadDeadline(time.Now().Add(time.Second))
			m, err := c.Read(buf)
			c.Close()
			if err == nil {
				pc.WriteTo(buf[:m], from)
			}
		}
	}()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Now: clock}, pc.LocalAddr().String(), good.Addr)
	ctx := context.Background()
	lookup := func(name string) {
		t.Helper()
		if _, err := r.Lookup(ctx, name, dns.TypeA); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	lookup("a.example.") // the first server times out once
	lookup("b.example.") // the second is asked first now
	if n := asked.Load(); n != 1 {
		t.Fatalf("the dead first server was asked %d times, want 1", n)
	}
	advance(retryFirstAfter + time.Second)
	lookup("c.example.") // retried once: still dead
	lookup("d.example.")
	if n := asked.Load(); n != 2 {
		t.Fatalf("after %v the first server was asked %d times in all, want 2 (one retry)", retryFirstAfter, n)
	}
	alive.Store(true)
	advance(retryFirstAfter + time.Second)
	lookup("a.example.") // cache expired (TTL 1s): the first server answers and is preferred again
	if r.preferred.Load() != 0 || asked.Load() != 3 {
		t.Errorf("the first server answered but is not preferred (preferred %d, asked %d)", r.preferred.Load(), asked.Load())
	}
}
