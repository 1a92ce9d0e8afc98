package milter

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/heloguard/heloguard/policy/record"
	"github.com/prometheus/client_golang/prometheus"
)

// Enforcements: what became of a decision, the enforcement label of
// heloguard_decisions_total. Derived from the decision record, so the metric
// and the log say the same.
const (
	// EnforcementEnforce: the decision was applied: an acceptance, or a
	// refusal sent to the client (or due when it left first).
	EnforcementEnforce = "enforce"
	// EnforcementMonitor: logged, never enforced: mode monitor, or a rule
	// with monitor: true.
	EnforcementMonitor = "monitor"
	// EnforcementExempt: a refusal that was not sent, because every
	// recipient was exempt (postmaster@, abuse@) or the client authenticated.
	EnforcementExempt = "exempt"
)

// Protocol errors: why a milter connection ended abnormally, the kind label
// of heloguard_milter_protocol_errors_total. A small fixed set.
const (
	// ProtocolTimeout: the MTA sent nothing for read_timeout.
	ProtocolTimeout = "timeout"
	// ProtocolReset: reading the MTA's socket failed (connection reset, or
	// another socket error).
	ProtocolReset = "reset"
	// ProtocolMalformed: the MTA sent a packet the session could not take: a
	// CONNECT, MAIL or RCPT cut short (conn.holdPacket), or a command
	// go-milter refused and ended the session on (it logs which).
	ProtocolMalformed = "malformed"
)

// ProtocolErrorKinds returns every kind of protocol error, in a fixed order.
func ProtocolErrorKinds() []string {
	return []string{ProtocolTimeout, ProtocolReset, ProtocolMalformed}
}

// Metrics are the milter's metrics: decisions, their latency, sessions and
// protocol errors.
type Metrics struct {
	decisions      *prometheus.CounterVec // rule, action, enforcement
	latency        prometheus.Histogram
	sessions       prometheus.Counter
	protocolErrors *prometheus.CounterVec // kind
}

// Instrument registers the server's metrics in reg and makes the server count
// them. Call it before Serve.
func (s *Server) Instrument(reg prometheus.Registerer) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heloguard_decisions_total",
			Help: "Decisions, one per decision record, by the rule that decided, its action and what became of it (enforce, monitor, exempt).",
		}, []string{"rule", "action", "enforcement"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "heloguard_decision_duration_seconds",
			Help:    "Time from the HELO (or the connect, for a decision taken there) to the decision, DNS included; one per decision record.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heloguard_milter_sessions_total",
			Help: "Milter sessions (MTA connections) accepted.",
		}),
		protocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heloguard_milter_protocol_errors_total",
			Help: "Milter connections ended by a protocol error, by kind (timeout, reset, malformed).",
		}, []string{"kind"}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "heloguard_milter_sessions_in_flight",
		Help: "Milter sessions open now.",
	}, func() float64 { return float64(s.Sessions()) })
	reg.MustRegister(m.decisions, m.latency, m.sessions, m.protocolErrors, inFlight)
	for _, k := range ProtocolErrorKinds() {
		m.protocolErrors.WithLabelValues(k)
	}
	s.metrics = m
}

// decision counts the decision a record was written for: flushLog calls it
// where it writes the record, so each record is counted once.
func (m *Metrics) decision(r *record.Record, took time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(r.Rule, string(r.Action), enforcement(r)).Inc()
	m.latency.Observe(took.Seconds())
}

// enforcement reads a record's fate: monitor when the mode or the rule is
// log-only, exempt when a refusal went nowhere because of an exemption.
func enforcement(r *record.Record) string {
	switch {
	case r.Mode != record.ModeEnforce:
		return EnforcementMonitor
	case r.Exemption != "" && r.Stage == "":
		return EnforcementExempt
	}
	return EnforcementEnforce
}

// opened counts a session the listener accepted, and the errors of reading
// its socket from now on.
func (m *Metrics) opened(c *conn) {
	if m == nil {
		return
	}
	m.sessions.Inc()
	c.r.Reset(&countingReader{nc: c.Conn, m: m})
}

func (m *Metrics) protocolError(kind string) {
	if m != nil {
		m.protocolErrors.WithLabelValues(kind).Inc()
	}
}

// countingReader is what a conn's buffer reads the MTA's socket through: it
// counts the errors that end a session.
type countingReader struct {
	nc net.Conn
	m  *Metrics
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.nc.Read(p)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			// The MTA closed the connection, or we did.
		case errors.As(err, &ne) && ne.Timeout():
			r.m.protocolError(ProtocolTimeout)
		default:
			r.m.protocolError(ProtocolReset)
		}
	}
	return n, err
}
