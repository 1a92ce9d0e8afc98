package policy

import "strings"

// Placeholder is one {name} a reply text may hold. The table of placeholders is
// the one place they are defined: reply expansion, config validation and the
// docs come from it.
type Placeholder struct {
	Name    string // with braces: "{ip}"
	Meaning string
	value   func(x *expansion) string
}

// expansion is what placeholders are filled from.
type expansion struct {
	rule string
	f    *Facts
}

// maxClientText bounds how much of a client-controlled value goes into a reply.
const maxClientText = 100

var placeholderTable = [...]Placeholder{
	{"{ip}", "the client's IP address", func(x *expansion) string { return x.f.IP.String() }},
	{"{helo}", "the HELO as sent (non-printable bytes as ?, at most 100 bytes), or (none)", func(x *expansion) string {
		if x.f.Helo.Raw == "" {
			return "(none)"
		}
		return ClientText(x.f.Helo.Raw, maxClientText)
	}},
	{"{ptr}", "the first confirmed PTR name, else the first PTR name, else (none)", func(x *expansion) string {
		ptr := "(none)"
		if names := x.f.Evidence.PTRConfirmed; len(names) > 0 {
			ptr = names[0]
		} else if names := x.f.Evidence.PTR; len(names) > 0 {
			ptr = names[0]
		}
		return ClientText(ptr, maxClientText)
	}},
	{"{rule}", "the name of the rule that decided", func(x *expansion) string { return x.rule }},
	{"{iprev}", "the iprev result", func(x *expansion) string { return string(x.f.Evidence.IPRev) }},
	{"{spf}", "the SPF result of the HELO (spf_helo)", func(x *expansion) string { return string(x.f.Evidence.SPFHelo) }},
	{"{ptr_spf}", "the SPF result of the PTR name's organizational domain (ptr_spf)", func(x *expansion) string { return string(x.f.Evidence.PTRSPF) }},
}

// Placeholders returns the reply placeholders, in the order of the docs.
func Placeholders() []Placeholder { return append([]Placeholder(nil), placeholderTable[:]...) }

// IsPlaceholder reports whether s ("{ip}") is a placeholder.
func IsPlaceholder(s string) bool {
	for i := range placeholderTable {
		if placeholderTable[i].Name == s {
			return true
		}
	}
	return false
}

// expand fills the placeholders of a reply template. Client-controlled values
// (the HELO, PTR names) pass through ClientText, so no CR, LF or control byte
// reaches the MTA. Braces that hold no placeholder stay as written.
func expand(tmpl string, rule string, f *Facts) string {
	x := &expansion{rule: rule, f: f}
	var b strings.Builder
	b.Grow(len(tmpl) + 2*maxClientText)
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		tmpl = tmpl[i:]
		j := strings.IndexByte(tmpl, '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		name := tmpl[:j+1]
		found := false
		for k := range placeholderTable {
			if placeholderTable[k].Name == name {
				b.WriteString(placeholderTable[k].value(x))
				found = true
				break
			}
		}
		if !found {
			b.WriteString(name)
		}
		tmpl = tmpl[j+1:]
	}
}
