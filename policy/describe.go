package policy

import (
	"fmt"
	"strings"
)

// Describe renders a Match in the words of the config language, for
// explanations: "spf_helo in [pass] and helo_aligned = true".
func (m *Match) Describe() string {
	var parts []string
	list := func(key string, n int, item func(int) string) {
		if n == 0 {
			return
		}
		vals := make([]string, n)
		for i := range vals {
			vals[i] = item(i)
		}
		parts = append(parts, fmt.Sprintf("%s in [%s]", key, strings.Join(vals, ", ")))
	}
	list("ip", len(m.IP), func(i int) string { return m.IP[i].String() })
	list("confirmed ptr", len(m.PTR), func(i int) string { return m.PTR[i].Source })
	list("helo", len(m.Helo), func(i int) string { return m.Helo[i].Source })
	for _, c := range m.Is {
		if c.Field.Kind == KindBool && len(c.Values) == 1 {
			parts = append(parts, fmt.Sprintf("%s = %s", c.Field.Name, c.Values[0]))
			continue
		}
		list(c.Field.Name, len(c.Values), func(i int) string { return c.Values[i] })
	}
	sub := func(ms []Match, join string) string {
		s := make([]string, len(ms))
		for i := range ms {
			s[i] = "(" + ms[i].Describe() + ")"
		}
		return strings.Join(s, join)
	}
	if len(m.All) > 0 {
		parts = append(parts, sub(m.All, " and "))
	}
	anyAt := -1
	if len(m.Any) > 0 {
		anyAt = len(parts)
		parts = append(parts, sub(m.Any, " or "))
	}
	if m.Not != nil {
		parts = append(parts, "not ("+m.Not.Describe()+")")
	}
	if anyAt >= 0 && len(parts) > 1 { // "A and (B or C)", not "A and B or C"
		parts[anyAt] = "(" + parts[anyAt] + ")"
	}
	if len(parts) == 0 {
		return "always (no condition)"
	}
	return strings.Join(parts, " and ")
}
