package policy

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Options configure an Engine. The Engine keeps them as given; build a new Engine
// to change them (the milter swaps engines on reload).
type Options struct {
	Resolver        Resolver
	Rules           []Rule
	TrustedNetworks []netip.Prefix // clients here are accepted with no DNS at all
	LocalNames      []string       // HELO names that are this receiver's own
	LocalAddresses  []netip.Addr   // address literals that are this receiver's own
	GenericTokens   []string       // PTR labels that mark a pool address; nil = DefaultGenericTokens()
	// TimeoutAction is the decision when the context ends before the evidence is
	// complete (the milter's decision budget); "" means tempfail.
	TimeoutAction Action
	// UnknownClientAction is the decision on a client the MTA gives no usable
	// address for (DecideUnknownClient); "" means tempfail.
	UnknownClientAction Action
	// PrivateClientAction is the decision on a client whose address public
	// DNS cannot speak for (Unroutable); "" means tempfail.
	PrivateClientAction Action
	// EvidenceCacheSize bounds the cache of recent (IP, HELO) evidence, kept
	// until the first DNS answer behind it expires; 0 disables it. It works
	// only with a Resolver that implements Validity.
	EvidenceCacheSize int
	// Now is the clock of the evidence cache; nil means time.Now.
	Now func() time.Time
	// Health is what the resolver probes found (ProbeResolver); while it
	// looks broken, a reject that rests on DNS becomes a tempfail
	// (RuleBrokenResolver), unless IgnoreBrokenResolver. nil: never broken.
	Health               *ResolverHealth
	IgnoreBrokenResolver bool
	Probes               []Probe // what Probe looks up; none: no probing
	// Metrics counts the evidence cache's hits and misses; nil counts nothing.
	Metrics *Metrics
}

// Engine gathers evidence and applies rules. It is safe for concurrent use.
type Engine struct {
	opt      Options
	validity Validity       // nil if the resolver cannot tell
	evcache  *evidenceCache // nil if disabled
}

// Rule names the Engine itself decides by, outside the rule list.
const (
	RuleTrusted       = "trusted"          // client in trusted_networks
	RuleUnknownClient = "unknown-client"   // the MTA gave no usable client address
	RulePrivateClient = "private-client"   // an address public DNS cannot speak for (RFC 1918, CGNAT, link-local, ULA)
	RuleTimeout       = "decision-timeout" // evidence not complete within the budget
	RuleNoMatch       = "no-match"         // no rule matched: accepted
)

// ReservedRuleNames are the names the Engine decides by itself; no rule may
// take one, or logs and replay could not tell the two apart.
func ReservedRuleNames() []string {
	return []string{RuleTrusted, RuleUnknownClient, RulePrivateClient, RuleBrokenResolver, RuleTimeout, RuleNoMatch}
}

// New returns an Engine.
func New(opt Options) *Engine {
	if opt.GenericTokens == nil {
		opt.GenericTokens = DefaultGenericTokens()
	}
	if opt.TimeoutAction == "" {
		opt.TimeoutAction = ActionTempfail
	}
	if opt.UnknownClientAction == "" {
		opt.UnknownClientAction = ActionTempfail
	}
	if opt.PrivateClientAction == "" {
		opt.PrivateClientAction = ActionTempfail
	}
	local := make([]string, len(opt.LocalNames)) // the caller's slice stays as it was
	for i, n := range opt.LocalNames {
		local[i] = normName(n)
	}
	opt.LocalNames = local
	e := &Engine{opt: opt}
	if v, ok := opt.Resolver.(Validity); ok {
		e.validity = v
		e.evcache = newEvidenceCache(opt.EvidenceCacheSize, opt.Metrics)
		if e.evcache != nil && opt.Now != nil {
			e.evcache.now = opt.Now
		}
	}
	return e
}

// Rules returns the engine's rule list (not to be modified).
func (e *Engine) Rules() []Rule { return e.opt.Rules }

