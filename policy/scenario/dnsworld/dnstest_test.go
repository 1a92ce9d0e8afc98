package dnsworld

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestServer(t *testing.T) {
	z := NewZone()
	big := strings.Repeat("x", 200)
	for _, line := range []string{
		"host.example. 300 IN A 192.0.2.1",
		"host.example. 300 IN AAAA 2001:db8::1",
		"alias.example. 300 IN CNAME Host.Example.",
		"1.2.0.192.in-addr.arpa. 300 IN CNAME 1.0-25.2.0.192.in-addr.arpa.",
		"1.0-25.2.0.192.in-addr.arpa. 300 IN PTR host.example.",
		"loop1.example. 300 IN CNAME loop2.example.",
		"loop2.example. 300 IN CNAME loop1.example.",
		"soa.example. 900 IN SOA ns.soa.example. h.soa.example. 1 2 3 4 30",
		`big.example. 300 IN TXT "` + big + `" "` + big + `" "` + big + `"`,
		`big.example. 300 IN TXT "` + big + `"`,
	} {
		if err := z.AddRR(line); err != nil {
			t.Fatalf("AddRR(%q): %v", line, err)
		}
	}
	z.AddFault("sf.example.", dns.TypeA, FaultServfail)
	z.AddFault("ref.example.", dns.TypeANY, FaultRefused)
	z.AddFault("to.example.", dns.TypeA, FaultTimeout)
	z.AddFault("host.example.", dns.TypeAAAA, FaultTruncate)
	z.SetNegativeTTL(42)
	s, err := Start(z)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tests := []struct {
		name     string
		net      string
		qname    string
		qtype    uint16
		edns     bool
		rcode    int
		answers  int
		tc       bool
		soaMin   uint32 // expected SOA MINIMUM in authority, 0 = no SOA expected
		timeout  bool
		lastType uint16
	}{
		{name: "A", qname: "HOST.example.", qtype: dns.TypeA, answers: 1, lastType: dns.TypeA},
		{name: "CNAME chain", qname: "alias.example.", qtype: dns.TypeA, answers: 2, lastType: dns.TypeA},
		{name: "RFC 2317 PTR", qname: "1.2.0.192.in-addr.arpa.", qtype: dns.TypePTR, answers: 2, lastType: dns.TypePTR},
		{name: "CNAME loop", qname: "loop1.example.", qtype: dns.TypeA, answers: 2, lastType: dns.TypeCNAME},
		{name: "NXDOMAIN", qname: "nope.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soaMin: 42},
		{name: "NODATA", qname: "host.example.", qtype: dns.TypeMX, soaMin: 42},
		{name: "NXDOMAIN under zone SOA", qname: "x.soa.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soaMin: 30},
		{name: "servfail", qname: "sf.example.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "refused any type", qname: "ref.example.", qtype: dns.TypeTXT, rcode: dns.RcodeRefused},
		{name: "timeout", qname: "to.example.", qtype: dns.TypeA, timeout: true},
		{name: "truncate fault UDP", qname: "host.example.", qtype: dns.TypeAAAA, tc: true},
		{name: "truncate fault TCP", net: "tcp", qname: "host.example.", qtype: dns.TypeAAAA, answers: 1, lastType: dns.TypeAAAA},
		{name: "big TXT without EDNS0", qname: "big.example.", qtype: dns.TypeTXT, tc: true},
		{name: "big TXT with EDNS0", qname: "big.example.", qtype: dns.TypeTXT, edns: true, answers: 2, lastType: dns.TypeTXT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &dns.Client{Net: tt.net, Timeout: 300 * time.Millisecond}
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, tt.qtype)
			if tt.edns {
				m.SetEdns0(1232, false)
			}
			r, _, err := c.Exchange(m, s.Addr)
			if tt.timeout {
				if err == nil {
					t.Fatalf("got answer %v, want timeout", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode || r.Truncated != tt.tc || len(r.Answer) != tt.answers || !r.RecursionAvailable {
				t.Fatalf("rcode %s tc %v answers %d ra %v, want %s %v %d true\n%v",
					dns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer), r.RecursionAvailable,
					dns.RcodeToString[tt.rcode], tt.tc, tt.answers, r)
			}
			if tt.answers > 0 && r.Answer[len(r.Answer)-1].Header().Rrtype != tt.lastType {
				t.Errorf("last answer %v, want type %s", r.Answer[len(r.Answer)-1], dns.TypeToString[tt.lastType])
			}
			if tt.soaMin != 0 {
				if len(r.Ns) != 1 {
					t.Fatalf("authority %v, want one SOA", r.Ns)
				}
				if soa, ok := r.Ns[0].(*dns.SOA); !ok || soa.Minttl != tt.soaMin {
					t.Errorf("authority %v, want SOA with minimum %d", r.Ns[0], tt.soaMin)
				}
			}
			if tt.edns && r.IsEdns0() == nil {
				t.Error("no OPT in reply to an EDNS0 query")
			}
		})
	}

	if got := s.QueriesFor("host.EXAMPLE", dns.TypeAAAA); got != 2 {
		t.Errorf("QueriesFor(host.example AAAA) = %d, want 2", got)
	}
	if got := s.Queries(); got != int64(len(tests)) {
		t.Errorf("Queries() = %d, want %d", got, len(tests))
	}

	// SetZone swaps the world; SetDelay slows answers.
	z2 := NewZone()
	if err := z2.AddRR("nope.example. 60 IN A 192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	s.SetZone(z2)
	s.SetDelay(100 * time.Millisecond)
	m := new(dns.Msg)
	m.SetQuestion("nope.example.", dns.TypeA)
	start := time.Now()
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, s.Addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("after SetZone: %v %v", r, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("answer after %v, want a delay of at least 100ms", el)
	}
	s.ResetQueries()
	if s.Queries() != 0 || s.QueriesFor("nope.example.", dns.TypeA) != 0 {
		t.Error("ResetQueries did not reset")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The faults that spoil the reply itself, read off the wire.
func TestReplyFaults(t *testing.T) {
	z := NewZone()
	for _, name := range []string{"notcp", "late", "garbage", "wrongid", "flap"} {
		if err := z.AddRR(name + ".example. 300 IN A 192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	z.AddFault("notcp.example.", dns.TypeA, FaultTruncateNoTCP)
	z.AddFault("late.example.", dns.TypeA, FaultLate)
	z.AddFault("garbage.example.", dns.TypeANY, FaultGarbage)
	z.AddFault("wrongid.example.", dns.TypeA, FaultWrongID)
	z.AddFault("flap.example.", dns.TypeA, FaultFlap)
	z.SetLateDelay(300 * time.Millisecond)
	s, err := Start(z)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// exchange sends a query for name A over network and returns the raw
	// reply, nil if none came within wait.
	exchange := func(t *testing.T, network, name string, id uint16, wait time.Duration) []byte {
		t.Helper()
		c, err := net.Dial(network, s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = id
		wire, _ := q.Pack()
		if network == "tcp" {
			wire = append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...)
		}
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		if network == "tcp" {
			return buf[2:n]
		}
		return buf[:n]
	}
	parse := func(t *testing.T, p []byte) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		if err := m.Unpack(p); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		return m
	}

	t.Run("truncate-notcp", func(t *testing.T) {
		if m := parse(t, exchange(t, "udp", "notcp.example.", 1, time.Second)); !m.Truncated || len(m.Answer) != 0 {
			t.Errorf("UDP: %v, want TC and no answer", m)
		}
		if p := exchange(t, "tcp", "notcp.example.", 2, time.Second); p != nil {
			t.Errorf("TCP answered %x, want the connection closed", p)
		}
	})
	t.Run("late", func(t *testing.T) {
		if p := exchange(t, "udp", "late.example.", 3, 100*time.Millisecond); p != nil {
			t.Errorf("answered within 100ms: %x", p)
		}
		if m := parse(t, exchange(t, "udp", "late.example.", 4, 2*time.Second)); m.Id != 4 || len(m.Answer) != 1 {
			t.Errorf("late answer %v, want the right one", m)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		for _, network := range []string{"udp", "tcp"} {
			p := exchange(t, network, "garbage.example.", 0x1234, time.Second)
			if len(p) < 12 || p[0] != 0x12 || p[1] != 0x34 {
				t.Fatalf("%s: %x, want the query's ID first", network, p)
			}
			if err := new(dns.Msg).Unpack(p); err == nil {
				t.Errorf("%s: %x parses", network, p)
			}
		}
	})
	t.Run("wrong-id", func(t *testing.T) {
		for _, network := range []string{"udp", "tcp"} {
			if m := parse(t, exchange(t, network, "wrongid.example.", 7, time.Second)); m.Id == 7 || len(m.Answer) != 1 {
				t.Errorf("%s: ID %d answers %d, want another ID and the answer", network, m.Id, len(m.Answer))
			}
		}
	})
	t.Run("flap", func(t *testing.T) {
		for i, want := range []int{dns.RcodeServerFailure, dns.RcodeSuccess, dns.RcodeServerFailure, dns.RcodeSuccess} {
			if m := parse(t, exchange(t, "udp", "flap.example.", uint16(10+i), time.Second)); m.Rcode != want {
				t.Errorf("query %d: %s, want %s", i+1, dns.RcodeToString[m.Rcode], dns.RcodeToString[want])
			}
		}
	})
}

// Close does not wait for a late answer to be due.
func TestCloseWithLateAnswerPending(t *testing.T) {
	z := NewZone()
	z.AddFault("late.example.", dns.TypeA, FaultLate) // DefaultLateDelay: 5s
	s, err := Start(z)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("late.example.", dns.TypeA)
	wire, _ := q.Pack()
	c.Write(wire)
	for s.Queries() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(DefaultLateDelay - time.Second):
		t.Fatal("Close waited for the late answer")
	}
}
