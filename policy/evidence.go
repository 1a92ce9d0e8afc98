package policy

// IPRevResult is the RFC 8601 section 2.7.3 iprev result of the client IP.
type IPRevResult string

const (
	IPRevPass      IPRevResult = "pass"      // some PTR name's A/AAAA records hold the IP
	IPRevFail      IPRevResult = "fail"      // PTR names exist, none resolves back to the IP
	IPRevPermError IPRevResult = "permerror" // no PTR record at all (NXDOMAIN or NODATA)
	IPRevTempError IPRevResult = "temperror" // DNS trouble: PTR lookup failed, or nothing confirmed while a forward lookup failed temporarily
)

// Evidence is everything known about a connection when it is judged. It is
// complete for every client outside the trusted networks, so that a logged
// decision can be replayed against other rules without DNS. Each field is
// described, named and given its values in the table of Fields (fields.go);
// the decision record's JSON is derived from that table.
type Evidence struct {
	IPRev                IPRevResult
	PTR                  []string // PTR names, as DNS gave them (lowercased, no trailing dot)
	PTRConfirmed         []string // those whose A/AAAA came back to the IP
	PTRGeneric           bool
	PTRSPF               SPFResult // "" only in a record logged before ptr_spf existed
	HeloForm             HeloForm
	HeloMatchesPTR       bool
	HeloAMatchesIP       bool
	HeloATempError       bool // the HELO's A/AAAA lookup failed temporarily without giving the client's address
	HeloLiteralMatchesIP bool
	HeloAligned          bool
	SPFHelo              SPFResult
	HeloIsLocal          bool
}