// Decision is the verdict on one client and HELO, with everything behind it.
type Decision struct {
	Action   Action
	Rule     string
	Matched  *Rule // the rule that decided; nil for the engine's own (ReservedRuleNames)
	Monitor  bool  // the rule is log-only: report Action, enforce nothing
	Reply    Reply // expanded; zero for accepting actions
	Trusted  bool  // decided by trusted_networks, no evidence gathered
	Cached   bool  // the evidence came from the evidence cache: no DNS
	Helo     Helo  // the HELO as parsed; zero Raw when none was sent
	Evidence Evidence
	Duration time.Duration
}

// DecideTrusted is the decision on a client in trusted_networks, made with no
// DNS at all; ok is false for any other client. The milter asks it at connect,
// Decide at HELO: one place says what "trusted" means.
func (e *Engine) DecideTrusted(ip netip.Addr, helo string) (d Decision, ok bool) {
	if !e.trusted(ip) {
		return Decision{}, false
	}
	h := ParseHelo(helo)
	return Decision{Action: ActionAccept, Rule: RuleTrusted, Trusted: true, Helo: h, Evidence: Evidence{HeloForm: h.Form}}, true
}

// cgnat is RFC 6598's shared address space, used behind carrier-grade NAT.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Unroutable reports whether public DNS cannot speak for ip: a private (RFC
// 1918, unique-local), shared (RFC 6598), link-local or unspecified address.
// Such a client seen outside trusted_networks means a NAT or container network
// in front of the MTA (every client appears as its gateway) or an internal
// client: its reverse DNS says nothing either way. Loopback is not among them:
// it is trusted by default, and an operator who takes it out of
// trusted_networks asks for it to be judged.
func Unroutable(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsPrivate() || cgnat.Contains(ip) || ip.IsLinkLocalUnicast() || ip.IsUnspecified()
}

// decidePrivate is the decision on an Unroutable client: PrivateClientAction,
// with no DNS; refusing to judge it is what keeps a misplaced NAT from
// turning every client into a "no reverse DNS" reject.
func (e *Engine) decidePrivate(ip netip.Addr, h Helo) Decision {
	return e.own(RulePrivateClient, e.opt.PrivateClientAction,
		Reply{Code: 451, Enhanced: "4.7.1", Text: "client {ip} has an address public DNS cannot speak for; try again later"},
		Reply{Code: 550, Enhanced: "5.7.1", Text: "client {ip} has an address public DNS cannot speak for"},
		ip, h, Evidence{HeloForm: h.Form})
}

// own is a decision the engine makes by itself (ReservedRuleNames): the rule
// name, the action, and the reply for each refusing action (zero: the
// action's default reply), expanded over ip, h and ev.
func (e *Engine) own(name string, a Action, tempfail, reject Reply, ip netip.Addr, h Helo, ev Evidence) Decision {
	r := &Rule{Name: name, Action: a}
	switch a {
	case ActionTempfail:
		r.Reply = tempfail
	case ActionReject:
		r.Reply = reject
	}
	d := Decision{Action: a, Rule: name, Helo: h, Evidence: ev}
	d.Reply = e.reply(r, &Facts{IP: ip, Helo: h, Evidence: ev})
	return d
}

// DecideUnknownClient is the decision on a client the MTA gives no usable
// address for (a CONNECT of family unknown, or an address that does not
// parse): with no address there is no evidence to gather, and
// UnknownClientAction applies. A local (unix socket) client is not one: the
// milter does not judge those at all.
func (e *Engine) DecideUnknownClient(helo string) Decision {
	h := ParseHelo(helo)
	return e.own(RuleUnknownClient, e.opt.UnknownClientAction,
		Reply{Code: 451, Enhanced: "4.7.1", Text: "client address unknown to the MTA; try again later"},
		Reply{Code: 550, Enhanced: "5.7.1", Text: "client address unknown to the MTA"},
		netip.Addr{}, h, Evidence{HeloForm: h.Form})
}

