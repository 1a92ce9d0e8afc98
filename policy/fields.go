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
// explanation and the docs' tables are all derived from it (or, for
// docs/reference.md and docs/rules.md, checked against it by a test).
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

	id fieldID // which field of Evidence: see Evidence.enum, flag and names
}

// fieldID names an Evidence field for the accessors below. They are plain
// switches rather than functions in the table, so that the *Evidence passed to
// them does not escape to the heap on every decision.
type fieldID int

const (
	fIPRev fieldID = iota
	fPTR
	fPTRConfirmed
	fPTRGeneric
	fPTRSPF
	fHeloForm
	fHeloMatchesPTR
	fHeloAMatchesIP
	fHeloATempError
	fHeloLiteralMatchesIP
	fHeloAligned
	fSPFHelo
	fHeloIsLocal
)

func (e *Evidence) enum(id fieldID) *string {
	switch id {
	case fIPRev:
		return (*string)(&e.IPRev)
	case fPTRSPF:
		return (*string)(&e.PTRSPF)
	case fHeloForm:
		return (*string)(&e.HeloForm)
	case fSPFHelo:
		return (*string)(&e.SPFHelo)
	}
	panic("policy: not an enum field") // a defect in the table, caught by tests
}

func (e *Evidence) flag(id fieldID) *bool {
	switch id {
	case fPTRGeneric:
		return &e.PTRGeneric
	case fHeloMatchesPTR:
		return &e.HeloMatchesPTR
	case fHeloAMatchesIP:
		return &e.HeloAMatchesIP
	case fHeloATempError:
		return &e.HeloATempError
	case fHeloLiteralMatchesIP:
		return &e.HeloLiteralMatchesIP
	case fHeloAligned:
		return &e.HeloAligned
	case fHeloIsLocal:
		return &e.HeloIsLocal
	}
	panic("policy: not a bool field")
}

func (e *Evidence) names(id fieldID) *[]string {
	switch id {
	case fPTR:
		return &e.PTR
	case fPTRConfirmed:
		return &e.PTRConfirmed
	}
	panic("policy: not a names field")
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
		id:      fIPRev},
	{Name: "ptr", Kind: KindNames,
		Meaning: "the PTR names of the client IP, as DNS gave them",
		id:      fPTR},
	{Name: "ptr_confirmed", Kind: KindNames,
		Meaning: "the PTR names whose A/AAAA records hold the client IP (forward-confirmed)",
		id:      fPTRConfirmed},
	{Name: "ptr_generic", Kind: KindBool, Match: true,
		Meaning: "a confirmed PTR name looks like a pool address: digit runs equal 3 of 4 octets, the address in hex, or a label such as dyn, dsl, pool, cable left of the organizational domain (generic_tokens)",
		id:      fPTRGeneric},
	{Name: "ptr_spf", Kind: KindEnum, Values: spfValues, Match: true,
		Meaning: "RFC 7208 check_host(ip, D, postmaster@D) for D the organizational domain of the first confirmed PTR name: does the PTR's owner authorize this address to send its mail; none without a confirmed name; a pass by a record of D holding +all is neutral",
		id:      fPTRSPF},
	{Name: "helo_form", Kind: KindEnum, Values: formValues, Match: true, Helo: true,
		Meaning: "RFC 5321 syntax of the HELO: fqdn, address-literal, bare (one label), invalid, empty (none sent)",
		id:      fHeloForm},
	{Name: "helo_matches_ptr", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO is a confirmed PTR name",
		id:      fHeloMatchesPTR},
	{Name: "helo_a_matches_ip", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO's A/AAAA records hold the client IP",
		id:      fHeloAMatchesIP},
	{Name: "helo_a_temperror", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO's A/AAAA lookup failed temporarily (DNS trouble) and gave no address of the client: whether helo_a_matches_ip holds is unknown",
		id:      fHeloATempError},
	{Name: "helo_literal_matches_ip", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO is an address literal ([192.0.2.1], [IPv6:2001:db8::1]) of the client IP",
		id:      fHeloLiteralMatchesIP},
	{Name: "helo_aligned", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO and a confirmed PTR name share the organizational domain (Public Suffix List eTLD+1)",
		id:      fHeloAligned},
	{Name: "spf_helo", Kind: KindEnum, Values: spfValues, Match: true, Helo: true,
		Meaning: "RFC 7208 check_host(ip, helo, postmaster@helo); none unless the HELO is an FQDN",
		id:      fSPFHelo},
	{Name: "helo_is_local", Kind: KindBool, Match: true, Helo: true,
		Meaning: "the HELO names this receiver: one of local_names, or a literal of one of local_addresses",
		id:      fHeloIsLocal},
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
		return e.enum(f.id)
	case KindBool:
		return e.flag(f.id)
	}
	return e.names(f.id)
}

// String is the field's value in e as text: an enum value, "true" or "false",
// or the names joined by ", ".
func (f *Field) String(e *Evidence) string {
	switch f.Kind {
	case KindEnum:
		return *e.enum(f.id)
	case KindBool:
		if *e.flag(f.id) {
			return "true"
		}
		return "false"
	}
	return strings.Join(*e.names(f.id), ", ")
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

	// Copied from Field and Values by NewCond, so that matching chases no
	// pointer and compares no kind string: rules run on every decision.
	id     fieldID
	isBool bool
	want   bool // a bool field's value that holds
}

// NewCond builds a condition on the named field, checking every value; a
// bool takes exactly one.
func NewCond(name string, values ...string) (Cond, bool) {
	f, ok := FieldByName(name)
	if !ok || !f.Match || len(values) == 0 || f.Kind == KindBool && len(values) != 1 {
		return Cond{}, false
	}
	for _, v := range values {
		if !f.Allows(v) {
			return Cond{}, false
		}
	}
	return Cond{Field: f, Values: values, id: f.id, isBool: f.Kind == KindBool, want: values[0] == "true"}, true
}

// Holds reports whether the condition holds for e.
func (c *Cond) Holds(e *Evidence) bool {
	if c.isBool {
		return *e.flag(c.id) == c.want
	}
	v := *e.enum(c.id)
	for _, w := range c.Values {
		if w == v {
			return true
		}
	}
	return false
}
