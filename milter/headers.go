package milter

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-msgauth/authres"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// endOfMessage removes forged Authentication-Results, adds ours (RFC 8601: iprev
// with policy.iprev, spf with smtp.helo) and applies quarantine and tag actions.
// Modifications are legal only here, at end of message.
//
// An MTA that did not let us take an action (a modification negotiation left
// out) does not get it: the message goes on without it, rather than the
// session ending on go-milter's refusal to send it and the MTA applying its
// default action to the message.
func (s *session) endOfMessage(m gomilter.Modifier) error {
	can := m.Actions()
	if len(s.arIndex) > 0 && can&gomilter.OptChangeHeader == 0 {
		s.srv.ops.Warn("an Authentication-Results header claiming our authserv-id stays in the message: the MTA does not let heloguard change headers (SMFIF_CHGHDRS)",
			"client_ip", s.ip.String(), "queue_id", s.queueID)
	}
	// Delete from the last so earlier indexes stay right. This holds for every
	// client, judged or not: nobody may speak for our authserv-id.
	for i := len(s.arIndex) - 1; i >= 0 && can&gomilter.OptChangeHeader != 0; i-- {
		if err := m.ChangeHeader(s.arIndex[i], "Authentication-Results", ""); err != nil {
			return err
		}
	}
	v := s.verdict
	if v == nil {
		return nil // a local client (unix socket), or no HELO and no MAIL judged
	}
	if !v.Trusted && s.ip.IsValid() && can&(gomilter.OptAddHeader|gomilter.OptChangeHeader) != 0 { // a client without an address has no iprev to report
		if err := m.InsertHeader(1, "Authentication-Results", s.authResults(v)); err != nil {
			return err
		}
	}
	would := ""
	switch {
	case v.exemption != "" && v.Action.Refuses():
		would = fmt.Sprintf("%s by rule %s, not enforced (%s)", v.Action, v.Rule, v.exemption)
	case v.Action == policy.ActionTag:
		would = fmt.Sprintf("tagged by rule %s", v.Rule)
	case v.Action == policy.ActionQuarantine && (v.Monitor || s.st.Cfg.Mode == config.ModeMonitor):
		would = fmt.Sprintf("quarantine by rule %s, not enforced (monitor)", v.Rule)
	case v.Action == policy.ActionQuarantine && can&gomilter.OptQuarantine == 0:
		would = fmt.Sprintf("quarantine by rule %s, not possible (the MTA does not allow it)", v.Rule)
	case v.Action == policy.ActionQuarantine:
		if err := m.Quarantine("heloguard rule " + v.Rule); err != nil {
			return err
		}
		would = fmt.Sprintf("quarantined by rule %s", v.Rule)
	}
	if would != "" && can&gomilter.OptAddHeader != 0 {
		return m.AddHeader("X-Heloguard", would)
	}
	return nil
}

func (s *session) authResults(v *verdict) string {
	return authResults(s.st.Cfg.AuthservID, s.ip, &v.Decision)
}

// authResults is our Authentication-Results value for the client at ip judged
// by d: iprev with policy.iprev and, for an FQDN HELO, spf with smtp.helo.
//
// Everything in it comes from the client or from DNS, and the filters behind
// us trust it, so only text we can prove harmless goes in. go-msgauth quotes
// values but does not escape backslashes, and careless parsers (go-msgauth's
// own among them) split on ";" and white space even inside quotes, so correct
// escaping would not be enough: a PTR name goes into the reason only when it
// is an LDH host name, which needs no escaping anywhere; otherwise the reason
// is left out, and the name is still in the decision log. A result its
// method cannot have (an iprev that a decision timeout left unknown), or an
// spf result whose HELO is not an LDH name (ParseHelo admits no other as an
// FQDN), is left out whole rather than written in part: no result is better
// than a wrong one.
func authResults(authservID string, ip netip.Addr, d *policy.Decision) string {
	var results []authres.Result
	if ip.IsValid() && validResult(string(d.Evidence.IPRev), "pass", "fail", "temperror", "permerror") {
		// A zone ("%eth0") is local to this host and arbitrary text: never ours to write.
		iprev := &authres.IPRevResult{Value: authres.ResultValue(d.Evidence.IPRev), IP: ip.WithZone("").String()}
		if len(d.Evidence.PTRConfirmed) > 0 && ldhName(d.Evidence.PTRConfirmed[0]) {
			iprev.Reason = "ptr " + d.Evidence.PTRConfirmed[0]
		}
		results = append(results, iprev)
	}
	if d.Helo.Form == policy.HeloFQDN && ldhName(d.Helo.Name) &&
		validResult(string(d.Evidence.SPFHelo), "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror") {
		results = append(results, &authres.SPFResult{Value: authres.ResultValue(d.Evidence.SPFHelo), Helo: d.Helo.Name})
	}
	return authres.Format(authservID, results)
}

// validResult reports whether r is one of the results a method can have
// here: iprev's of RFC 8601 section 2.7.3, spf's of RFC 7208 section 2.6.
func validResult(r string, valid ...string) bool {
	return slices.Contains(valid, r)
}

// ldhName reports whether s is a host name of LDH labels (RFC 1123 section
// 2.1): 1 to 63 letters, digits and hyphens, not starting or ending with a
// hyphen, at most 253 bytes in all, no trailing dot. Such a name is a token in
// every header grammar and needs no quoting, so no reader can mistake it.
func ldhName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
