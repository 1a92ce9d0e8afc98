package milter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
)

// session is one MTA connection, which is one SMTP session. go-milter calls it
// from a single goroutine.
type session struct {
	srv *Server
	st  *State // config and engine as they were at connect; a reload does not change a session mid-way

	ctx    context.Context // lives as long as the connection
	cancel context.CancelFunc

	local    bool       // a unix-socket client (CONNECT family L): local submission, never judged
	ip       netip.Addr // zero for a local client, and for one the MTA gave no usable address for
	port     uint16
	host     string // the MTA's idea of the client's name
	pending  *policy.PendingReverse
	tally    dnscache.Tally
	verdict  *verdict           // current decision; nil before HELO
	queued   []*pendingDecision // decisions under way for HELOs the MTA did not wait for (decideLater)
	queueID  string
	authUser string
	arIndex  []int // positions (1-based per name) of incoming Authentication-Results that claim our authserv-id
	arCount  int
}

// verdict is a decision and what became of it, logged once.
type verdict struct {
	policy.Decision
	stage     string // where a refusal was delivered; "" if not (yet)
	decidedAt string // "connect" when decided before any HELO (reject_at: connect)
	exemption string // authenticated, recipient, monitor
	logged    bool
}

func (s *session) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (_ *gomilter.Response, err error) {
	defer s.guard(&err)
	// One CONNECT per connection from a real MTA; should another come, it
	// starts afresh.
	if err := s.settle(); err != nil {
		return nil, err
	}
	s.flushLog()
	s.verdict, s.pending, s.ip = nil, nil, netip.Addr{}
	s.host, s.port = clip(host, maxName), port
	s.local = family == "unix"
	if s.local { // go-milter's name for family L
		return gomilter.RespContinue, nil // local submission over a unix socket: nothing to judge
	}
	// Any other family, "unknown" (U) included (and a 4 or 6 whose address
	// does not parse, which the conn hands on as U), is a network client:
	// judged by its address, or, if the MTA gives none that parses, by
	// unknown_client_action. go-milter ends the session on other families.
	s.ip = clientIP(addr, host, m.Get("{client_addr}"))
	if !s.ip.IsValid() {
		return s.deliver(s.decided(s.st.Engine.DecideUnknownClient("")), config.StageConnect), nil
	}
	if d, ok := s.st.Engine.DecideTrusted(s.ip, ""); ok {
		s.decided(d)
		return gomilter.RespContinue, nil
	}
	s.pending = s.st.Engine.StartReverse(s.lookupCtx(), s.ip)
	if s.st.Cfg.RejectAt != config.StageConnect {
		return gomilter.RespContinue, nil
	}
	ctx, cancel := s.decisionCtx()
	defer cancel()
	start := time.Now()
	rev, ok := s.pending.Wait(ctx)
	if !ok {
		return gomilter.RespContinue, nil // too slow at connect: judge at HELO
	}
	d, ok := s.st.Engine.JudgeEarly(s.ip, rev)
	if !ok {
		return gomilter.RespContinue, nil
	}
	d.Duration = time.Since(start)
	v := s.decided(d)
	v.decidedAt = config.StageConnect
	return s.deliver(v, config.StageConnect), nil
}

// lookupCtx is the context of the connection's DNS work: it carries the tally
// and ends with the connection.
func (s *session) lookupCtx() context.Context {
	return dnscache.WithTally(s.ctx, &s.tally)
}

func (s *session) decisionCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.lookupCtx(), s.st.Cfg.DecisionTimeout)
}

func (s *session) Helo(name string, m gomilter.Modifier) (_ *gomilter.Response, err error) {
	defer s.guard(&err)
	if s.local {
		return gomilter.RespContinue, nil
	}
	name = clip(name, maxName)                 // longer is invalid anyway (RFC 5321 4.5.3.1.2), and judged so
	if v := s.verdict; v != nil && s.fixed() { // decided at connect: nothing is under way
		// For the log: the verdict stands, but we know what the client said.
		v.Helo = policy.ParseHelo(name)
		v.Evidence.HeloForm = v.Helo.Form
		return s.deliver(v, config.StageHelo), nil
	}
	if m.Protocol()&gomilter.OptNoHeloReply != 0 && s.ip.IsValid() {
		s.decideLater(name)               // beside any decision still under way
		return gomilter.RespContinue, nil // not sent: the MTA does not wait
	}
	if err := s.settle(); err != nil {
		return nil, err
	}
	s.decide(name)
	return s.deliver(s.verdict, config.StageHelo), nil
}

