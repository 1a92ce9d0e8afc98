package policy

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Probe is a lookup that must succeed on any resolver that tells the truth
// about the public internet: the PTR of a well-known address, or the address
// of a root server's name.
type Probe struct {
	Type string     // "PTR" or "A"
	Name string     // for A: the name
	IP   netip.Addr // for PTR: the address
}

// String writes the probe as the config does: "PTR 8.8.8.8", "A a.root-servers.net".
func (p Probe) String() string {
	if p.Type == "PTR" {
		return "PTR " + p.IP.String()
	}
	return p.Type + " " + p.Name
}

// ParseProbe reads "PTR 8.8.8.8" or "A a.root-servers.net".
func ParseProbe(s string) (Probe, error) {
	t, arg, ok := strings.Cut(strings.TrimSpace(s), " ")
	arg = strings.TrimSpace(arg)
	switch {
	case !ok || arg == "":
	case strings.EqualFold(t, "PTR"):
		ip, err := netip.ParseAddr(arg)
		if err != nil {
			return Probe{}, fmt.Errorf("%q: %q is not an IP address", s, arg)
		}
		return Probe{Type: "PTR", IP: ip}, nil
	case strings.EqualFold(t, "A"):
		return Probe{Type: "A", Name: arg}, nil
	}
	return Probe{}, fmt.Errorf("%q: want \"PTR <IP>\" or \"A <name>\"", s)
}

// DefaultProbes are the probes for the public internet: Google's public
// resolver has a PTR, and a root server's name has an address.
func DefaultProbes() []Probe {
	return []Probe{{Type: "PTR", IP: netip.MustParseAddr("8.8.8.8")}, {Type: "A", Name: "a.root-servers.net"}}
}

// ProbeResolver runs the probes. The resolver looks broken when every probe
// that got an answer got "no such name or record": a resolver that answers
// NXDOMAIN to everything (a broken split horizon, a container's DNS) would
// otherwise make every client look like it has no reverse DNS. Timeouts and
// SERVFAIL are DNS trouble already handled as temperror; they neither prove
// nor disprove a lie. reason says what was seen.
func ProbeResolver(ctx context.Context, r Resolver, probes []Probe) (broken bool, reason string) {
	notFound, answered := 0, 0
	var seen []string
	for _, p := range probes {
		var err error
		switch p.Type {
		case "PTR":
			_, err = r.LookupPTR(ctx, p.IP)
		default:
			_, err = r.LookupIP(ctx, p.Name)
		}
		switch {
		case err == nil:
			answered++
			seen = append(seen, p.String()+": answered")
		case isNotFound(err):
			notFound++
			seen = append(seen, p.String()+": no such name or record")
		default:
			seen = append(seen, p.String()+": "+err.Error())
		}
	}
	return notFound > 0 && answered == 0, strings.Join(seen, "; ")
}

// ResolverHealth is whether the resolver looks broken, from two signals: the
// probes (Set), and the share of distinct recent clients whose reverse lookup
// said "no such name" (Observe). Shared by the engines of every reload; the
// zero value is healthy.
type ResolverHealth struct {
	// OnChange, if set, is called (outside the lock) when Observe changes
	// the verdict: the daemon logs it.
	OnChange func(broken bool, reason string)

	mu           sync.Mutex
	probeBroken  bool
	probeReason  string
	shareBroken  bool
	shareReason  string
	clients      map[netip.Addr]clientSeen
	clientsOrder []netip.Addr // oldest first, for expiry
	permanent    int          // clients with permanent set
}

type clientSeen struct {
	at        time.Time
	permanent bool
}

// The share signal: over the clients of the last shareWindow (at most
// shareMaxClients, the most recent), when at least shareMinClients distinct
// ones were seen and shareBrokenAt of them had no PTR at all, the resolver is
// more likely lying than the world. Real traffic, spam included, has PTR
// records for most clients.
const (
	shareWindow     = 10 * time.Minute
	shareMaxClients = 1000
	shareMinClients = 50
	shareBrokenAt   = 0.95
)

// Set records a probe's result and reports whether the verdict changed.
func (h *ResolverHealth) Set(broken bool, reason string) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	before := h.probeBroken || h.shareBroken
	h.probeBroken, h.probeReason = broken, reason
	return before != (h.probeBroken || h.shareBroken)
}

