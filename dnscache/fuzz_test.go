package dnscache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzDNSReply serves arbitrary bytes as the reply to the resolver's query
// and checks what the resolver makes of them.
//
// The resolver asks two servers on loopback: first a hostile one, which
// answers every query with the fuzzed bytes (their first two bytes replaced
// by the query's ID when patchID is set, so that the reply gets past the ID
// check) over UDP and TCP, each time followed by a proper REFUSED that sends
// the resolver on to the second server; and an honest one (dnsworld). Then:
//
//   - the resolver does not panic, and an error is a bare *net.DNSError;
//   - an answer is the honest server's, or else the hostile reply answered
//     the question: its ID was the query's, it parses, its question is the
//     query's, and every record returned is of the asked type and on the
//     CNAME chain that starts at the asked name in its answer section;
//   - nothing but the answer to the question itself is cached: after the
//     exchange, with the hostile server answering only REFUSED, a lookup of
//     any other name or type the hostile reply mentions (the records it
//     injects in any section, the names its CNAMEs lead to), or that the
//     world holds, goes upstream to the honest server and gets its answer;
//   - an answer too large to cache (huge TXT) is not cached either.
//
// Seeds: testdata/fuzz/FuzzDNSReply (they run in plain go test).
func FuzzDNSReply(f *testing.F) {
	honest := startZone(f, fuzzWorld)
	hostile := startHostile(f)
	f.Fuzz(func(t *testing.T, reply []byte, patchID bool, qsel uint8) {
		if len(reply) > dns.MaxMsgSize {
			return
		}
		q := fuzzQuestions[int(qsel)%len(fuzzQuestions)]
		hostile.set(reply, patchID)
		// A fresh resolver: an empty cache, and the hostile server asked first.
		r := newResolver(t, Config{Timeout: 500 * time.Millisecond, CacheSize: 1000}, hostile.addr, honest.Addr)
		truth := newResolver(t, Config{Timeout: 500 * time.Millisecond, CacheSize: 1000}, honest.Addr)
		ctx := context.Background()

		got, err := r.Lookup(ctx, q.name, q.qtype)
		if err != nil {
			if _, ok := err.(*net.DNSError); !ok {
				t.Fatalf("error %T %v, want a bare *net.DNSError", err, err)
			}
		}
		sent, matched := hostile.exchanged()
		want, wantErr := truth.Lookup(ctx, q.name, q.qtype)
		honestAnswer := sameResult(got, err, want, wantErr)
		if err == nil && !honestAnswer {
			// Not the honest answer: it must be the hostile reply, and a
			// reply to the question.
			checkAnswers(t, q, sent, matched, got, func(name string) []dns.RR {
				rrs, _ := truth.Lookup(ctx, name, q.qtype)
				return rrs
			})
		}
		if err == nil && !honestAnswer && answerSize(got) > maxCachedAnswer {
			var tally Tally
			r.Lookup(WithTally(ctx, &tally), q.name, q.qtype)
			if tally.Hits.Load() != 0 {
				t.Errorf("an answer of %d bytes was cached", answerSize(got))
			}
		}

		// Everything else goes upstream, to the honest server.
		hostile.set(nil, false)
		for _, k := range otherLookups(q, sent) {
			var tally Tally
			got, err := r.Lookup(WithTally(ctx, &tally), k.name, k.qtype)
			if tally.Hits.Load() != 0 {
				t.Errorf("%s %s came from the cache after the hostile exchange", dns.TypeToString[k.qtype], k.name)
			}
			want, wantErr := truth.Lookup(ctx, k.name, k.qtype)
			if !sameResult(got, err, want, wantErr) {
				t.Errorf("%s %s: got %v %v, the honest server says %v %v", dns.TypeToString[k.qtype], k.name, got, err, want, wantErr)
			}
		}
	})
}

