package policy

import "strings"

// Placeholder is one {name} a reply text may hold. The table of placeholders is
// the one place they are listed: config validation and the docs come from it,
// and expand fills each (a test checks that every one is filled).
type Placeholder struct {
	Name    string // with braces: "{ip}"
	Meaning string
}

// maxClientText bounds how much of a client-controlled value goes into a reply.
const maxClientText = 100

var placeholderTable = [...]Placeholder{
	{"{ip}", "the client's IP address"},
	{"{helo}", "the HELO as sent (non-printable bytes as ?, at most 100 bytes), or (none)"},
	{"{ptr}", "the first confirmed PTR name, else the first PTR name, else (none)"},
	{"{rule}", "the name of the rule that decided"},
	{"{iprev}", "the iprev result"},
	{"{spf}", "the SPF result of the HELO (spf_helo)"},
	{"{ptr_spf}", "the SPF result of the PTR name's organizational domain (ptr_spf)"},
}

// value is the text of placeholder name, ok=false if it is none. A switch, not
// functions in the table: the facts must not escape to the heap per decision.
func value(name, rule string, f *Facts) (string, bool) {
	switch name {
	case "{ip}":
		return f.IP.String(), true
	case "{helo}":
		if f.Helo.Raw == "" {
			return "(none)", true
		}
		return ClientText(f.Helo.Raw, maxClientText), true
	case "{ptr}":
		ptr := "(none)"
		if names := f.Evidence.PTRConfirmed; len(names) > 0 {
			ptr = names[0]
		} else if names := f.Evidence.PTR; len(names) > 0 {
			ptr = names[0]
		}
		return ClientText(ptr, maxClientText), true
	case "{rule}":
		return rule, true
	case "{iprev}":
		return string(f.Evidence.IPRev), true
	case "{spf}":
		return string(f.Evidence.SPFHelo), true
	case "{ptr_spf}":
		return string(f.Evidence.PTRSPF), true
	}
	return "", false
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
		if v, ok := value(tmpl[:j+1], rule, f); ok {
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[:j+1])
		}
		tmpl = tmpl[j+1:]
	}
}