// Observe records one judged client: permanent says its reverse lookup got
// no such name (iprev permerror).
func (h *ResolverHealth) Observe(ip netip.Addr, permanent bool, now time.Time) {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.clients == nil {
		h.clients = map[netip.Addr]clientSeen{}
	}
	if old, ok := h.clients[ip]; ok {
		if old.permanent {
			h.permanent--
		}
	} else {
		h.clientsOrder = append(h.clientsOrder, ip)
	}
	h.clients[ip] = clientSeen{at: now, permanent: permanent}
	if permanent {
		h.permanent++
	}
	// Forget the oldest: past the window, or past the bound. (A client seen
	// again keeps its place in the order: it may be forgotten a little early.)
	for len(h.clientsOrder) > 0 {
		first := h.clientsOrder[0]
		c := h.clients[first]
		if len(h.clientsOrder) <= shareMaxClients && now.Sub(c.at) <= shareWindow {
			break
		}
		if c.permanent {
			h.permanent--
		}
		delete(h.clients, first)
		h.clientsOrder = h.clientsOrder[1:]
	}
	before := h.probeBroken || h.shareBroken
	n := len(h.clients)
	h.shareBroken = n >= shareMinClients && float64(h.permanent) >= shareBrokenAt*float64(n)
	h.shareReason = ""
	if h.shareBroken {
		h.shareReason = fmt.Sprintf("%d of %d distinct clients in the last %v had no PTR record at all", h.permanent, n, shareWindow)
	}
	after := h.probeBroken || h.shareBroken
	reason := h.reasonLocked()
	h.mu.Unlock()
	if before != after && h.OnChange != nil {
		h.OnChange(after, reason)
	}
}

func (h *ResolverHealth) reasonLocked() string {
	var r []string
	if h.probeBroken {
		r = append(r, "probes: "+h.probeReason)
	}
	if h.shareBroken {
		r = append(r, h.shareReason)
	}
	return strings.Join(r, "; ")
}

// Broken reports whether the resolver looks broken, and why.
func (h *ResolverHealth) Broken() (bool, string) {
	if h == nil {
		return false, ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probeBroken || h.shareBroken, h.reasonLocked()
}

// dnsFree reports whether an evidence field needs no DNS: a refusal by a rule
// that tests only these stands even when the resolver lies.
func dnsFree(name string) bool {
	switch name {
	case "helo_form", "helo_is_local", "helo_literal_matches_ip":
		return true
	}
	return false
}

// restsOnDNS reports whether a refusal by r could be caused by a lying
// resolver: every rule but those that test only DNS-free fields (a bare
// default rule rests on DNS: the accepting rules before it did not match).
func restsOnDNS(r *Rule) bool {
	if r == nil {
		return true
	}
	m := &r.Match
	if len(m.Is) == 0 || len(m.All) > 0 || len(m.Any) > 0 || m.Not != nil || len(m.PTR) > 0 {
		return true
	}
	for _, c := range m.Is {
		if !dnsFree(c.Field.Name) {
			return true
		}
	}
	return false
}

// RuleBrokenResolver is the engine's decision when a refusal rests on DNS and
// the resolver looks broken.
const RuleBrokenResolver = "broken-resolver"

// guardBroken turns a reject that rests on DNS into a tempfail while the
// resolver looks broken (Options.Health, Options.IgnoreBrokenResolver).
func (e *Engine) guardBroken(d Decision, ip netip.Addr) Decision {
	if e.opt.IgnoreBrokenResolver || d.Action != ActionReject || d.Monitor || !restsOnDNS(d.Matched) {
		return d
	}
	broken, _ := e.opt.Health.Broken()
	if !broken {
		return d
	}
	out := e.own(RuleBrokenResolver, ActionTempfail,
		Reply{Code: 451, Enhanced: "4.4.3", Text: "DNS checks for {ip} (HELO {helo}) cannot be trusted now: our resolver looks broken; try again later"},
		Reply{}, ip, d.Helo, d.Evidence)
	out.Cached = d.Cached
	return out
}

// Probe runs the engine's resolver probes (Options.Probes) and records the
// verdict in Options.Health; changed says whether it changed. With no probes
// or no Health it does nothing.
func (e *Engine) Probe(ctx context.Context) (broken, changed bool, reason string) {
	if len(e.opt.Probes) == 0 || e.opt.Health == nil || e.opt.Resolver == nil {
		return false, false, ""
	}
	broken, reason = ProbeResolver(ctx, e.opt.Resolver, e.opt.Probes)
	return broken, e.opt.Health.Set(broken, reason), reason
}