// fuzzWorld is what the honest server serves.
var fuzzWorld = []string{
	"q.fuzz.example. 300 IN A 192.0.2.1",
	"q.fuzz.example. 300 IN AAAA 2001:db8::1",
	`q.fuzz.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
	"q.fuzz.example. 300 IN MX 10 mx.fuzz.example.",
	"1.2.0.192.in-addr.arpa. 300 IN PTR q.fuzz.example.",
	"inj.fuzz.example. 300 IN A 192.0.2.53",
	`inj.fuzz.example. 300 IN TXT "honest"`,
	"mx.fuzz.example. 300 IN A 192.0.2.25",
	"fuzz.example. 300 IN SOA ns.fuzz.example. h.fuzz.example. 1 2 3 4 60",
}

type fuzzLookup struct {
	name  string
	qtype uint16
}

// fuzzQuestions are the lookups the fuzzed reply answers, chosen by qsel.
var fuzzQuestions = []fuzzLookup{
	{"q.fuzz.example.", dns.TypeA},
	{"q.fuzz.example.", dns.TypeAAAA},
	{"q.fuzz.example.", dns.TypeTXT},
	{"q.fuzz.example.", dns.TypeMX},
	{"1.2.0.192.in-addr.arpa.", dns.TypePTR},
}

// otherLookups are the lookups that must not be answered from the cache after
// the hostile exchange: the world's names, and the names the hostile reply
// mentions (at most 8), for the asked type and A and TXT, but the question.
func otherLookups(q fuzzLookup, sent []byte) []fuzzLookup {
	names := []string{"q.fuzz.example.", "inj.fuzz.example.", "mx.fuzz.example.", "1.2.0.192.in-addr.arpa."}
	m := new(dns.Msg)
	if m.Unpack(sent) == nil {
		for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range section {
				names = append(names, rr.Header().Name)
				if c, ok := rr.(*dns.CNAME); ok {
					names = append(names, c.Target)
				}
			}
		}
	}
	var out []fuzzLookup
	seen := map[fuzzLookup]bool{{strings.ToLower(q.name), q.qtype}: true}
	for _, n := range names {
		if _, ok := dns.IsDomainName(n); !ok {
			continue
		}
		n = dns.Fqdn(n)
		for _, t := range []uint16{q.qtype, dns.TypeA, dns.TypeTXT} {
			k := fuzzLookup{strings.ToLower(n), t}
			if seen[k] || len(seen) > 24 {
				continue
			}
			seen[k] = true
			out = append(out, fuzzLookup{n, t})
		}
	}
	return out
}

// checkAnswers checks that an answer other than the honest one came from the
// hostile reply and answers the question: each record is of the asked type,
// on the CNAME chain the reply gives for the asked name, and in the reply's
// answer section or, where the chain stops short of an answer, what the
// honest server has for the chain's end (honestFor).
func checkAnswers(t *testing.T, q fuzzLookup, sent []byte, matched bool, got []dns.RR, honestFor func(name string) []dns.RR) {
	t.Helper()
	if !matched {
		t.Fatalf("answer %v from a reply whose ID was not the query's", got)
	}
	m := new(dns.Msg)
	if err := m.Unpack(sent); err != nil {
		t.Fatalf("answer %v from a reply that does not parse: %v", got, err)
	}
	if !m.Response || len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, q.name) ||
		m.Question[0].Qtype != q.qtype || m.Question[0].Qclass != dns.ClassINET {
		t.Fatalf("answer %v from a reply to another question: %v", got, m.Question)
	}
	chain := map[string]bool{strings.ToLower(q.name): true}
	for grew := true; grew; {
		grew = false
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && c.Hdr.Class == dns.ClassINET && chain[strings.ToLower(c.Hdr.Name)] && !chain[strings.ToLower(c.Target)] {
				chain[strings.ToLower(c.Target)] = true
				grew = true
			}
		}
	}
	for _, rr := range got {
		h := rr.Header()
		if h.Rrtype != q.qtype || h.Class != dns.ClassINET || !chain[strings.ToLower(h.Name)] {
			t.Errorf("answer %v is not of the question (%s %s) or off its CNAME chain", rr, dns.TypeToString[q.qtype], q.name)
		}
		same := func(a dns.RR) bool { return dns.IsDuplicate(a, rr) }
		if !slices.ContainsFunc(m.Answer, same) && !slices.ContainsFunc(honestFor(h.Name), same) {
			t.Errorf("answer %v is neither in the reply's answer section nor the honest answer for its name", rr)
		}
	}
}

// sameResult reports whether two lookups gave the same records (in any
// order, TTLs aside) or the same kind of error.
func sameResult(a []dns.RR, aerr error, b []dns.RR, berr error) bool {
	if aerr != nil || berr != nil {
		if aerr == nil || berr == nil {
			return false
		}
		for _, s := range []error{ErrNXDomain, ErrNoData, ErrServFail, ErrRefused, ErrTimeout} {
			if errors.Is(aerr, s) != errors.Is(berr, s) {
				return false
			}
		}
		return true
	}
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y dns.RR) bool { return dns.IsDuplicate(x, y) }) {
			return false
		}
	}
	return true
}

// hostileServer answers every query, over UDP and TCP on one loopback port,
// with the bytes it is given, then with REFUSED; with no bytes, REFUSED only.
type hostileServer struct {
	addr string

	mu      sync.Mutex
	reply   []byte
	patchID bool
	sent    []byte // the reply as sent to the first query since set
	matched bool   // the ID of a reply was its query's
	first   bool
}

func startHostile(t testing.TB) *hostileServer {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", l.Addr().String()); err == nil {
			ln = l
			break
		}
		l.Close()
	}
	if ln == nil {
		t.Fatal("no free port for UDP and TCP")
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	h := &hostileServer{addr: ln.Addr().String()}
	go func() {
		buf := make([]byte, dns.MaxMsgSize)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, p := range h.answer(buf[:n]) {
				pc.WriteTo(p, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					for _, p := range h.answer(q) {
						if len(p) > 0xffff {
							continue
						}
						c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...))
					}
				}
			}()
		}
	}()
	return h
}

func (h *hostileServer) set(reply []byte, patchID bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply, h.patchID, h.sent, h.matched, h.first = reply, patchID, nil, false, true
}

// exchanged returns the reply sent to the first query since set (the others
// differ at most in the ID), and whether one of them had its query's ID.
func (h *hostileServer) exchanged() ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent, h.matched
}

// answer returns the datagrams to send for the query q.
func (h *hostileServer) answer(q []byte) [][]byte {
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		return nil
	}
	refused := new(dns.Msg)
	refused.SetRcode(req, dns.RcodeRefused)
	wire, err := refused.Pack()
	if err != nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reply == nil {
		return [][]byte{wire}
	}
	p := slices.Clone(h.reply)
	if h.patchID && len(p) >= 2 {
		binary.BigEndian.PutUint16(p, req.Id)
	}
	if h.first {
		h.first = false
		h.sent = p
	}
	h.matched = h.matched || len(p) >= 2 && binary.BigEndian.Uint16(p) == req.Id
	return [][]byte{p, wire}
}

// TestWriteFuzzSeeds writes the seed corpus of FuzzDNSReply
// (testdata/fuzz/FuzzDNSReply/seed-*) when HELOGUARD_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HELOGUARD_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set HELOGUARD_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDNSReply")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzSeeds(t) {
		text := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\nbyte(%q)\n", s.reply, s.patchID, s.qsel)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type fuzzSeed struct {
	name    string
	reply   []byte
	patchID bool
	qsel    uint8 // index in fuzzQuestions
}

// fuzzSeeds are hostile replies of every kind FuzzDNSReply must withstand.
func fuzzSeeds(t *testing.T) []fuzzSeed {
	// msg builds a reply to the question q (an index in fuzzQuestions) with
	// the records given in zone-file syntax, "answer", "ns" and "extra"
	// sections separated by "|".
	msg := func(qi int, rcode int, edit func(*dns.Msg), sections ...string) []byte {
		q := fuzzQuestions[qi]
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.Response, m.RecursionAvailable, m.Rcode = true, true, rcode
		for i, sec := range sections {
			for _, line := range strings.Split(sec, "|") {
				if line == "" {
					continue
				}
				rr, err := dns.NewRR(line)
				if err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				switch i {
				case 0:
					m.Answer = append(m.Answer, rr)
				case 1:
					m.Ns = append(m.Ns, rr)
				default:
					m.Extra = append(m.Extra, rr)
				}
			}
		}
		if edit != nil {
			edit(m)
		}
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const qA, qAAAA, qTXT, qMX, qPTR = 0, 1, 2, 3, 4
	huge := `q.fuzz.example. 300 IN TXT` + strings.Repeat(` "`+strings.Repeat("h", 255)+`"`, 230)
	soa := "fuzz.example. 86400 IN SOA ns.fuzz.example. h.fuzz.example. 1 2 3 4 86400"
	return []fuzzSeed{
		{"garbage", []byte("\x12\x34 this is not a DNS message at all"), true, qA},
		{"empty", nil, true, qA},
		{"header-only", msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Question = nil }), true, qA},
		{"spoofed-answer", msg(qA, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN A 192.0.2.66"), true, qA},
		{"wrong-id", msg(qA, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN A 192.0.2.66"), false, qA},
		{"wrong-question", msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Question[0].Name = "inj.fuzz.example." },
			"inj.fuzz.example. 300 IN A 6.6.6.6"), true, qA},
		{"wrong-type", msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeTXT },
			`q.fuzz.example. 300 IN TXT "v=spf1 +all"`), true, qA},
		{"not-a-response", msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Response = false }, "q.fuzz.example. 300 IN A 192.0.2.66"), true, qA},
		{"injected-answer", msg(qA, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN A 192.0.2.1|inj.fuzz.example. 300 IN A 6.6.6.6"), true, qA},
		{"injected-additional", msg(qMX, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN MX 10 mx.fuzz.example.", "",
			"mx.fuzz.example. 300 IN A 6.6.6.6|inj.fuzz.example. 300 IN TXT \"v=spf1 +all\""), true, qMX},
		{"injected-authority", msg(qTXT, dns.RcodeSuccess, nil, `q.fuzz.example. 300 IN TXT "v=spf1 -all"`,
			"fuzz.example. 300 IN NS inj.fuzz.example.|inj.fuzz.example. 300 IN TXT \"evil\""), true, qTXT},
		{"cname-out-of-chain", msg(qA, dns.RcodeSuccess, nil,
			"q.fuzz.example. 300 IN CNAME inj.fuzz.example.|inj.fuzz.example. 300 IN A 6.6.6.6|other.fuzz.example. 300 IN A 6.6.6.7"), true, qA},
		{"cname-loop", msg(qA, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN CNAME loop.fuzz.example.|loop.fuzz.example. 300 IN CNAME q.fuzz.example."), true, qA},
		{"cname-stops-short", msg(qTXT, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN CNAME inj.fuzz.example."), true, qTXT},
		{"huge-txt", msg(qTXT, dns.RcodeSuccess, nil, huge), true, qTXT},
		{"huge-txt-injected", msg(qTXT, dns.RcodeSuccess, nil, `q.fuzz.example. 300 IN TXT "v=spf1 -all"`, "",
			strings.Replace(huge, "q.fuzz", "inj.fuzz", 1)), true, qTXT},
		{"truncated", msg(qTXT, dns.RcodeSuccess, func(m *dns.Msg) { m.Truncated = true }), true, qTXT},
		{"servfail", msg(qPTR, dns.RcodeServerFailure, nil), true, qPTR},
		{"formerr", msg(qPTR, dns.RcodeFormatError, nil), true, qPTR},
		{"lame", msg(qAAAA, dns.RcodeSuccess, func(m *dns.Msg) { m.RecursionAvailable = false }), true, qAAAA},
		{"nxdomain-long-soa", msg(qAAAA, dns.RcodeNameError, nil, "", soa), true, qAAAA},
		{"nodata-foreign-soa", msg(qAAAA, dns.RcodeSuccess, nil, "", "example. 86400 IN SOA ns.example. h.example. 1 2 3 4 86400"), true, qAAAA},
		{"ptr-with-injected-a", msg(qPTR, dns.RcodeSuccess, nil, "1.2.0.192.in-addr.arpa. 300 IN PTR inj.fuzz.example.", "",
			"inj.fuzz.example. 300 IN A 6.6.6.6"), true, qPTR},
		{"other-class", msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Answer[0].Header().Class = dns.ClassCHAOS }, "q.fuzz.example. 300 IN A 6.6.6.6"), true, qA},
		{"wrong-type-answer", msg(qA, dns.RcodeSuccess, nil, "q.fuzz.example. 300 IN AAAA 2001:db8::66"), true, qA},
		{"mixed-case", msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Question[0].Name = "Q.FUZZ.example." }, "Q.Fuzz.Example. 300 IN A 192.0.2.66"), true, qA},
		{"compression-loop", append(msg(qA, dns.RcodeSuccess, func(m *dns.Msg) { m.Answer = nil })[:12:12],
			0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1), true, qA},
	}
}
