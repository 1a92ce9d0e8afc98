package milter

import (
	"fmt"

	gomilter "github.com/emersion/go-milter"
	"github.com/emersion/go-msgauth/authres"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// endOfMessage removes forged Authentication-Results, adds ours (RFC 8601: iprev
// with policy.iprev, spf with smtp.helo) and applies quarantine and tag actions.
// Modifications are legal only here, at end of message.
func (s *session) endOfMessage(m *gomilter.Modifier) error {
	// Delete from the last so earlier indexes stay right. This holds for every
	// client, judged or not: nobody may speak for our authserv-id.
	for i := len(s.arIndex) - 1; i >= 0; i-- {
		if err := m.ChangeHeader(s.arIndex[i], "Authentication-Results", ""); err != nil {
			return err
		}
	}
	v := s.verdict
	if v == nil {
		return nil // a local client (unix socket), or no HELO and no MAIL judged
	}
	if !v.Trusted && s.ip.IsValid() { // a client without an address has no iprev to report
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
	case v.Action == policy.ActionQuarantine:
		if err := m.Quarantine("heloguard rule " + v.Rule); err != nil {
			return err
		}
		would = fmt.Sprintf("quarantined by rule %s", v.Rule)
	}
	if would != "" {
		return m.AddHeader("X-Heloguard", would)
	}
	return nil
}

func (s *session) authResults(v *verdict) string {
	ip := s.ip.String()
	iprev := &authres.IPRevResult{Value: authres.ResultValue(v.Evidence.IPRev), IP: ip}
	if len(v.Evidence.PTRConfirmed) > 0 {
		iprev.Reason = "ptr " + v.Evidence.PTRConfirmed[0]
	}
	results := []authres.Result{iprev}
	if v.Helo.Form == policy.HeloFQDN {
		results = append(results, &authres.SPFResult{Value: authres.ResultValue(v.Evidence.SPFHelo), Helo: v.Helo.Name})
	}
	return authres.Format(s.st.Cfg.AuthservID, results)
}
