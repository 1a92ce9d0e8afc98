package milter_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startInstrumented is start with the server's metrics in a registry of its
// own.
func startInstrumented(t *testing.T, extra string) (*harness, *prometheus.Registry) {
	t.Helper()
	dns := world(t)
	yml := fmt.Sprintf("listen: inet:127.0.0.1:0\nlocal_names: [mx.receiver.example]\nauthserv_id: mx.receiver.example\ndns: {servers: [%q], timeout: 500ms}\n%s", dns.Addr, extra)
	cfg, err := config.Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	res, err := dnscache.New(cfg.DNS)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := milter.New(&milter.State{Cfg: cfg, Engine: policy.New(cfg.PolicyOptions(res))}, logs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	reg := prometheus.NewPedanticRegistry()
	srv.Instrument(reg)
	addr, err := srv.Listen(cfg.Listen[0])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{addr: addr.String(), log: logs, srv: srv, dns: dns}, reg
}

// series returns the values of a metric family, keyed by its label values
// in the order of the label names, joined with "/" (action/enforcement/rule
// for decisions; "" for a metric without labels); histograms give their
// sample count.
func series(t *testing.T, g prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var lv []string
			for _, l := range m.GetLabel() {
				lv = append(lv, l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[strings.Join(lv, "/")] = v
		}
	}
	return out
}

// closeAndWait ends the MTA connections and waits until the server has
// closed its sessions (the last decision records are written then).
func closeAndWait(t *testing.T, h *harness, ms ...*mta) {
	t.Helper()
	for _, m := range ms {
		m.cs.Close()
	}
	if !waitFor(5*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
		t.Fatalf("%d sessions still open", h.srv.Sessions())
	}
}

// Every decision record is counted once, by rule, action and what became of
// it; the latency histogram has one sample per record; sessions are counted
// and none is left in flight.
func TestDecisionMetrics(t *testing.T) {
	h, reg := startInstrumented(t, "")
	var sessions []*mta

	// Refused at RCPT.
	m := h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<ceo@contoso.example>")
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 550, "5.7.23 ")
	sessions = append(sessions, m)

	// Refused, but the only recipient is postmaster@: exempt.
	m = h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<ceo@contoso.example>")
	wantContinue(t, "rcpt postmaster", m.rcpt("<postmaster@receiver.example>"))
	m.message("Subject", "hello")
	sessions = append(sessions, m)

	// Refused, but authenticated: exempt.
	m = h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.macros.Set("{auth_authen}", "alice")
	m.mail("<alice@receiver.example>")
	wantContinue(t, "rcpt authenticated", m.rcpt("<someone@elsewhere.example>"))
	m.message("Subject", "hello")
	sessions = append(sessions, m)

	// postmaster@ and then user@ in one transaction: the refusal goes out.
	m = h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<ceo@contoso.example>")
	wantContinue(t, "rcpt postmaster", m.rcpt("<postmaster@receiver.example>"))
	wantReply(t, "rcpt user", m.rcpt("<user@receiver.example>"), 550, "5.7.23 ")
	sessions = append(sessions, m)

	// Accepted, two messages in one session: one decision.
	m = h.dial(t)
	m.connect(o365IP)
	m.helo(o365Helo)
	for range 2 {
		m.mail("<a@contoso.example>")
		wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
		m.message("Subject", "hello")
	}
	sessions = append(sessions, m)

	// A second HELO replaces the first decision: two records.
	m = h.dial(t)
	m.connect(oneToOneIP)
	m.helo("localhost")
	m.helo("mail.one-to-one.example")
	m.mail("<a@one-to-one.example>")
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	sessions = append(sessions, m)

	// DNS trouble: tempfail.
	m = h.dial(t)
	m.connect("192.0.2.99")
	m.helo("unreachable.example")
	m.mail("<a@unreachable.example>")
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 451, "4.7.25 ")
	sessions = append(sessions, m)

	// Trusted.
	m = h.dial(t)
	m.connect("127.0.0.1")
	m.helo("localhost")
	sessions = append(sessions, m)

	closeAndWait(t, h, sessions...)
	want := map[string]float64{
		"reject/enforce/helo-spf-fail":           2,
		"reject/exempt/helo-spf-fail":            2,
		"accept/enforce/generic-helo":            1,
		"reject/enforce/helo-syntax":             1, // replaced by a second HELO before RCPT
		"accept/enforce/helo-equals-ptr":         1,
		"tempfail/enforce/reverse-dns-temperror": 1,
		"accept/enforce/trusted":                 1,
	}
	got := series(t, reg, "heloguard_decisions_total")
	if !maps.Equal(got, want) {
		t.Errorf("heloguard_decisions_total:\n got %v\nwant %v", got, want)
	}
	records := h.log.decisions(t)
	if len(records) != 9 {
		t.Fatalf("%d decision records, want 9", len(records))
	}
	if got := series(t, reg, "heloguard_decision_duration_seconds")[""]; got != float64(len(records)) {
		t.Errorf("%v latency samples, want one per record (%d)", got, len(records))
	}
	if got := series(t, reg, "heloguard_milter_sessions_total")[""]; got != float64(len(sessions)) {
		t.Errorf("heloguard_milter_sessions_total %v, want %d", got, len(sessions))
	}
	if got := series(t, reg, "heloguard_milter_sessions_in_flight")[""]; got != 0 {
		t.Errorf("heloguard_milter_sessions_in_flight %v after every session ended", got)
	}
	if got := series(t, reg, "heloguard_milter_protocol_errors_total"); !maps.Equal(got, map[string]float64{"timeout": 0, "reset": 0, "malformed": 0}) {
		t.Errorf("protocol errors in clean sessions: %v", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// Monitor mode and monitor rules are counted as monitor, with the action the
// rule would have taken.
func TestDecisionMetricsMonitor(t *testing.T) {
	for _, tt := range []struct{ name, extra string }{
		{"mode", "mode: monitor\n"},
		{"rule", "overrides: {helo-spf-fail: {monitor: true}}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, reg := startInstrumented(t, tt.extra)
			m := h.dial(t)
			m.connect(forgerIP)
			m.helo(o365Helo)
			m.mail("<ceo@contoso.example>")
			wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
			m.message("Subject", "hello")
			closeAndWait(t, h, m)
			if got := series(t, reg, "heloguard_decisions_total"); !maps.Equal(got, map[string]float64{"reject/monitor/helo-spf-fail": 1}) {
				t.Errorf("heloguard_decisions_total %v", got)
			}
		})
	}
}

// Connections that end badly are counted by kind: a silent MTA (timeout), a
// reset, a CONNECT go-milter cannot parse (malformed).
func TestProtocolErrorMetrics(t *testing.T) {
	h, reg := startInstrumented(t, "read_timeout: 300ms\n")
	errs := func() map[string]float64 { return series(t, reg, "heloguard_milter_protocol_errors_total") }
	wait := func(what string, want map[string]float64) {
		t.Helper()
		if !waitFor(5*time.Second, func() bool { return maps.Equal(errs(), want) && h.srv.Sessions() == 0 }) {
			t.Fatalf("%s: protocol errors %v, want %v (%d sessions open)", what, errs(), want, h.srv.Sessions())
		}
	}
	opt := optneg(2, 0x31, 0)

	// Silent: dropped after read_timeout.
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wait("silent MTA", map[string]float64{"timeout": 1, "reset": 0, "malformed": 0})

	// Reset in the middle of a packet.
	c2, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Write(append(opt, 0, 0, 0, 9, 'C')); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, make([]byte, 4)); err != nil { // the negotiation's reply: our packets were read
		t.Fatal(err)
	}
	c2.(*net.TCPConn).SetLinger(0) // close with RST
	c2.Close()
	wait("reset", map[string]float64{"timeout": 1, "reset": 1, "malformed": 0})

	// A CONNECT without its port.
	c3, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.Write(append(opt, packet('C', []byte("host\x004"))...)); err != nil {
		t.Fatal(err)
	}
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(c3)
	wait("malformed CONNECT", map[string]float64{"timeout": 1, "reset": 1, "malformed": 1})
	if kinds := slices.Collect(maps.Keys(errs())); len(kinds) != len(milter.ProtocolErrorKinds()) {
		t.Errorf("kinds %v, want %v", kinds, milter.ProtocolErrorKinds())
	}
}
