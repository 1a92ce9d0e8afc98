package dnscache

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// A reply that does not match the query (RFC 5452 section 9.1) is ignored and
// the right reply that follows it on the same socket is used.
func TestMismatchedReplyIgnored(t *testing.T) {
	tests := []struct {
		name string
		bad  func(m *dns.Msg) // spoils a copy of the right reply
	}{
		{"wrong ID", func(m *dns.Msg) { m.Id++ }},
		{"wrong name", func(m *dns.Msg) { m.Question[0].Name = "other.example." }},
		{"wrong type", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }},
		{"wrong class", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }},
		{"QR not set", func(m *dns.Msg) { m.Response = false }},
		{"wrong opcode", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }},
		{"no question", func(m *dns.Msg) { m.Question = nil }},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }},
		{"garbage", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
				good := reply(req, dns.RcodeSuccess, rr(t, "spoof.example. 300 IN A 192.0.2.1"))
				if tt.bad == nil {
					w.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
				} else {
					bad := reply(req, dns.RcodeSuccess, rr(t, "spoof.example. 300 IN A 192.0.2.66"))
					tt.bad(bad)
					w.WriteMsg(bad)
					// the wrong ID again with a wrong question too
					bad.Id++
					bad.Question = []dns.Question{{Name: "x.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
					w.WriteMsg(bad)
				}
				w.WriteMsg(good)
			})
			r := newResolver(t, Config{}, addr)
			got, err := r.LookupIP(context.Background(), "spoof.example.")
			if err != nil {
				t.Fatal(err)
			}
			if want := []netip.Addr{netip.MustParseAddr("192.0.2.1")}; !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	t.Run("only mismatched replies", func(t *testing.T) {
		addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
			bad := reply(req, dns.RcodeSuccess, rr(t, "spoof.example. 300 IN A 192.0.2.66"))
			bad.Id++
			w.WriteMsg(bad)
		})
		r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 1}, addr)
		_, err := r.Lookup(context.Background(), "spoof.example.", dns.TypeA)
		checkErr(t, err, ErrTimeout, "spoof.example.")
	})
}

// closedUDPPort returns a loopback address nobody listens on: queries to it
// fail at once with "connection refused".
func closedUDPPort(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestFailover(t *testing.T) {
	records := []string{"host.example. 300 IN A 192.0.2.1", "host.example. 300 IN TXT \"t\""}
	lame := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := reply(req, dns.RcodeSuccess)
		m.RecursionAvailable = false
		w.WriteMsg(m)
	})
	tests := []struct {
		name     string
		first    func(t *testing.T) (addr string, queries func() int64)
		qtype    uint16
		wantErr  error // nil: the second server answers
		second   int64 // queries the second server must see
		atLeast  time.Duration
		errFirst bool // the error's Server is the first server
	}{
		{name: "timeout", first: faulty(records, dnsworld.FaultTimeout), second: 1, atLeast: 200 * time.Millisecond},
		{name: "SERVFAIL", first: faulty(records, dnsworld.FaultServfail), second: 1},
		{name: "REFUSED", first: faulty(records, dnsworld.FaultRefused), second: 1},
		{name: "lame referral", first: func(*testing.T) (string, func() int64) { return lame, nil }, second: 1},
		{name: "connection refused", first: func(t *testing.T) (string, func() int64) { return closedUDPPort(t), nil }, second: 1},
		{name: "not on NXDOMAIN", first: faulty(nil, ""), wantErr: ErrNXDomain, errFirst: true},
		{name: "not on NODATA", first: faulty([]string{"host.example. 300 IN MX 10 mx.example."}, ""),
			wantErr: ErrNoData, errFirst: true},
		{name: "not on a TXT NODATA either", first: faulty([]string{"host.example. 300 IN A 192.0.2.1"}, ""),
			qtype: dns.TypeTXT, wantErr: ErrNoData, errFirst: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, firstQueries := tt.first(t)
			second := startZone(t, records)
			r := newResolver(t, Config{Timeout: 200 * time.Millisecond}, first, second.Addr)
			qtype := tt.qtype
			if qtype == 0 {
				qtype = dns.TypeA
			}
			start := time.Now()
			rrs, err := r.Lookup(context.Background(), "host.example.", qtype)
			elapsed := time.Since(start)
			if tt.wantErr != nil {
				checkErr(t, err, tt.wantErr, "host.example.")
				if de, _ := err.(*net.DNSError); tt.errFirst && de != nil && de.Server != first {
					t.Errorf("error from %q, want %q", de.Server, first)
				}
			} else if err != nil || len(rrs) != 1 {
				t.Fatalf("got %v %v, want the second server's answer", rrs, err)
			}
			if got := second.Queries(); got != tt.second {
				t.Errorf("second server saw %d queries, want %d", got, tt.second)
			}
			if firstQueries != nil {
				if got := firstQueries(); got != 1 {
					t.Errorf("first server saw %d queries, want 1", got)
				}
			}
			if elapsed < tt.atLeast {
				t.Errorf("took %v, want at least %v", elapsed, tt.atLeast)
			}
		})
	}
}

// faulty returns a first server that serves records with fault f on every
// query of host.example. (no fault if f is "").
func faulty(records []string, f dnsworld.Fault) func(t *testing.T) (string, func() int64) {
	return func(t *testing.T) (string, func() int64) {
		var faults []fault
		if f != "" {
			faults = append(faults, fault{"host.example.", dns.TypeANY, f})
		}
		s := startZone(t, records, faults...)
		return s.Addr, s.Queries
	}
}

