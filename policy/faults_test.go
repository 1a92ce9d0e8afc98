package policy_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// The DNS fault matrix: every kind of DNS trouble, on each lookup a decision
// makes, served by a misbehaving server on loopback and read through dnscache
// as the daemon reads it. For each: the verdict of the built-in rules (our DNS
// trouble defers the client, it never refuses or accepts it, unless the
// lookup it hits cannot change the verdict), the decision within
// decision_timeout, the failed lookup named with its cause, and nothing kept
// that should not be: once the fault clears, the failure is served from the
// cache for failure_ttl and then the decision is right again.
//
// docs/dns-faults.md holds the table this test prints (go test -v -run
// TestDNSFaultMatrix ./policy/).

// The resolver and decision budgets of the matrix: the daemon's defaults
// (2s per attempt, two attempts per server, decision_timeout 8s) halved, the
// same proportions. An honest answer has a whole second to come: the matrix
// must hold on a loaded machine.
const (
	faultAttemptTimeout  = time.Second
	faultDecisionTimeout = 4 * time.Second
	faultLateDelay       = 3 * time.Second        // a late answer comes after the attempt gave up
	faultSlowDelay       = 600 * time.Millisecond // a slow answer comes within the attempt, but 8 in a row exceed the decision's budget
)

// faultWorld is three clients, each accepted when DNS is well:
//   - 192.0.2.10, PTR mail.sender.example, HELO out.sender.example, whose SPF
//     record authorizes it through a chain of seven includes: generic-helo;
//   - 192.0.2.20, PTR mail.a-sender.example, HELO relay.b-sender.example,
//     whose A record is the client and which has no SPF: helo-a-matches;
//   - 192.0.2.30, the generic-looking PTR mta-0-2-30.bigsender.example (and
//     the same HELO), whose domain's SPF authorizes it: helo-equals-ptr.
var faultWorld = func() []string {
	w := []string{
		"10.2.0.192.in-addr.arpa. 300 IN PTR mail.sender.example.",
		"mail.sender.example. 300 IN A 192.0.2.10",
		"out.sender.example. 300 IN A 192.0.2.200",
		`out.sender.example. 300 IN TXT "v=spf1 include:_spf1.sender.example -all"`,
		`sender.example. 300 IN TXT "v=spf1 -all"`,
		"20.2.0.192.in-addr.arpa. 300 IN PTR mail.a-sender.example.",
		"mail.a-sender.example. 300 IN A 192.0.2.20",
		"relay.b-sender.example. 300 IN A 192.0.2.20",
		"30.2.0.192.in-addr.arpa. 300 IN PTR mta-0-2-30.bigsender.example.",
		"mta-0-2-30.bigsender.example. 300 IN A 192.0.2.30",
		`bigsender.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
	}
	for i := 1; i < 7; i++ {
		w = append(w, fmt.Sprintf(`_spf%d.sender.example. 300 IN TXT "v=spf1 include:_spf%d.sender.example -all"`, i, i+1))
	}
	return append(w, `_spf7.sender.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
}()

// faultLookup is a lookup a fault hits: a name, and a type or dns.TypeANY for
// every type of the name.
type faultLookup struct {
	name  string
	qtype uint16
}

func (l faultLookup) String() string {
	if l.qtype == dns.TypeANY {
		return strings.TrimSuffix(l.name, ".")
	}
	return dns.TypeToString[l.qtype] + " " + strings.TrimSuffix(l.name, ".")
}

// faultTarget is a row of the matrix: which of a decision's lookups the fault
// hits.
type faultTarget struct {
	name     string
	ip, helo string
	hits     []faultLookup // the lookups the fault hits
	honest   string        // the rule that accepts when DNS is well
	fails    string        // the rule when the lookups fail; "" = honest: the failure cannot change the verdict
	named    faultLookup   // the failed lookup dns_failures must name
	perType  bool          // the fault hits one type of a name that owns others: a CNAME loop, which takes the whole name, does not apply
}

var everyNameOfSender = func() []faultLookup {
	var l []faultLookup
	seen := map[string]bool{}
	for _, line := range faultWorld {
		owner := strings.Fields(line)[0]
		if strings.Contains(line, "sender.example") && !strings.Contains(owner, "a-sender") && !strings.Contains(owner, "b-sender") &&
			!strings.Contains(owner, "bigsender") && !strings.HasPrefix(owner, "20.") && !strings.HasPrefix(owner, "30.") && !seen[owner] {
			seen[owner] = true
			l = append(l, faultLookup{owner, dns.TypeANY})
		}
	}
	return l
}()

var faultTargets = []faultTarget{
	{name: "every lookup", ip: "192.0.2.10", helo: "out.sender.example", hits: everyNameOfSender,
		honest: "generic-helo", fails: "reverse-dns-temperror", named: faultLookup{"10.2.0.192.in-addr.arpa.", dns.TypePTR}},
	{name: "PTR", ip: "192.0.2.10", helo: "out.sender.example", hits: []faultLookup{{"10.2.0.192.in-addr.arpa.", dns.TypePTR}},
		honest: "generic-helo", fails: "reverse-dns-temperror", named: faultLookup{"10.2.0.192.in-addr.arpa.", dns.TypePTR}},
	{name: "A of the PTR name", ip: "192.0.2.10", helo: "out.sender.example", hits: []faultLookup{{"mail.sender.example.", dns.TypeA}},
		honest: "generic-helo", fails: "reverse-dns-temperror", named: faultLookup{"mail.sender.example.", dns.TypeA}},
	{name: "SPF record of the HELO", ip: "192.0.2.10", helo: "out.sender.example", hits: []faultLookup{{"out.sender.example.", dns.TypeTXT}},
		honest: "generic-helo", fails: "helo-spf-temperror", named: faultLookup{"out.sender.example.", dns.TypeTXT}, perType: true},
	{name: "an include of the HELO's SPF", ip: "192.0.2.10", helo: "out.sender.example", hits: []faultLookup{{"_spf4.sender.example.", dns.TypeTXT}},
		honest: "generic-helo", fails: "helo-spf-temperror", named: faultLookup{"_spf4.sender.example.", dns.TypeTXT}},
	{name: "A of the HELO, SPF passes", ip: "192.0.2.10", helo: "out.sender.example", hits: []faultLookup{{"out.sender.example.", dns.TypeA}},
		honest: "generic-helo", named: faultLookup{"out.sender.example.", dns.TypeA}, perType: true},
	{name: "SPF of the PTR's domain, PTR not generic", ip: "192.0.2.10", helo: "out.sender.example", hits: []faultLookup{{"sender.example.", dns.TypeTXT}},
		honest: "generic-helo", named: faultLookup{"sender.example.", dns.TypeTXT}},
	{name: "A of the HELO, which decides", ip: "192.0.2.20", helo: "relay.b-sender.example", hits: []faultLookup{{"relay.b-sender.example.", dns.TypeA}},
		honest: "helo-a-matches", fails: "helo-a-temperror", named: faultLookup{"relay.b-sender.example.", dns.TypeA}},
	{name: "SPF of the generic PTR's domain", ip: "192.0.2.30", helo: "mta-0-2-30.bigsender.example", hits: []faultLookup{{"bigsender.example.", dns.TypeTXT}},
		honest: "helo-equals-ptr", fails: "generic-ptr-temperror", named: faultLookup{"bigsender.example.", dns.TypeTXT}},
}

// faultKind is a column of the matrix: a way for DNS to misbehave.
type faultKind struct {
	name string
	// fault is the dnsworld fault set on the hit lookups; "" for the kinds
	// below that change the world or the servers instead.
	fault dnsworld.Fault
	// cnameLoop replaces the hit names' records with CNAME loops.
	cnameLoop bool
	// server, if set, makes the servers the resolver asks, given the honest
	// one: the fault is in the servers, not in any one lookup, and only the
	// "every lookup" row applies.
	server func(t *testing.T, honest *dnsworld.Server) []string
	// cause is the cause dns_failures must give; "" = no lookup fails (the
	// resolver works around the fault).
	cause dnscache.Cause
	// budget: the fault is slowness that exhausts decision_timeout.
	budget bool
}

var faultKinds = []faultKind{
	{name: "no answer", fault: dnsworld.FaultTimeout, cause: dnscache.CauseTimeout},
	{name: "answer after the attempt's timeout", fault: dnsworld.FaultLate, cause: dnscache.CauseTimeout},
	{name: "every answer slow, past decision_timeout in all", server: func(t *testing.T, s *dnsworld.Server) []string {
		s.SetDelay(faultSlowDelay)
		return []string{s.Addr}
	}, cause: dnscache.CauseTimeout, budget: true},
	{name: "SERVFAIL", fault: dnsworld.FaultServfail, cause: dnscache.CauseServFail},
	{name: "REFUSED", fault: dnsworld.FaultRefused, cause: dnscache.CauseRefused},
	{name: "truncated, TCP refused", fault: dnsworld.FaultTruncateNoTCP, cause: dnscache.CauseTruncated},
	{name: "garbage bytes", fault: dnsworld.FaultGarbage, cause: dnscache.CauseMalformed},
	{name: "wrong ID", fault: dnsworld.FaultWrongID, cause: dnscache.CauseMismatch},
	{name: "CNAME loop", cnameLoop: true, cause: dnscache.CauseCNAMELoop},
	{name: "first of two servers dead (no answer)", server: func(t *testing.T, s *dnsworld.Server) []string {
		return []string{blackhole(t), s.Addr}
	}},
	{name: "first of two servers down (port closed)", server: func(t *testing.T, s *dnsworld.Server) []string {
		return []string{closedPort(t), s.Addr}
	}},
	{name: "answers flapping (SERVFAIL, answer, ...)", fault: dnsworld.FaultFlap},
}

// blackhole returns a loopback UDP address that reads queries and never
// answers.
func blackhole(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// closedPort returns a loopback address nobody listens on, UDP or TCP.
func closedPort(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// faultZone is the world with kind applied to the hit lookups (nil kind: the
// honest world).
func faultZone(t *testing.T, kind *faultKind, hits []faultLookup) *dnsworld.Zone {
	t.Helper()
	z := dnsworld.NewZone()
	z.SetLateDelay(faultLateDelay)
	looped := map[string]bool{}
	if kind != nil && kind.cnameLoop {
		for _, h := range hits {
			looped[h.name] = true
		}
	}
	for _, line := range faultWorld {
		if looped[strings.Fields(line)[0]] {
			continue
		}
		if err := z.AddRR(line); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range slices.Sorted(func(yield func(string) bool) {
		for n := range looped {
			if !yield(n) {
				return
			}
		}
	}) {
		partner := fmt.Sprintf("loop%d.fault.example.", i)
		for _, rr := range []string{h + " 300 IN CNAME " + partner, partner + " 300 IN CNAME " + h} {
			if err := z.AddRR(rr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if kind != nil && kind.fault != "" {
		for _, h := range hits {
			z.AddFault(h.name, h.qtype, kind.fault)
		}
	}
	return z
}

// faultRow is one line of the printed table.
type faultRow struct {
	kind, target, verdict, took, named string
}

func TestDNSFaultMatrix(t *testing.T) {
	var (
		mu   sync.Mutex
		rows = map[[2]int]faultRow{}
	)
	// The cells run 16 at a time: they spend their time waiting for answers
	// that do not come, which -parallel (GOMAXPROCS) would serialize; more at
	// once would starve the honest answers of CPU under -race.
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16)
	for ki := range faultKinds {
		kind := &faultKinds[ki]
		for ti := range faultTargets {
			target := &faultTargets[ti]
			if (kind.server != nil && ti != 0) || (kind.cnameLoop && target.perType) {
				continue
			}
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				t.Run(kind.name+"/"+target.name, func(t *testing.T) {
					row := runFaultCell(t, kind, target)
					mu.Lock()
					rows[[2]int{ki, ti}] = row
					mu.Unlock()
				})
			})
		}
	}
	wg.Wait()
	var b strings.Builder
	b.WriteString("| fault | lookup hit | verdict (rule) | decided in | dns_failures |\n|---|---|---|---|---|\n")
	for ki := range faultKinds {
		for ti := range faultTargets {
			if r, ok := rows[[2]int{ki, ti}]; ok {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.kind, r.target, r.verdict, r.took, r.named)
			}
		}
	}
	t.Logf("attempt timeout %v, 2 attempts per server, decision_timeout %v, failure_ttl %v\n%s",
		faultAttemptTimeout, faultDecisionTimeout, dnscache.DefaultFailureTTL, b.String())
}

// fakeFaultClock is the clock of the resolver's cache and the evidence cache.
type fakeFaultClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeFaultClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeFaultClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func runFaultCell(t *testing.T, kind *faultKind, target *faultTarget) faultRow {
	srv, err := dnsworld.Start(faultZone(t, kind, target.hits))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	servers := []string{srv.Addr}
	if kind.server != nil {
		servers = kind.server(t, srv)
	}
	clock := &fakeFaultClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	res, err := dnscache.New(dnscache.Config{Servers: servers, Timeout: faultAttemptTimeout, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	opt := config.Default().PolicyOptions(res)
	opt.LocalNames = []string{"mx.receiver.example"}
	opt.Now = clock.Now // the evidence cache is on, as in the daemon
	eng := policy.New(opt)
	ip := netip.MustParseAddr(target.ip)

	decide := func() (policy.Decision, []dnscache.Failure, time.Duration) {
		tally := &dnscache.Tally{}
		ctx, cancel := context.WithTimeout(dnscache.WithTally(context.Background(), tally), faultDecisionTimeout)
		defer cancel()
		start := time.Now()
		d := eng.Evaluate(ctx, ip, target.helo)
		return d, tally.Failures(), time.Since(start)
	}
	wantRule := target.honest
	switch {
	case kind.budget:
		wantRule = policy.RuleTimeout
	case kind.cause != "" && target.fails != "":
		wantRule = target.fails
	}

	// The fault: the verdict, in time, and the failure named.
	d, failures, took := decide()
	if d.Rule != wantRule {
		t.Errorf("decided %s by %s, want rule %s; failures %+v", d.Action, d.Rule, wantRule, failures)
	}
	if wantRule != target.honest && d.Action != policy.ActionTempfail {
		t.Errorf("DNS trouble gave %s, want tempfail", d.Action)
	}
	if limit := faultDecisionTimeout + time.Second; took >= limit {
		t.Errorf("decided in %v, want under %v", took, limit)
	}
	checkNamed(t, "during the fault", kind, target, failures, false)

	// The fault clears: a failure stays in the cache for failure_ttl (so the
	// same verdict, named as cached), and not a moment longer.
	srv.SetDelay(0)
	srv.SetZone(faultZone(t, nil, nil))
	if kind.cause != "" && !kind.budget {
		d2, failures2, _ := decide()
		if d2.Rule != wantRule {
			t.Errorf("within failure_ttl: decided by %s, want %s again", d2.Rule, wantRule)
		}
		checkNamed(t, "within failure_ttl", kind, target, failures2, true)
	}
	clock.Add(dnscache.DefaultFailureTTL)
	d3, failures3, _ := decide()
	if d3.Rule != target.honest || d3.Action != policy.ActionAccept || len(failures3) > 0 {
		t.Errorf("after the fault and failure_ttl: %s by %s, failures %+v; want accept by %s", d3.Action, d3.Rule, failures3, target.honest)
	}

	row := faultRow{kind: kind.name, target: target.name, verdict: fmt.Sprintf("%s (%s)", d.Action, d.Rule),
		took: fmt.Sprintf("%d ms", took.Milliseconds()), named: "none"}
	if target.fails == "" && kind.cause != "" && !kind.budget {
		row.verdict += ": the failure cannot change it"
	}
	if len(failures) > 0 {
		var named []string
		for _, f := range failures {
			s := f.Type + " " + f.Name + ": " + string(f.Cause)
			if f.Server == "" {
				s += " (no server: the decision's time ran out)"
			}
			named = append(named, s)
		}
		row.named = strings.Join(named, "; ")
	}
	return row
}

// checkNamed checks that failures name the target's lookup with the kind's
// cause (every failure listed has that cause), or that there are none when
// the resolver worked around the fault.
func checkNamed(t *testing.T, when string, kind *faultKind, target *faultTarget, failures []dnscache.Failure, cached bool) {
	t.Helper()
	if kind.cause == "" {
		if len(failures) > 0 {
			t.Errorf("%s: failures %+v, want none (the resolver works around this fault)", when, failures)
		}
		return
	}
	if len(failures) == 0 {
		t.Errorf("%s: no failure named, want %s with cause %s", when, target.named, kind.cause)
		return
	}
	found := false
	for _, f := range failures {
		if f.Cause != kind.cause {
			t.Errorf("%s: %+v, want cause %s", when, f, kind.cause)
		}
		if kind.budget {
			if f.Server != "" {
				t.Errorf("%s: %+v, want no server: the decision's time ran out, not a server's", when, f)
			}
			found = true // whichever lookup was under way
			continue
		}
		if f.Cached != cached {
			t.Errorf("%s: %+v, want cached %v", when, f, cached)
		}
		if f.Name == strings.TrimSuffix(target.named.name, ".") && f.Type == dns.TypeToString[target.named.qtype] {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: failures %+v do not name %s", when, failures, target.named)
	}
}
