// Package dnsworld serves a DNS world over real UDP and TCP sockets on loopback,
// for tests, benchmarks and `heloguard test`. It answers like a recursive
// resolver: RA set, names case-insensitive, CNAME chains followed inside the zone
// and returned whole, NXDOMAIN for a name that owns nothing, NODATA for a name
// that owns other types, an SOA in the authority section of negative answers,
// and EDNS0 honoured (UDP answers larger than the client's advertised size are
// truncated with TC set).
//
// Details a client may depend on:
//   - The SOA of a negative answer is the closest enclosing SOA added to the
//     zone, served as stored (its own TTL and MINIMUM, so tests can make them
//     differ); without one, an SOA is synthesized at the name's top-level label
//     with TTL = MINIMUM = the SetNegativeTTL value.
//   - A CNAME loop is answered NOERROR with the chain up to and including the
//     CNAME that closes the loop, as Unbound does: the client must detect the
//     loop. A chain that does not end within 16 names is answered SERVFAIL.
//   - A message whose opcode is not QUERY, that has QR set or that does not
//     hold exactly one question gets FORMERR; a class other than IN gets
//     NOTIMP. Replies to
//     EDNS0 queries carry an OPT record advertising 1232 bytes.
//
// It is not a test-only package (it does not import testing): it ships in the
// binary because `heloguard test` serves scenario files with it. Every test of
// this repository that needs DNS uses it as its server.
package dnsworld

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Fault makes the server misbehave for one name and type.
type Fault string

// Faults understood by the server.
const (
	FaultServfail Fault = "servfail" // rcode SERVFAIL
	FaultRefused  Fault = "refused"  // rcode REFUSED
	FaultTimeout  Fault = "timeout"  // no answer at all
	FaultTruncate Fault = "truncate" // UDP answer empty with TC set; TCP answers in full
	// FaultTruncateNoTCP: UDP answer empty with TC set; over TCP the
	// connection is closed with no answer, as by a server or firewall that
	// does not do DNS over TCP.
	FaultTruncateNoTCP Fault = "truncate-notcp"
	// FaultLate: the right answer, but only after the zone's late delay
	// (SetLateDelay; default 5s), when the client has given up.
	FaultLate Fault = "late"
	// FaultGarbage: a reply that is not a DNS message: the query's ID and a
	// header claiming one answer, then bytes that do not parse.
	FaultGarbage Fault = "garbage"
	// FaultWrongID: the right answer with another message ID, as a spoofer
	// guessing IDs would send it.
	FaultWrongID Fault = "wrong-id"
	// FaultFlap: SERVFAIL and the right answer in turn, counted per name and
	// type, starting with SERVFAIL: a flapping upstream.
	FaultFlap Fault = "flap"
)

// Faults returns every fault the server understands.
func Faults() []Fault {
	return []Fault{FaultServfail, FaultRefused, FaultTimeout, FaultTruncate, FaultTruncateNoTCP,
		FaultLate, FaultGarbage, FaultWrongID, FaultFlap}
}

// DefaultLateDelay is how late FaultLate answers unless SetLateDelay changes
// it: more than the 2s a resolver usually waits for one reply.
const DefaultLateDelay = 5 * time.Second

// DefaultNegativeTTL is the TTL and MINIMUM of the synthesized SOA in negative
// answers unless SetNegativeTTL changes it.
const DefaultNegativeTTL = 60

type key struct {
	name  string // lowercased FQDN
	qtype uint16
}

func keyOf(name string, qtype uint16) key {
	return key{strings.ToLower(dns.Fqdn(name)), qtype}
}

// Zone holds records and faults. Build it, then serve it; it is safe for
// concurrent use, so it may also be changed while served.
type Zone struct {
	mu     sync.RWMutex
	rrs    map[string][]dns.RR // by lowercased owner
	faults map[key]Fault
	negTTL uint32
	late   time.Duration
}