// decideLater judges the client with this HELO on a goroutine of its own,
// for a HELO the MTA does not wait for (SMFIP_NR_HELO): the session reads on,
// and the DNS work overlaps the client's MAIL and RCPT. The decision is taken
// up (settle) at the session's next event that needs it; its decision_timeout
// runs from now, so whatever the MTA sends next waits at most that long for
// it, even when several HELOs (EHLO, STARTTLS, EHLO) come before a stage the
// MTA waits at. Waiting for one decision before starting the next would add
// their times up, past the MTA's reply timeout.
func (s *session) decideLater(helo string) {
	ctx, cancel := s.decisionCtx()
	p := &pendingDecision{done: make(chan struct{})}
	engine, ip, rev, ops := s.st.Engine, s.ip, s.pending, s.srv.ops
	go func() {
		defer close(p.done)
		defer cancel()
		defer func() {
			if r := recover(); r != nil {
				ops.Error("a decision panicked; closing its session", "panic", fmt.Sprint(r), "stack", string(debug.Stack()), "client_ip", ip.String())
				p.err = errPanic
			}
		}()
		p.d = engine.Decide(ctx, ip, helo, rev)
	}()
	s.queued = append(s.queued, p)
}

// pendingDecision is a decision under way on its own goroutine.
type pendingDecision struct {
	done chan struct{} // closed when d or err is set
	d    policy.Decision
	err  error
}

// settle takes up the decisions under way, in the order of their HELOs: each
// replaces the verdict, the one before it logged first.
func (s *session) settle() error {
	for len(s.queued) > 0 {
		p := s.queued[0]
		<-p.done
		s.queued = s.queued[1:]
		if p.err != nil {
			return p.err
		}
		s.decided(p.d)
	}
	s.queued = nil
	return nil
}

// decide judges the client with this HELO; a new HELO (after STARTTLS or RSET)
// is judged again and replaces the previous decision, which is logged first.
// A client without an address (or a session without CONNECT) gets
// unknown_client_action.
func (s *session) decide(helo string) {
	if !s.ip.IsValid() {
		s.decided(s.st.Engine.DecideUnknownClient(helo))
		return
	}
	ctx, cancel := s.decisionCtx()
	defer cancel()
	s.decided(s.st.Engine.Decide(ctx, s.ip, helo, s.pending))
}

// fixed reports whether the verdict was made at connect without evidence and
// no HELO changes it: a trusted client, or one without an address.
func (s *session) fixed() bool {
	return s.verdict != nil && (s.verdict.Trusted || !s.ip.IsValid())
}

func (s *session) decided(d policy.Decision) *verdict {
	s.flushLog()
	s.verdict = &verdict{Decision: d}
	return s.verdict
}

// stageRank orders the stages: a refusal due at one stage is delivered there
// or at the first later stage the client reaches (a client that sends MAIL
// without HELO is judged, and refused, at MAIL).
func stageRank(stage string) int {
	switch stage {
	case config.StageConnect:
		return 0
	case config.StageHelo:
		return 1
	case config.StageMail:
		return 2
	}
	return 3
}

// deliver returns the response for a verdict at a stage: a refusal goes out at
// the configured stage; monitor mode and monitor rules only log.
func (s *session) deliver(v *verdict, stage string) *gomilter.Response {
	if v == nil || !v.Action.Refuses() || stageRank(stage) < stageRank(s.st.Cfg.RejectAt) {
		return gomilter.RespContinue
	}
	if s.st.Cfg.Mode == config.ModeMonitor || v.Monitor {
		v.exemption = "monitor"
		return gomilter.RespContinue
	}
	if v.stage == "" {
		v.stage = stage
	}
	s.flushLog()
	return replyResponse(v.Reply)
}

func (s *session) MailFrom(from, esmtpArgs string, m gomilter.Modifier) (_ *gomilter.Response, err error) {
	defer s.guard(&err)
	if err := s.settle(); err != nil {
		return nil, err
	}
	s.arIndex, s.arCount = nil, 0 // a new message (Sendmail sends no abort after EOM)
	if s.local {
		return gomilter.RespContinue, nil
	}
	s.authUser = keep(m.Get("{auth_authen}"), maxAuthUser)
	s.captureQueueID(m)
	if s.verdict == nil { // no HELO at all: Postfix allows it unless smtpd_helo_required
		s.decide("")
	}
	if s.exempt(s.verdict, "") {
		return gomilter.RespContinue, nil
	}
	return s.deliver(s.verdict, config.StageMail), nil
}

