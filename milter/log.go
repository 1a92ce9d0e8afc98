package milter

import (
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// flushLog writes the decision record for the current verdict, once: when a
// refusal is delivered, at the end of the first message, when a new HELO
// replaces the verdict, or when the connection closes. The record carries the
// whole evidence, so `heloguard replay` can re-decide it without DNS.
func (s *session) flushLog() {
	v := s.verdict
	if v == nil || v.logged {
		return
	}
	v.logged = true
	if v.Rule == policy.RulePrivateClient {
		if r, first := s.srv.private.first(s.ip); first {
			s.srv.ops.Warn("client address that public DNS cannot speak for: a NAT or container network in front of the MTA, or an internal client? add internal networks to trusted_networks",
				"range", r.String(), "client_ip", s.ip.String(), "action", string(v.Action))
		}
	}
	r := record.FromDecision(v.Decision, s.ip)
	r.Time = time.Now()
	r.QueueID, r.ClientPort, r.ClientHost = s.queueID, int(s.port), s.host
	r.Mode = record.ModeEnforce
	switch {
	case v.Monitor:
		r.Mode = record.ModeMonitorRule
	case s.st.Cfg.Mode == config.ModeMonitor:
		r.Mode = record.ModeMonitor
	}
	r.Stage, r.DecidedAt, r.Exemption = v.stage, v.decidedAt, v.exemption
	r.DNSLookups, r.DNSCacheHits = s.tally.Lookups.Load(), s.tally.Hits.Load()
	r.DNSFailures = s.tally.Failures()
	buf := r.AppendJSON(make([]byte, 0, 1024))
	// One write per line: the writer serializes lines from concurrent sessions.
	if _, err := s.srv.decisions.Write(append(buf, '\n')); err != nil {
		s.srv.ops.Error("writing the decision log", "err", err.Error())
	}
	s.srv.metrics.decision(&r, v.Duration) // counted here, with the record: once per decision
}