// NewZone returns an empty zone.
func NewZone() *Zone {
	return &Zone{
		rrs:    make(map[string][]dns.RR),
		faults: make(map[key]Fault),
		negTTL: DefaultNegativeTTL,
		late:   DefaultLateDelay,
	}
}

// AddRR adds one record in zone-file syntax with an absolute owner name, for
// example "mail.example. 300 IN A 192.0.2.1". A blank line or a comment adds
// nothing.
func (z *Zone) AddRR(line string) error {
	rr, err := dns.NewRR(line)
	if err != nil {
		return err
	}
	if rr == nil {
		return nil // blank line or comment
	}
	z.AddRRs(rr)
	return nil
}

// AddRRs adds records.
func (z *Zone) AddRRs(rr ...dns.RR) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range rr {
		owner := strings.ToLower(dns.Fqdn(r.Header().Name))
		z.rrs[owner] = append(z.rrs[owner], dns.Copy(r))
	}
}

// AddFault makes queries for name and qtype fail with f. qtype dns.TypeANY
// means every type of that name that has no fault of its own. A fault applies
// to the query name only, not to names reached through a CNAME.
func (z *Zone) AddFault(name string, qtype uint16, f Fault) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.faults[keyOf(name, qtype)] = f
}

// SetNegativeTTL sets the TTL and MINIMUM of the SOA that the server
// synthesizes for negative answers (default 60). An SOA record added to the
// zone is used instead, as stored, for names at or below its owner.
func (z *Zone) SetNegativeTTL(ttl uint32) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.negTTL = ttl
}

// SetLateDelay sets how long after the query FaultLate answers.
func (z *Zone) SetLateDelay(d time.Duration) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.late = d
}

func (z *Zone) lateDelay() time.Duration {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return z.late
}

func (z *Zone) fault(name string, qtype uint16) Fault {
	z.mu.RLock()
	defer z.mu.RUnlock()
	if f, ok := z.faults[keyOf(name, qtype)]; ok {
		return f
	}
	return z.faults[keyOf(name, dns.TypeANY)]
}

// maxChain bounds CNAME chains followed inside the zone.
const maxChain = 16

// resolve fills the answer and authority sections of m for name and qtype and
// returns the rcode.
func (z *Zone) resolve(m *dns.Msg, name string, qtype uint16) int {
	z.mu.RLock()
	defer z.mu.RUnlock()
	seen := make(map[string]bool)
	cur := strings.ToLower(dns.Fqdn(name))
	for range maxChain {
		if seen[cur] {
			return dns.RcodeSuccess // CNAME loop: the chain so far, loop included
		}
		seen[cur] = true
		rrs, ok := z.rrs[cur]
		if !ok {
			m.Ns = append(m.Ns, z.soaFor(cur))
			return dns.RcodeNameError
		}
		var match []dns.RR
		var cname *dns.CNAME
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == qtype || qtype == dns.TypeANY {
				match = append(match, dns.Copy(rr))
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if len(match) > 0 {
			m.Answer = append(m.Answer, match...)
			return dns.RcodeSuccess
		}
		if cname == nil {
			m.Ns = append(m.Ns, z.soaFor(cur))
			return dns.RcodeSuccess // NODATA
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		cur = strings.ToLower(dns.Fqdn(cname.Target))
	}
	return dns.RcodeServerFailure
}

// soaFor returns the closest enclosing SOA of the zone, or one synthesized at
// the top-level label of name. z.mu must be held.
func (z *Zone) soaFor(name string) dns.RR {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		for _, rr := range z.rrs[name[off:]] {
			if soa, ok := rr.(*dns.SOA); ok {
				return dns.Copy(soa)
			}
		}
	}
	owner := "."
	if labels := dns.SplitDomainName(name); len(labels) > 0 {
		owner = labels[len(labels)-1] + "."
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: owner, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.negTTL},
		Ns:      "ns.dnsworld.invalid.",
		Mbox:    "hostmaster.dnsworld.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  z.negTTL,
	}
}
