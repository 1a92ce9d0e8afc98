package config

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// mapping calls the handler of each key of a mapping node; unknown keys and
// repeated keys are errors that list what is allowed.
func (p *parser) mapping(n *yaml.Node, what string, keys map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping of keys to values", what)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		h, ok := keys[k.Value]
		if !ok {
			p.errorf(k, "unknown key %q in %s; allowed: %s", k.Value, what, keyList(keys))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "key %q given twice in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		h(v)
	}
}

func keyList(keys map[string]func(*yaml.Node)) string {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s must be a single value", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(n *yaml.Node, what string, dst *string) {
	if s, ok := p.scalar(n, what); ok {
		*dst = s
	}
}

// list accepts one scalar or a sequence of scalars.
func (p *parser) list(n *yaml.Node, what string) []*yaml.Node {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		return []*yaml.Node{n}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				p.errorf(c, "%s: each entry must be a single value", what)
				return nil
			}
		}
		return n.Content
	}
	p.errorf(n, "%s must be a value or a list of values", what)
	return nil
}

func (p *parser) strs(n *yaml.Node, what string, dst *[]string) {
	var out []string
	for _, c := range p.list(n, what) {
		out = append(out, c.Value)
	}
	*dst = out
}

func (p *parser) boolean(n *yaml.Node, what string, dst *bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		p.errorf(n, "%s must be true or false, not %q", what, s)
	}
}

func (p *parser) integer(n *yaml.Node, what string, min int, dst *int) {
	s, ok := p.scalar(n, what)
	if !ok {
		return
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < min {
		p.errorf(n, "%s must be a whole number ≥ %d, not %q", what, min, s)
		return
	}
	*dst = v
}

func (p *parser) duration(n *yaml.Node, what string, dst *time.Duration) {
	s, ok := p.scalar(n, what)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.errorf(n, "%s must be a positive duration such as 500ms, 5s or 1m, not %q", what, s)
		return
	}
	*dst = d
}

// oneOf checks a scalar against the allowed words.
func (p *parser) oneOf(n *yaml.Node, what string, allowed []string, dst *string) {
	s, ok := p.scalar(n, what)
	if !ok {
		return
	}
	for _, a := range allowed {
		if s == a {
			*dst = s
			return
		}
	}
	p.errorf(n, "%s must be one of %s, not %q", what, strings.Join(allowed, ", "), s)
}

// prefixes parses CIDRs; a bare address is its own /32 or /128.
func (p *parser) prefixes(n *yaml.Node, what string, dst *[]netip.Prefix) {
	var out []netip.Prefix
	for _, c := range p.list(n, what) {
		pfx, err := parsePrefix(c.Value)
		if err != nil {
			p.errorf(c, "%s: %q is not an IP address or CIDR network such as 192.0.2.0/24 or 2001:db8::/32", what, c.Value)
			continue
		}
		out = append(out, pfx)
	}
	*dst = out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return pfx, err
		}
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (p *parser) addrs(n *yaml.Node, what string, dst *[]netip.Addr) {
	var out []netip.Addr
	for _, c := range p.list(n, what) {
		a, err := netip.ParseAddr(c.Value)
		if err != nil {
			p.errorf(c, "%s: %q is not an IP address", what, c.Value)
			continue
		}
		out = append(out, a.Unmap())
	}
	*dst = out
}