func (e *Engine) trusted(ip netip.Addr) bool { return anyPrefix(e.opt.TrustedNetworks, ip.Unmap()) }

// PendingReverse is reverse-DNS evidence being gathered in the background.
type PendingReverse struct {
	done    chan struct{}
	rev     Reverse
	expires func() time.Time // earliest expiry of the answers behind rev; nil if unknown
}

// StartReverse begins the iprev lookups for ip; the milter calls it at connect so
// the work overlaps the client's greeting and HELO.
func (e *Engine) StartReverse(ctx context.Context, ip netip.Addr) *PendingReverse {
	p := &PendingReverse{done: make(chan struct{})}
	if e.validity != nil {
		ctx, p.expires = e.validity.Track(ctx)
	}
	if Unroutable(ip) { // judged without DNS: nothing to look up
		close(p.done)
		return p
	}
	go func() {
		p.rev = LookupReverse(ctx, e.opt.Resolver, ip)
		close(p.done)
	}()
	return p
}

// Wait returns the reverse evidence, or ok=false if ctx ends first.
func (p *PendingReverse) Wait(ctx context.Context) (Reverse, bool) {
	select {
	case <-p.done:
		return p.rev, true
	case <-ctx.Done():
		return Reverse{IPRev: IPRevTempError}, false
	}
}

// Evaluate decides on ip and helo ("" = no HELO sent), doing all lookups.
func (e *Engine) Evaluate(ctx context.Context, ip netip.Addr, helo string) Decision {
	return e.Decide(ctx, ip, helo, nil)
}

// Decide is Evaluate with the reverse lookups possibly already under way.
func (e *Engine) Decide(ctx context.Context, ip netip.Addr, helo string, rev *PendingReverse) Decision {
	start := time.Now()
	ip = ip.Unmap()
	if e.trusted(ip) { // tested first: most clients are not, and a Decision is large
		d, _ := e.DecideTrusted(ip, helo)
		d.Duration = time.Since(start)
		return d
	}
	h := ParseHelo(helo)
	if Unroutable(ip) {
		d := e.decidePrivate(ip, h)
		d.Duration = time.Since(start)
		return d
	}
	if ev, ok := e.evcache.get(ip, helo); ok {
		d := e.guardBroken(e.Judge(ip, h, ev), ip)
		d.Cached, d.Duration = true, time.Since(start)
		return d
	}
	var expires func() time.Time
	if e.evcache != nil {
		ctx, expires = e.validity.Track(ctx)
	}
	if rev == nil {
		rev = e.StartReverse(ctx, ip)
	}
	ev, complete := e.gather(ctx, ip, h, rev)
	var d Decision
	if complete {
		e.opt.Health.Observe(ip, ev.IPRev == IPRevPermError, time.Now())
		d = e.guardBroken(e.Judge(ip, h, ev), ip)
		if expires != nil && rev.expires != nil {
			// The earliest expiry of any answer behind the evidence; zero from
			// expires() means the HELO needed no lookup (a bare HELO, a literal).
			exp, r := expires(), rev.expires()
			if exp.IsZero() || r.Before(exp) {
				exp = r
			}
			e.evcache.add(ip, helo, ev, exp)
		}
	} else {
		d = e.timeout(ip, h, ev)
	}
	d.Duration = time.Since(start)
	return d
}

