package policy

import "net/netip"

// UsesHelo reports whether the match looks at anything the HELO decides.
func (m *Match) UsesHelo() bool {
	if len(m.Helo) > 0 {
		return true
	}
	for _, c := range m.Is {
		if c.Field.Helo {
			return true
		}
	}
	for _, list := range [][]Match{m.All, m.Any} {
		for i := range list {
			if list[i].UsesHelo() {
				return true
			}
		}
	}
	return m.Not != nil && m.Not.UsesHelo()
}

// JudgeEarly decides from reverse DNS alone, before any HELO, for reject_at:
// connect. It walks the rules in order: a rule that needs the HELO but can only
// refuse is passed over (whatever it would say, the client is refused either
// way, as long as every such rule has the same action as the one that decides),
// a rule that needs the HELO and might let the client through (accepting, or
// monitor-only) ends the walk undecided, and
// the first rule that holds without the HELO decides. ok=false means: wait for
// the HELO.
func (e *Engine) JudgeEarly(ip netip.Addr, rev Reverse) (Decision, bool) {
	ip = ip.Unmap()
	if Unroutable(ip) {
		d := e.decidePrivate(ip, Helo{Form: HeloEmpty})
		return d, d.Action.Refuses()
	}
	ev := Evidence{SPFHelo: SPFNone, HeloForm: HeloEmpty}
	e.reverseEvidence(&ev, ip, rev)
	f := &Facts{IP: ip, Evidence: ev}
	var passed []Action // actions of the HELO rules passed over
	for i := range e.opt.Rules {
		r := &e.opt.Rules[i]
		if r.Match.UsesHelo() {
			if r.Action.Refuses() && !r.Monitor {
				passed = append(passed, r.Action)
				continue
			}
			return Decision{}, false // might let the client through: wait for the HELO
		}
		if !r.Match.Holds(f) {
			continue
		}
		if !r.Action.Refuses() {
			return Decision{}, false // accepting needs the whole evidence, at HELO
		}
		for _, a := range passed {
			if a != r.Action {
				// A rule passed over might have refused differently (a
				// reject where this says tempfail): wait for the HELO.
				return Decision{}, false
			}
		}
		d := e.guardBroken(Decision{Action: r.Action, Rule: r.Name, Matched: r, Monitor: r.Monitor, Helo: Helo{Form: HeloEmpty}, Evidence: ev, Reply: e.reply(r, f)}, ip)
		if d.Rule == RuleBrokenResolver {
			return Decision{}, false // not at connect: the HELO may change the verdict's grounds
		}
		return d, true
	}
	return Decision{}, false
}

// Tests reports whether the match, or any match inside it, tests the evidence
// field named name.
func (m *Match) Tests(name string) bool {
	for _, c := range m.Is {
		if c.Field.Name == name {
			return true
		}
	}
	if name == "ptr_confirmed" && len(m.PTR) > 0 {
		return true
	}
	for _, list := range [][]Match{m.All, m.Any} {
		for i := range list {
			if list[i].Tests(name) {
				return true
			}
		}
	}
	return m.Not != nil && m.Not.Tests(name)
}

// Always reports whether the match has no condition at all: it holds for every
// client.
func (m *Match) Always() bool {
	return len(m.IP) == 0 && len(m.PTR) == 0 && len(m.Helo) == 0 && len(m.Is) == 0 &&
		len(m.All) == 0 && len(m.Any) == 0 && m.Not == nil
}
