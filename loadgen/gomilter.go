package loadgen

import (
	"net"
	"strconv"
	"time"

	milter "github.com/d--j/go-milter"
)

// goMilterPlayer plays the same sessions through github.com/d--j/go-milter's
// ClientSession (--client go-milter), to compare its cost with the lean
// player's (see the package comment). The library sends a macro packet only
// when one of the stage's macros has a value, and the ESMTP arguments of MAIL
// as one string; otherwise the packets are the same.
type goMilterPlayer struct {
	client *milter.Client
	msg    *message
	neg    *Negotiated
}

func newGoMilterPlayer(t Target, version uint32, timeout time.Duration, m *message) *goMilterPlayer {
	opts := []milter.Option{
		milter.WithDialer(&net.Dialer{Timeout: timeout}),
		milter.WithReadTimeout(timeout),
		milter.WithWriteTimeout(timeout),
		milter.WithMaximumVersion(version),
		milter.WithActions(milter.OptAction(PostfixActions)),
		milter.WithProtocols(milter.OptProtocol(PostfixEvents(version))),
		milter.WithoutDefaultMacros(),
	}
	for st, names := range postfixMacros {
		opts = append(opts, milter.WithMacroRequest(milter.MacroStage(st), names))
	}
	return &goMilterPlayer{client: milter.NewClient(t.Network, t.Address, opts...), msg: m}
}

func (g *goMilterPlayer) negotiated() *Negotiated { return g.neg }

// envMacros lets the library read a session's macros.
type envMacros struct{ *macroEnv }

func (e envMacros) Get(name string) string { v, _ := e.value(name); return v }

func (e envMacros) GetEx(name string) (string, bool) { return e.value(name) }

func (g *goMilterPlayer) play(id *Identity, seq uint64, o *outcome) {
	start := time.Now()
	*o = outcome{identity: o.identity}
	l := laps{o: o, t: start}
	err := g.session(id, seq, &l)
	o.total = time.Since(start)
	if err != nil {
		o.err = err
		if se, ok := err.(*stageError); ok {
			o.errStage = se.stage
		}
	}
}

func (g *goMilterPlayer) session(id *Identity, seq uint64, l *laps) error {
	env := &macroEnv{id: id, port: strconv.Itoa(1024 + int(seq%64000))}
	s, err := g.client.Session(envMacros{env})
	if err != nil {
		return &stageError{StageConnect, err}
	}
	defer s.Close()
	if g.neg == nil {
		g.neg = negotiatedOf(s)
	}
	family := milter.FamilyInet
	if id.IPv6 {
		family = milter.FamilyInet6
	}
	steps := []struct {
		stage int
		do    func() (*milter.Action, error)
	}{
		{StageConnect, func() (*milter.Action, error) {
			return s.Conn(id.connectHost(), family, uint16(1024+seq%64000), id.Addr)
		}},
		{StageHelo, func() (*milter.Action, error) { return s.Helo(id.Helo) }},
		{StageMail, func() (*milter.Action, error) {
			env.queueID, env.mailAddr = queueID(seq), sender
			return s.Mail(sender, "SIZE="+strconv.Itoa(len(g.msg.body)+4096)+" BODY=8BITMIME")
		}},
	}
	for _, st := range steps {
		a, err := st.do()
		l.lap(st.stage)
		if err != nil {
			return &stageError{st.stage, err}
		}
		if r := replyOf(a); r.final() {
			l.o.verdict = verdictOf(r, st.stage)
			if st.stage >= StageMail {
				return s.Abort(nil)
			}
			return nil
		}
	}
	return g.rest(s, env, l)
}

// rest is the recipients and the message.
func (g *goMilterPlayer) rest(s *milter.ClientSession, env *macroEnv, l *laps) error {
	refused := uint8(0)
	var last reply
	for _, rcpt := range recipients {
		env.rcptAddr = rcpt
		a, err := s.Rcpt(rcpt, "")
		if err != nil {
			return &stageError{StageRcpt, err}
		}
		if r := replyOf(a); r.refuses() {
			refused, last = refused+1, r
		}
	}
	l.lap(StageRcpt)
	if int(refused) == len(recipients) {
		l.o.verdict = verdictOf(last, StageRcpt)
		return s.Abort(nil)
	}
	if _, err := s.DataStart(); err != nil {
		return &stageError{StageHeaders, err}
	}
	qid := map[string]string{"i": env.queueID}
	for _, h := range g.msg.headers {
		if _, err := s.HeaderField(h.Name, h.Value, qid); err != nil {
			return &stageError{StageHeaders, err}
		}
	}
	if _, err := s.HeaderEnd(); err != nil {
		return &stageError{StageHeaders, err}
	}
	l.lap(StageHeaders)
	if _, err := s.BodyChunk(g.msg.body); err != nil {
		return &stageError{StageEOM, err}
	}
	mods, a, err := s.End()
	l.lap(StageEOM)
	if err != nil {
		return &stageError{StageEOM, err}
	}
	for _, m := range mods {
		if m.Type == milter.ActionAddHeader {
			l.o.mods[ModAddHeader]++
		}
	}
	l.o.verdict = verdictOf(replyOf(a), StageEOM)
	l.o.verdict.RcptRefused = refused
	return s.Abort(nil)
}

// replyOf maps the library's action onto Postfix's reading of it.
func replyOf(a *milter.Action) reply {
	switch a.Type {
	case milter.ActionAccept:
		return reply{code: replyAccept}
	case milter.ActionDiscard:
		return reply{code: replyDiscard}
	case milter.ActionReject, milter.ActionTempFail, milter.ActionRejectWithCode:
		return reply{code: replyCode, smtp: a.SMTPCode}
	}
	return continueReply
}

// negotiatedOf reads what the session negotiated (the library does not say
// which version).
func negotiatedOf(s *milter.ClientSession) *Negotiated {
	n := &Negotiated{}
	for bit := range 32 {
		if s.ProtocolOption(milter.OptProtocol(1) << bit) {
			n.Protocol |= Protocol(1) << bit
		}
		if s.ActionOption(milter.OptAction(1) << bit) {
			n.Actions |= Actions(1) << bit
		}
	}
	return n
}
