package milter

import (
	"fmt"
	"strings"
)

// A strict reader of Authentication-Results values (RFC 8601 section 2.2),
// for tests: what a careful consumer of our header sees. go-msgauth's
// authres.Parse splits on ";" and white space, even inside quoted-strings and
// comments, and keeps quotes, so it cannot tell whether a quoted reason or an
// IPv6 policy.iprev came back intact; this one can. It reads the grammar we
// write and a little more (comments, folding, quoted pvalues), and reports
// anything else as an error rather than guessing.

// ARHeader is an Authentication-Results value as read by ParseAR.
type ARHeader struct {
	ID      string     // the authserv-id, unquoted
	Version string     // "" when absent
	Results []ARResult // empty for "none"
}

// ARResult is one resinfo: method=value, reason, properties.
type ARResult struct {
	Method    string // lowercased, with "/version" when given
	Value     string // lowercased
	Reason    string
	HasReason bool
	Props     []ARProp
}

// ARProp is one propspec: ptype.property=pvalue.
type ARProp struct {
	Type, Property string // lowercased
	Value          string // unquoted
}

func (r ARResult) String() string {
	s := r.Method + "=" + r.Value
	if r.HasReason {
		s += fmt.Sprintf(" reason=%q", r.Reason)
	}
	for _, p := range r.Props {
		s += fmt.Sprintf(" %s.%s=%q", p.Type, p.Property, p.Value)
	}
	return s
}

// ParseAR reads v strictly.
func ParseAR(v string) (ARHeader, error) {
	p := &arParser{s: v}
	var h ARHeader
	p.cfws()
	id, ok := p.value()
	if !ok {
		return h, p.errorf("no authserv-id")
	}
	h.ID = id
	if p.cfws() && p.i < len(p.s) && isDigit(p.s[p.i]) {
		start := p.i
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
		}
		h.Version = p.s[start:p.i]
		p.cfws()
	}
	for {
		if p.i == len(p.s) {
			if len(h.Results) == 0 {
				return h, p.errorf(`no results and no "none"`)
			}
			return h, nil
		}
		if p.s[p.i] != ';' {
			return h, p.errorf(`want ";"`)
		}
		p.i++
		p.cfws()
		if len(h.Results) == 0 {
			save := p.i
			if kw := p.keyword(); strings.EqualFold(kw, "none") {
				p.cfws()
				if p.i == len(p.s) {
					return h, nil
				}
			}
			p.i = save
		}
		r, err := p.resinfo()
		if err != nil {
			return h, err
		}
		h.Results = append(h.Results, r)
	}
}

type arParser struct {
	s string
	i int
}

func (p *arParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d of %q: %s", p.i, p.s, fmt.Sprintf(format, args...))
}

// cfws skips CFWS and reports whether there was any.
func (p *arParser) cfws() bool {
	end, ok := skipCFWS(p.s, p.i)
	if !ok {
		end = len(p.s) // an unterminated comment: the error shows where the value ended
	}
	had := end > p.i
	p.i = end
	return had
}

func (p *arParser) value() (string, bool) {
	v, next, ok := readValue(p.s, p.i)
	if ok {
		p.i = next
	}
	return v, ok
}

// keyword reads an RFC 8601 Keyword (RFC 5321 Ldh-str: letters, digits and
// hyphens, not ending with a hyphen).
func (p *arParser) keyword() string {
	start := p.i
	for p.i < len(p.s) && (isLetterDigit(p.s[p.i]) || p.s[p.i] == '-') {
		p.i++
	}
	for p.i > start && p.s[p.i-1] == '-' {
		p.i--
	}
	return strings.ToLower(p.s[start:p.i])
}

func isLetterDigit(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func (p *arParser) want(c byte) bool {
	p.cfws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		p.cfws()
		return true
	}
	return false
}

// resinfo reads methodspec [CFWS reasonspec] [CFWS 1*propspec] up to the next
// ";" or the end.
func (p *arParser) resinfo() (ARResult, error) {
	var r ARResult
	if r.Method = p.keyword(); r.Method == "" {
		return r, p.errorf("want a method")
	}
	if p.want('/') {
		v := p.keyword()
		if v == "" {
			return r, p.errorf("want a method version")
		}
		r.Method += "/" + v
	}
	if !p.want('=') {
		return r, p.errorf(`want "=" after method %q`, r.Method)
	}
	if r.Value = p.keyword(); r.Value == "" {
		return r, p.errorf("want a result for method %q", r.Method)
	}
	for {
		had := p.cfws()
		if p.i == len(p.s) || p.s[p.i] == ';' {
			return r, nil
		}
		if !had && len(r.Props) == 0 {
			return r, p.errorf("want white space or a comment before a reason or property")
		}
		kw := p.keyword()
		if kw == "" {
			return r, p.errorf("want a reason or a property")
		}
		if kw == "reason" && !r.HasReason && len(r.Props) == 0 && p.want('=') {
			v, ok := p.value()
			if !ok {
				return r, p.errorf("want the reason's value")
			}
			r.Reason, r.HasReason = v, true
			continue
		}
		prop := ARProp{Type: kw}
		if !p.want('.') {
			return r, p.errorf(`want "." after property type %q`, kw)
		}
		if prop.Property = p.keyword(); prop.Property == "" {
			return r, p.errorf("want a property after %q", kw)
		}
		if !p.want('=') {
			return r, p.errorf(`want "=" after property %s.%s`, prop.Type, prop.Property)
		}
		// pvalue: a value, or [[local-part] "@"] domain-name (a token here).
		v, ok := p.value()
		if p.i < len(p.s) && p.s[p.i] == '@' {
			p.i++
			d, dok := p.value()
			if !dok {
				return r, p.errorf("want a domain after @")
			}
			v, ok = v+"@"+d, true
		}
		if !ok {
			return r, p.errorf("want the value of %s.%s", prop.Type, prop.Property)
		}
		prop.Value = v
		r.Props = append(r.Props, prop)
	}
}