func TestAllServersTimeOut(t *testing.T) {
	s := startZone(t, nil, fault{"slow.example.", dns.TypeANY, dnsworld.FaultTimeout})
	clk := newClock()
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Now: clk.Now}, s.Addr, s.Addr)
	start := time.Now()
	_, err := r.LookupTXT(context.Background(), "slow.example.")
	checkErr(t, err, ErrTimeout, "slow.example.")
	// 4 attempts (2 per server) of 100ms
	if el := time.Since(start); el < 400*time.Millisecond || el > 2*time.Second {
		t.Errorf("took %v, want about 400ms", el)
	}
	if got := s.QueriesFor("slow.example.", dns.TypeTXT); got != 4 {
		t.Errorf("%d queries, want 4", got)
	}
	if st := r.Stats(); st.Timeout != 1 {
		t.Errorf("Stats.Timeout = %d, want 1", st.Timeout)
	}
}

// A recursive server should return the whole chain; when the chain stops
// short, the resolver asks for the target itself.
func TestCNAMEChainStopsShort(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		mu.Lock()
		asked[q.Name]++
		mu.Unlock()
		switch q.Name {
		case "a.example.":
			w.WriteMsg(reply(req, dns.RcodeSuccess, rr(t, "a.example. 20 IN CNAME b.example.")))
		case "b.example.":
			w.WriteMsg(reply(req, dns.RcodeSuccess, rr(t, "b.example. 50 IN A 192.0.2.7")))
		case "n.example.": // NXDOMAIN applies to the end of the chain: no more questions
			m := reply(req, dns.RcodeNameError, rr(t, "n.example. 20 IN CNAME gone.example."))
			m.Ns = []dns.RR{rr(t, "example. 60 IN SOA ns.example. h.example. 1 2 3 4 60")}
			w.WriteMsg(m)
		default:
			w.WriteMsg(reply(req, dns.RcodeNameError))
		}
	})
	clk := newClock()
	r := newResolver(t, Config{Now: clk.Now}, addr)
	ctx := context.Background()
	rrs, err := r.Lookup(ctx, "a.example.", dns.TypeA)
	if err != nil || len(rrs) != 1 || rrs[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("got %v %v, want 192.0.2.7", rrs, err)
	}
	_, err = r.Lookup(ctx, "n.example.", dns.TypeA)
	checkErr(t, err, ErrNXDomain, "n.example.")
	// TTL is the minimum over the chain: 20s.
	clk.Advance(19 * time.Second)
	r.Lookup(ctx, "a.example.", dns.TypeA)
	clk.Advance(time.Second)
	r.Lookup(ctx, "a.example.", dns.TypeA)
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"a.example.": 2, "b.example.": 2, "n.example.": 1}; !reflect.DeepEqual(asked, want) {
		t.Errorf("questions %v, want %v", asked, want)
	}
}

func TestServerAddresses(t *testing.T) {
	tests := []struct {
		in, want string // want "" = error
	}{
		{"127.0.0.1:53", "127.0.0.1:53"},
		{"[::1]:53", "[::1]:53"},
		{"[::1]:5353", "[::1]:5353"},
		{"[0:0::1]:53", "[::1]:53"},
		{"[fe80::1%lo]:53", "[fe80::1%lo]:53"},
		{"[::ffff:127.0.0.1]:53", "[::ffff:127.0.0.1]:53"},
		{"127.0.0.1", ""},
		{"::1", ""},
		{"::1:53", ""},
		{"localhost:53", ""},
		{"127.0.0.1:0", ""},
		{"127.0.0.1:65536", ""},
		{"127.0.0.1:domain", ""},
		{"", ""},
	}
	for _, tt := range tests {
		r, err := New(Config{Servers: []string{tt.in}})
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("New(%q): no error, servers %v", tt.in, r.cfg.Servers)
		case tt.want != "" && err != nil:
			t.Errorf("New(%q): %v", tt.in, err)
		case tt.want != "" && r.cfg.Servers[0] != tt.want:
			t.Errorf("New(%q): server %q, want %q", tt.in, r.cfg.Servers[0], tt.want)
		}
	}
}

// A server on [::1], if this host has IPv6 loopback.
func TestIPv6Server(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	addr := serve(t, pc, nil, func(w dns.ResponseWriter, req *dns.Msg) {
		w.WriteMsg(reply(req, dns.RcodeSuccess, rr(t, "v6.example. 300 IN AAAA 2001:db8::6")))
	})
	r := newResolver(t, Config{}, addr)
	rrs, err := r.Lookup(context.Background(), "v6.example.", dns.TypeAAAA)
	if err != nil || len(rrs) != 1 {
		t.Fatalf("via %s: %v %v", addr, rrs, err)
	}
}

// A UDP reply larger than the EDNS0 size we advertise (from a server that
// ignores it, likely in forgeable IP fragments) is not used: the question is
// asked again over TCP.
func TestOversizedUDPReplyRetriedOverTCP(t *testing.T) {
	var udp, tcp atomic.Int64
	big := `big.example. 300 IN TXT "` + strings.Repeat("u", 250) + `"`
	addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := reply(req, dns.RcodeSuccess)
		for range 8 { // about 2 KB: over 1232
			m.Answer = append(m.Answer, rr(t, big))
		}
		if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
			udp.Add(1)
			m.Answer[0].(*dns.TXT).Txt[0] = "forged" // what a forged fragment would carry
		} else {
			tcp.Add(1)
		}
		w.WriteMsg(m)
	})
	r := newResolver(t, Config{}, addr)
	txts, err := r.LookupTXT(context.Background(), "big.example.")
	if err != nil || len(txts) != 8 || slices.Contains(txts, "forged") {
		t.Fatalf("got %d records %v, want the 8 of the TCP answer", len(txts), err)
	}
	if udp.Load() != 1 || tcp.Load() != 1 {
		t.Errorf("%d UDP and %d TCP queries, want 1 and 1", udp.Load(), tcp.Load())
	}
}
