package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/heloguard/heloguard/policy"
	"gopkg.in/yaml.v3"
)

// ruleSpec holds the rule-related nodes of a config until the rest is parsed.
type ruleSpec struct {
	allowlist, extra, replace, overrides *yaml.Node
}

// placed is a rule with the node it was written at, for error positions.
type placed struct {
	policy.Rule
	file string
	at   *yaml.Node
}

// buildRules assembles the engine's list: allowlist, extra_rules, then rules (or
// the built-in set) with overrides applied.
func (p *parser) buildRules(c *Config, rs *ruleSpec) []policy.Rule {
	var out []placed
	if rs.allowlist != nil {
		if r, ok := p.allowlist(rs.allowlist); ok {
			out = append(out, placed{r, p.file, rs.allowlist})
		}
	}
	if rs.extra != nil {
		out = append(out, p.ruleList(rs.extra, "extra_rules")...)
	}
	var base []placed
	if rs.replace != nil {
		base = p.ruleList(rs.replace, "rules")
	} else {
		bp := &parser{file: "(built-in rules)"}
		var doc yaml.Node
		if err := yaml.Unmarshal(builtinRules, &doc); err != nil || len(doc.Content) == 0 {
			p.errorf(nil, "built-in rules do not parse: %v", err)
			return nil
		}
		base = bp.ruleList(doc.Content[0], "built-in rules")
		p.errs = append(p.errs, bp.errs...)
	}
	if rs.overrides != nil {
		p.override(rs.overrides, base)
	}
	out = append(out, base...)
	first := map[string]int{}
	for i, r := range out {
		if r.Name == "" {
			continue
		}
		j, dup := first[r.Name]
		if !dup {
			first[r.Name] = i
			continue
		}
		// Blame the later one, unless only the earlier one is the operator's
		// (an extra rule named as a built-in one).
		blame, other := out[i], out[j]
		if blame.file != p.file && other.file == p.file {
			blame, other = other, blame
		}
		p.errs = append(p.errs, &Error{File: blame.file, Line: blame.at.Line, Column: blame.at.Column,
			Msg: fmt.Sprintf("rule name %q is used twice (also at %s); rule names must be unique (overrides and logs refer to them)", r.Name, other.Source)})
	}
	var kept []policy.Rule
	for _, r := range out {
		if r.Action != "" { // disabled by an override
			kept = append(kept, r.Rule)
		}
	}
	return kept
}

func (p *parser) ruleList(n *yaml.Node, what string) []placed {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list of rules (each - name: ..., match: ..., action: ...)", what)
		return nil
	}
	var out []placed
	for _, rn := range n.Content {
		if r, ok := p.rule(rn, what); ok {
			out = append(out, placed{r, p.file, rn})
		}
	}
	return out
}

func (p *parser) rule(n *yaml.Node, what string) (policy.Rule, bool) {
	before := len(p.errs)
	r := policy.Rule{Source: fmt.Sprintf("%s:%d", p.file, n.Line)}
	var reply, action *yaml.Node
	p.mapping(n, "a rule in "+what, map[string]func(*yaml.Node){
		"name":  func(v *yaml.Node) { p.str(v, "name", &r.Name) },
		"match": func(v *yaml.Node) { r.Match = p.match(v) },
		"action": func(v *yaml.Node) {
			action = v
			p.action(v, "action", &r.Action)
		},
		"reply":   func(v *yaml.Node) { reply = v },
		"monitor": func(v *yaml.Node) { p.boolean(v, "monitor", &r.Monitor) },
	})
	if n.Kind != yaml.MappingNode {
		return r, false
	}
	switch r.Name {
	case "":
		p.errorf(n, "a rule in %s needs a name", what)
	}
	if slices.Contains(policy.ReservedRuleNames(), r.Name) {
		// The engine decides by these names itself; logs and replay could
		// not tell the two apart.
		p.errorf(n, "rule name %q is reserved for the engine's own decisions (%s); choose another", r.Name, strings.Join(policy.ReservedRuleNames(), ", "))
	}
	if action == nil { // a bad action has been reported already
		p.errorf(n, "rule %q needs an action: one of %s", r.Name, actionList())
	}
	if reply != nil {
		r.Reply = p.reply(reply, r.Action)
	}
	return r, len(p.errs) == before
}