// gather collects the evidence: HELO lookups run while the reverse lookups
// finish. complete is false when ctx ended first.
func (e *Engine) gather(ctx context.Context, ip netip.Addr, h Helo, pending *PendingReverse) (Evidence, bool) {
	ev := Evidence{HeloForm: h.Form, SPFHelo: SPFNone, PTRSPF: SPFNone}
	ev.HeloIsLocal = e.isLocal(h)
	if h.Form == HeloAddressLiteral {
		ev.HeloLiteralMatchesIP = h.Literal == ip
	}
	var wg sync.WaitGroup
	if h.Form == HeloFQDN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An address of the client is a match even if the other address
			// type failed; without one, a failure leaves the match unknown.
			addrs, err := e.opt.Resolver.LookupIP(ctx, h.Name)
			ev.HeloAMatchesIP = containsAddr(addrs, ip)
			ev.HeloATempError = !ev.HeloAMatchesIP && err != nil && !isNotFound(err)
		}()
		// SPF runs here rather than in a goroutine of its own: its call chain
		// is deep, and a fresh goroutine's stack would be grown and copied on
		// every decision.
		ev.SPFHelo = CheckHelo(ctx, e.opt.Resolver, ip, h.Name)
	}
	rev, ok := pending.Wait(ctx)
	wg.Wait()
	e.reverseEvidence(&ev, ip, rev)
	for _, name := range rev.Confirmed {
		if h.Name != "" && name == h.Name {
			ev.HeloMatchesPTR = true
		}
	}
	if h.Form == HeloFQDN {
		ev.HeloAligned = Aligned(h.Name, rev.Confirmed)
	}
	return ev, ok && ctx.Err() == nil
}

// reverseEvidence fills the fields that depend on the IP alone.
func (e *Engine) reverseEvidence(ev *Evidence, ip netip.Addr, rev Reverse) {
	// Empty lists, not nil, so logs and JSON show [] rather than null.
	ev.IPRev, ev.PTR, ev.PTRConfirmed = rev.IPRev, append([]string{}, rev.Names...), append([]string{}, rev.Confirmed...)
	ev.PTRSPF = rev.PTRSPF
	if ev.PTRSPF == "" { // the lookups did not finish
		ev.PTRSPF = SPFNone
	}
	for _, name := range rev.Confirmed {
		if IsGenericPTR(name, ip, e.opt.GenericTokens) {
			ev.PTRGeneric = true
		}
	}
}

func (e *Engine) isLocal(h Helo) bool {
	switch h.Form {
	case HeloFQDN, HeloBare:
		return slices.Contains(e.opt.LocalNames, h.Name)
	case HeloAddressLiteral:
		return slices.Contains(e.opt.LocalAddresses, h.Literal)
	}
	return false
}

// Judge applies the rules to evidence already gathered: no DNS. replay uses it
// to re-decide logged evidence.
func (e *Engine) Judge(ip netip.Addr, h Helo, ev Evidence) Decision {
	f := &Facts{IP: ip.Unmap(), Helo: h, Evidence: ev}
	for i := range e.opt.Rules {
		r := &e.opt.Rules[i]
		if !r.Match.Holds(f) {
			continue
		}
		return Decision{Action: r.Action, Rule: r.Name, Matched: r, Monitor: r.Monitor, Helo: h, Evidence: ev, Reply: e.reply(r, f)}
	}
	return Decision{Action: ActionAccept, Rule: RuleNoMatch, Helo: h, Evidence: ev}
}

// reply is the expanded reply of a rule that fired; zero for accepting rules.
func (e *Engine) reply(r *Rule, f *Facts) Reply {
	if !r.Action.Refuses() {
		return Reply{}
	}
	tmpl := r.Reply
	if tmpl.Code == 0 {
		tmpl = DefaultReply(r.Action)
	}
	return Reply{Code: tmpl.Code, Enhanced: tmpl.Enhanced, Text: expand(tmpl.Text, r.Name, f)}
}

func (e *Engine) timeout(ip netip.Addr, h Helo, ev Evidence) Decision {
	return e.own(RuleTimeout, e.opt.TimeoutAction,
		Reply{Code: 451, Enhanced: "4.4.3", Text: "DNS checks for {ip} (HELO {helo}) took too long; try again later"},
		Reply{}, ip, h, ev)
}
