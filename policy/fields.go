package policy

import "strings"

// Kind is the type of an evidence field's value.
type Kind string

const (
	KindEnum  Kind = "enum"  // one of the field's Values
	KindBool  Kind = "bool"  // true or false
	KindNames Kind = "names" // a list of DNS names (lowercased, no trailing dot)
)

// Field describes one evidence field. The table of fields (Fields) is the one
// place the evidence vocabulary is written: the rules language's conditions,
// config validation's "allowed" messages, the decision record's JSON, check's
// explanation and the README's table are all derived from it (or, for the
// README, checked against it by a test).
type Field struct {
	Name    string   // as in rules, logs and docs
	Kind    Kind     // the type of its value
	Values  []string // KindEnum: every value, in the order the docs give them
	Meaning string   // one line, for docs and explanations
	// Match says whether a rule's match may test the field by name. Names are
	// matched with the ptr: patterns instead (forward-confirmed names only).
	Match bool
	// Helo says whether the value depends on the HELO: JudgeEarly (reject_at:
	// connect) cannot decide a rule that tests it.
	Helo bool

	enum  func(*Evidence) *string
	flag  func(*Evidence) *bool
	names func(*Evidence) *[]string
}

var (
	ipRevValues = []string{string(IPRevPass), string(IPRevFail), string(IPRevPermError), string(IPRevTempError)}
	spfValues   = []string{string(SPFPass), string(SPFFail), string(SPFSoftFail), string(SPFNeutral), string(SPFNone), string(SPFPermError), string(SPFTempError)}
	formValues  = []string{string(HeloFQDN), string(HeloAddressLiteral), string(HeloBare), string(HeloInvalid), string(HeloEmpty)}
)

// fieldTable is the evidence vocabulary, in the order of logs and docs. It is
// never modified: Fields hands out a copy.
var fieldTable = [...]Field{
	{Name: "iprev", Kind: KindEnum, Values: ipRevValues, Match: true,
		Meaning: "RFC 8601 iprev of the client IP: pass (a PTR name's A/AAAA holds the IP), fail (PTR names exist, none comes back), permerror (no PTR), temperror (DNS trouble); CNAMEs followed (RFC 2317), at most 10 PTR names checked",
		enum:    func(e *Evidence) *string { return (*string)(&e.IPRev) }},
	{Name: "ptr", Kind: KindNames,
		Meaning: "the PTR names of the client IP, as DNS gave them",
		names:   func(e *Evidence) *[]string { return &e.PTR }},
	{Name: "ptr_confirmed", Kind: KindNames,
		Meaning: "the PTR names whose A/AAAA records hold the client IP (forward-confirmed)",
		names:   func(e *Evidence) *[]string { return &e.PTRConfirmed }},
	{Name: "ptr_generic", Kind: KindBool, Match: true,
		Meaning: "a confirmed PTR name looks like a pool address: digit runs equal 3 of 4 octets, the address in hex, or a label such as dyn, dsl, pool, cable left of the organizational domain (generic_tokens)",
		flag:    func(e *Evidence) *bool { return &e.PTRGeneric }},
	{Name: "ptr_spf", Kind: KindEnum, Values: spfValues, Match: true,
		Meaning: "RFC 7208 check_host(ip, D, postmaster@D) for D the organizational domain of the first confirmed PTR name: does the PTR's owner authorize this address to send its mail; none without a confirmed name; a pass by a record of D holding +all is neutral",
		enum:    func(e *Evidence) *string { return (*string)(&e.PTRSPF) }},
	{Name: "helo_form", Kind: KindEnum, Values: formValues, Match: true, Helo: true,
		Meaning: "RFC 5321 syntax of the HELO: fqdn, address-literal, bare (one label), invalid, empty (none sent)",
		enum:    func(e *Evidence) *string { return (*string)(&e.HeloForm) }},
	{Name: "helo_matches_ptr", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO is a confirmed PTR name",
		flag:    func(e *Evidence) *bool { return &e.HeloMatchesPTR }},
	{Name: "helo_a_matches_ip", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO's A/AAAA records hold the client IP",
		flag:    func(e *Evidence) *bool { return &e.HeloAMatchesIP }},
	{Name: "helo_literal_matches_ip", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO is an address literal ([192.0.2.1], [IPv6:2001:db8::1]) of the client IP",
		flag:    func(e *Evidence) *bool { return &e.HeloLiteralMatchesIP }},
	{Name: "helo_aligned", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO and a confirmed PTR name share the organizational domain (Public Suffix List eTLD+1)",
		flag:    func(e *Evidence) *bool { return &e.HeloAligned }},
	{Name: "spf_helo", Kind: KindEnum, Values: spfValues, Match: true, Helo: true,
		Meaning: "RFC 7208 check_host(ip, helo, postmaster@helo); none unless the HELO is an FQDN",
		enum:    func(e *Evidence) *string { return (*string)(&e.SPFHelo) }},
	{Name: "helo_is_local", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO names this receiver: one of local_names, or a literal of one of local_addresses",
		flag:    func(e *Evidence) *bool { return &e.HeloIsLocal }},
}

