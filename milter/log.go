package milter

import (
	"context"
	"log/slog"
)

// flushLog writes the decision log line for the current verdict, once: when a
// refusal is delivered, at the end of the first message, when a new HELO
// replaces the verdict, or when the connection closes. The line carries the whole
// evidence, so `heloguard replay` can re-decide it without DNS.
func (s *session) flushLog() {
	v := s.verdict
	if v == nil || v.logged {
		return
	}
	v.logged = true
	mode := s.st.Cfg.Mode
	if v.Monitor {
		mode = "monitor-rule"
	}
	attrs := []slog.Attr{
		slog.String("queue_id", s.queueID),
		slog.String("client_ip", s.ip.String()),
		slog.Int("client_port", int(s.port)),
		slog.String("client_host", s.host),
		slog.String("helo", v.helo),
		slog.Any("ptr", v.Evidence.PTR),
		slog.String("rule", v.Rule),
		slog.String("action", string(v.Action)),
		slog.String("reply", v.Reply.String()),
		slog.String("mode", mode),
		slog.String("stage", v.stage),
		slog.String("decided_at", v.decidedAt),
		slog.String("exemption", v.exemption),
		slog.Bool("trusted", v.Trusted),
		slog.Bool("evidence_cached", v.Cached),
		slog.Any("evidence", v.Evidence),
		slog.Float64("duration_ms", float64(v.Duration.Microseconds())/1000),
		slog.Int64("dns_lookups", s.tally.Lookups.Load()),
		slog.Int64("dns_cache_hits", s.tally.Hits.Load()),
	}
	s.srv.log.LogAttrs(context.Background(), slog.LevelInfo, "decision", attrs...)
}