func (s *session) RcptTo(rcpt, esmtpArgs string, m gomilter.Modifier) (_ *gomilter.Response, err error) {
	defer s.guard(&err)
	if err := s.settle(); err != nil {
		return nil, err
	}
	if s.local || s.verdict == nil {
		return gomilter.RespContinue, nil
	}
	s.captureQueueID(m)
	if s.exempt(s.verdict, rcpt) {
		return gomilter.RespContinue, nil
	}
	return s.deliver(s.verdict, config.StageRcpt), nil
}

// exempt applies the exemptions a refusal at MAIL or RCPT allows: authenticated
// clients, and mail to postmaster@ and abuse@ (RFC 5321 4.5.1).
func (s *session) exempt(v *verdict, rcpt string) bool {
	if v == nil || !v.Action.Refuses() {
		return false
	}
	if s.authUser != "" {
		v.exemption = "authenticated"
		return true
	}
	if rcpt == "" || len(rcpt) > maxPath {
		return false
	}
	local := strings.ToLower(strings.Trim(rcpt, "<>"))
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	for _, x := range s.st.Cfg.ExemptRcpts {
		if local == strings.ToLower(x) {
			v.exemption = "recipient " + x
			return true
		}
	}
	return false
}

func (s *session) captureQueueID(m gomilter.Modifier) {
	if id := m.Get("i"); id != "" {
		s.queueID = keep(id, maxQueueID)
	}
}

// NewConnection is called when the MTA reuses the milter connection for a
// new SMTP session (SMFIC_QUIT_NC; Postfix and Sendmail do not), and once at
// the start: the previous decision is logged, the message's state dropped;
// the CONNECT that follows sets the client afresh.
func (s *session) NewConnection(m gomilter.Modifier) (err error) {
	defer s.guard(&err)
	if err := s.settle(); err != nil {
		return err
	}
	s.flushLog()
	s.arIndex, s.arCount, s.authUser, s.queueID = nil, 0, "", ""
	return nil
}

func (s *session) Header(name, value string, m gomilter.Modifier) (_ *gomilter.Response, err error) {
	defer s.guard(&err)
	if !strings.EqualFold(name, "Authentication-Results") {
		return gomilter.RespContinue, nil
	}
	s.arCount++
	if claimsAuthservID(value, s.st.Cfg.AuthservID) { // the spellings that count as ours: authserv.go
		s.arIndex = append(s.arIndex, s.arCount)
	}
	return gomilter.RespContinue, nil
}

// EndOfMessage: headers and quarantine. go-milter answers accept for the
// continue returned here; that ends the message, not the session.
func (s *session) EndOfMessage(m gomilter.Modifier) (_ *gomilter.Response, err error) {
	defer s.guard(&err)
	if err := s.settle(); err != nil {
		return nil, err
	}
	s.captureQueueID(m)
	if err := s.endOfMessage(m); err != nil {
		return nil, err
	}
	s.arIndex, s.arCount = nil, 0
	s.flushLog()
	return gomilter.RespContinue, nil
}

func (s *session) Abort(m gomilter.Modifier) error {
	s.arIndex, s.arCount, s.authUser = nil, 0, ""
	return nil
}

// The events negotiated away (SMFIP_NODATA, NOEOH, NOBODY, NOUNKNOWN: see
// negotiate.go); should an MTA send them anyway, they are let pass.

func (s *session) Data(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (s *session) Headers(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (s *session) BodyChunk([]byte, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (s *session) Unknown(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Cleanup is go-milter's last call; the conn's Close, which follows it, ends
// the session (closed).
func (s *session) Cleanup(gomilter.Modifier) {}

var errPanic = errors.New("milter: the session panicked (a bug of heloguard's; logged with its stack)")

// guard turns a panic in a callback, a bug of ours, into the end of this
// session alone, logged with its stack: go-milter recovers none, and the
// daemon would end with every session in it. The MTA applies its
// milter_default_action (tempfail) to this one.
func (s *session) guard(err *error) {
	r := recover()
	if r == nil {
		return
	}
	attrs := []any{"panic", fmt.Sprint(r), "stack", string(debug.Stack())}
	if s.ip.IsValid() {
		attrs = append(attrs, "client_ip", s.ip.String())
	}
	s.srv.ops.Error("a milter session panicked; closing it", attrs...)
	*err = errPanic
}

// closed runs when the MTA closes the socket: the decision is logged if it was
// not yet, and the connection's DNS work is let go.
func (s *session) closed() {
	_ = s.settle() // a panic in a decision was logged where it happened
	s.flushLog()
	s.cancel()
}