// Fields returns the evidence fields, in the order of logs and docs.
func Fields() []Field { return append([]Field(nil), fieldTable[:]...) }

// FieldByName finds an evidence field.
func FieldByName(name string) (*Field, bool) {
	for i := range fieldTable {
		if fieldTable[i].Name == name {
			return &fieldTable[i], true
		}
	}
	return nil, false
}

// MatchFieldNames lists the fields a rule's match may test, for messages.
func MatchFieldNames() []string {
	var out []string
	for i := range fieldTable {
		if fieldTable[i].Match {
			out = append(out, fieldTable[i].Name)
		}
	}
	return out
}

// Ref returns a pointer to the field in e: *string for KindEnum, *bool for
// KindBool, *[]string for KindNames. The decision record reads and writes the
// evidence through it.
func (f *Field) Ref(e *Evidence) any {
	switch f.Kind {
	case KindEnum:
		return f.enum(e)
	case KindBool:
		return f.flag(e)
	}
	return f.names(e)
}

// String is the field's value in e as text: an enum value, "true" or "false",
// or the names joined by ", ".
func (f *Field) String(e *Evidence) string {
	switch f.Kind {
	case KindEnum:
		return *f.enum(e)
	case KindBool:
		if *f.flag(e) {
			return "true"
		}
		return "false"
	}
	return strings.Join(*f.names(e), ", ")
}

// Allows reports whether v is a value the field can take (for a bool, "true"
// or "false"; names take any).
func (f *Field) Allows(v string) bool {
	switch f.Kind {
	case KindEnum:
		for _, a := range f.Values {
			if a == v {
				return true
			}
		}
		return false
	case KindBool:
		return v == "true" || v == "false"
	}
	return true
}

// Cond is one evidence condition of a match: it holds when the field's value is
// one of Values ("true" or "false" for a bool).
type Cond struct {
	Field  *Field
	Values []string
}

// NewCond builds a condition on the named field, checking every value.
func NewCond(name string, values ...string) (Cond, bool) {
	f, ok := FieldByName(name)
	if !ok || !f.Match || len(values) == 0 {
		return Cond{}, false
	}
	for _, v := range values {
		if !f.Allows(v) {
			return Cond{}, false
		}
	}
	return Cond{Field: f, Values: values}, true
}

// Holds reports whether the condition holds for e.
func (c *Cond) Holds(e *Evidence) bool {
	var v string
	switch c.Field.Kind {
	case KindEnum:
		v = *c.Field.enum(e)
	case KindBool:
		v = "false"
		if *c.Field.flag(e) {
			v = "true"
		}
	default:
		return false
	}
	for _, w := range c.Values {
		if w == v {
			return true
		}
	}
	return false
}
