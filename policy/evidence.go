package policy

import "log/slog"

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
// decision can be replayed against other rules without DNS.
type Evidence struct {
	IPRev                IPRevResult `json:"iprev"`
	PTR                  []string    `json:"ptr"`           // PTR names, as DNS gave them (lowercased, no trailing dot)
	PTRConfirmed         []string    `json:"ptr_confirmed"` // those whose A/AAAA came back to the IP
	PTRGeneric           bool        `json:"ptr_generic"`
	HeloForm             HeloForm    `json:"helo_form"`
	HeloMatchesPTR       bool        `json:"helo_matches_ptr"`
	HeloAMatchesIP       bool        `json:"helo_a_matches_ip"`
	HeloLiteralMatchesIP bool        `json:"helo_literal_matches_ip"`
	HeloAligned          bool        `json:"helo_aligned"`
	SPFHelo              SPFResult   `json:"spf_helo"`
	HeloIsLocal          bool        `json:"helo_is_local"`
}

// LogValue gives the evidence to log/slog as a group of plain attributes, so
// the decision log encodes it without reflection.
func (e Evidence) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("iprev", string(e.IPRev)),
		slog.Any("ptr", nonNil(e.PTR)),
		slog.Any("ptr_confirmed", nonNil(e.PTRConfirmed)),
		slog.Bool("ptr_generic", e.PTRGeneric),
		slog.String("helo_form", string(e.HeloForm)),
		slog.Bool("helo_matches_ptr", e.HeloMatchesPTR),
		slog.Bool("helo_a_matches_ip", e.HeloAMatchesIP),
		slog.Bool("helo_literal_matches_ip", e.HeloLiteralMatchesIP),
		slog.Bool("helo_aligned", e.HeloAligned),
		slog.String("spf_helo", string(e.SPFHelo)),
		slog.Bool("helo_is_local", e.HeloIsLocal),
	)
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