func actionList() string {
	var s []string
	for _, a := range policy.Actions() {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

var (
	enhancedRE    = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)
	placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)
)

// reply parses "550 5.7.1 text": the code must suit the action, and the
// enhanced code's class must equal the code's first digit (Postfix refuses the
// reply otherwise and drops the milter).
func (p *parser) reply(n *yaml.Node, a policy.Action) policy.Reply {
	s, ok := p.scalar(n, "reply")
	if !ok {
		return policy.Reply{}
	}
	if strings.ContainsAny(s, "\r\n") {
		p.errorf(n, "reply must be one line")
		return policy.Reply{}
	}
	fields := strings.SplitN(s, " ", 3)
	code, err := strconv.Atoi(fields[0])
	if err != nil || len(fields[0]) != 3 || code < 400 || code > 599 {
		p.errorf(n, "reply must start with a 4xx or 5xx SMTP code, as in \"550 5.7.1 text\", not %q", s)
		return policy.Reply{}
	}
	switch {
	case a == policy.ActionReject && code/100 != 5:
		p.errorf(n, "a reject reply needs a 5xx code, not %d", code)
	case a == policy.ActionTempfail && code/100 != 4:
		p.errorf(n, "a tempfail reply needs a 4xx code, not %d", code)
	case !a.Refuses() && a != "":
		p.errorf(n, "action %s sends no reply; remove reply or use reject or tempfail", a)
	}
	r := policy.Reply{Code: code}
	rest := fields[1:]
	if len(rest) > 0 && enhancedRE.MatchString(rest[0]) {
		if rest[0][0] != fields[0][0] {
			p.errorf(n, "enhanced status code %s must start with %c to match reply code %d", rest[0], fields[0][0], code)
		}
		r.Enhanced = rest[0]
		rest = rest[1:]
	}
	r.Text = strings.Join(rest, " ")
	if strings.TrimSpace(r.Text) == "" {
		p.errorf(n, "reply %q needs a text after the code: it is what the sender's postmaster reads to fix the problem", s)
	}
	for _, ph := range placeholderRE.FindAllString(r.Text, -1) {
		if !policy.IsPlaceholder(ph) {
			var names []string
			for _, x := range policy.Placeholders() {
				names = append(names, x.Name)
			}
			p.errorf(n, "unknown placeholder %s in reply; allowed: %s", ph, strings.Join(names, " "))
		}
	}
	return r
}

// match parses a rule's match. The evidence keys and their values come from
// policy's table of fields: a field added there is a key here.
func (p *parser) match(n *yaml.Node) policy.Match {
	var m policy.Match
	keys := map[string]func(*yaml.Node){
		"ip":   func(v *yaml.Node) { p.prefixes(v, "ip", &m.IP) },
		"ptr":  func(v *yaml.Node) { m.PTR = p.patterns(v, "ptr") },
		"helo": func(v *yaml.Node) { m.Helo = p.patterns(v, "helo") },
		"all":  func(v *yaml.Node) { m.All = p.matchList(v, "all") },
		"any":  func(v *yaml.Node) { m.Any = p.matchList(v, "any") },
		"not": func(v *yaml.Node) {
			sub := p.match(v)
			m.Not = &sub
		},
	}
	for _, f := range policy.Fields() {
		if !f.Match {
			continue
		}
		keys[f.Name] = func(v *yaml.Node) {
			if c, ok := p.cond(v, f.Name); ok {
				m.Is = append(m.Is, c)
			}
		}
	}
	p.mapping(n, "match", keys) // in the order written: m.Is keeps it for explanations
	return m
}

// cond parses the value of an evidence key: a bool, or a value or a list of
// values of an enum.
func (p *parser) cond(n *yaml.Node, name string) (policy.Cond, bool) {
	f, _ := policy.FieldByName(name)
	if f.Kind == policy.KindBool {
		var b bool
		before := len(p.errs)
		p.boolean(n, name, &b)
		if len(p.errs) > before {
			return policy.Cond{}, false
		}
		c, ok := policy.NewCond(name, strconv.FormatBool(b))
		return c, ok
	}
	var vals []string
	for _, c := range p.list(n, name) {
		if !f.Allows(c.Value) {
			p.errorf(c, "%s must be one of %s, not %q", name, strings.Join(f.Values, ", "), c.Value)
			continue
		}
		vals = append(vals, c.Value)
	}
	return policy.NewCond(name, vals...)
}

func (p *parser) matchList(n *yaml.Node, what string) []policy.Match {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list of match conditions", what)
		return nil
	}
	out := make([]policy.Match, 0, len(n.Content))
	for _, c := range n.Content {
		out = append(out, p.match(c))
	}
	return out
}

func (p *parser) patterns(n *yaml.Node, what string) []policy.Pattern {
	var out []policy.Pattern
	for _, c := range p.list(n, what) {
		pat, err := policy.ParsePattern(c.Value)
		if err != nil {
			p.errorf(c, "%s: bad pattern %q: %v (use a glob such as *.example.com or a regular expression between slashes)", what, c.Value, err)
			continue
		}
		out = append(out, pat)
	}
	return out
}

// allowlist: {ip: [...], ptr: [...], helo: [...]} becomes one accepting rule
// that holds when any list matches. ptr matches forward-confirmed names only.
func (p *parser) allowlist(n *yaml.Node) (policy.Rule, bool) {
	var ips []policy.Match
	p.mapping(n, "allowlist", map[string]func(*yaml.Node){
		"ip": func(v *yaml.Node) {
			var m policy.Match
			p.prefixes(v, "allowlist.ip", &m.IP)
			if len(m.IP) > 0 {
				ips = append(ips, m)
			}
		},
		"ptr": func(v *yaml.Node) {
			if m := (policy.Match{PTR: p.patterns(v, "allowlist.ptr")}); len(m.PTR) > 0 {
				ips = append(ips, m)
			}
		},
		"helo": func(v *yaml.Node) {
			if m := (policy.Match{Helo: p.patterns(v, "allowlist.helo")}); len(m.Helo) > 0 {
				ips = append(ips, m)
			}
		},
	})
	if len(ips) == 0 {
		return policy.Rule{}, false
	}
	return policy.Rule{Name: "allowlist", Match: policy.Match{Any: ips}, Action: policy.ActionAccept,
		Source: fmt.Sprintf("%s:%d", p.file, n.Line)}, true
}

// override changes rules of the base set by name: action, reply, monitor, or
// disabled: true to drop the rule.
func (p *parser) override(n *yaml.Node, base []placed) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "overrides must map rule names to changes, as in overrides: {generic-ptr: {monitor: true}}")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(k, "rule %q given twice in overrides; put all its changes in one entry", k.Value)
			continue
		}
		seen[k.Value] = true
		idx := -1
		var names []string
		for j := range base {
			names = append(names, base[j].Name)
			if base[j].Name == k.Value {
				idx = j
			}
		}
		if idx < 0 {
			p.errorf(k, "overrides: no rule named %q; rules are: %s", k.Value, strings.Join(names, ", "))
			continue
		}
		r := &base[idx].Rule
		var reply *yaml.Node
		var disabled bool
		p.mapping(v, "overrides."+k.Value, map[string]func(*yaml.Node){
			"action": func(v *yaml.Node) {
				old := r.Action
				p.action(v, "action", &r.Action)
				if r.Action != old {
					r.Reply = policy.Reply{} // the old reply's code class may not suit the new action
				}
			},
			"reply":    func(v *yaml.Node) { reply = v },
			"monitor":  func(v *yaml.Node) { p.boolean(v, "monitor", &r.Monitor) },
			"disabled": func(v *yaml.Node) { p.boolean(v, "disabled", &disabled) },
		})
		if reply != nil {
			r.Reply = p.reply(reply, r.Action)
		}
		if disabled {
			r.Action = ""
		}
		r.Source = fmt.Sprintf("%s:%d", p.file, k.Line)
	}
}
