package loadgen

import (
	"strconv"
	"time"
)

// The envelope of every message: one sender, two recipients (neither
// postmaster nor abuse, which heloguard never refuses).
const sender = "billing@contoso.example"

var recipients = [2]string{"alice@receiver.example", "bob@receiver.example"}

// laps times the stages of one session.
type laps struct {
	o *outcome
	t time.Time
}

func (l *laps) lap(stage int) {
	now := time.Now()
	l.o.stages[stage] += now.Sub(l.t)
	l.o.reached[stage] = true
	l.t = now
}

// play runs one SMTP session's worth of milter traffic for id, as Postfix
// sends it: CONNECT, HELO, MAIL, two RCPTs, DATA, the header fields, end of
// header, one body chunk, end of message, ABORT, QUIT, with the macros of each
// stage before it. Postfix's reactions are followed: a decision at CONNECT or
// HELO ends the milter connection; a refusal at MAIL, of both recipients or of
// the message ends the transaction (ABORT) and then the session (QUIT).
func (pl *player) play(id *Identity, seq uint64, o *outcome) {
	start := time.Now()
	*o = outcome{identity: o.identity}
	l := laps{o: o, t: start}
	quit, err := pl.session(id, seq, &l)
	if pl.conn != nil {
		pl.close(quit && err == nil)
	}
	o.total = time.Since(start)
	o.mods = pl.mods
	if err != nil {
		o.err = err
		if se, ok := err.(*stageError); ok {
			o.errStage = se.stage
		}
	}
}

// session plays the session and says whether it ends with QUIT.
func (pl *player) session(id *Identity, seq uint64, l *laps) (quit bool, err error) {
	if err := pl.open(); err != nil {
		return false, &stageError{StageConnect, err}
	}
	env := macroEnv{id: id, port: strconv.Itoa(1024 + int(seq%64000))}
	family, port := byte('4'), uint16(1024+seq%64000)
	if id.IPv6 {
		family = '6'
	}
	pl.ev.begin(cmdConnect)
	pl.ev.str(id.connectHost())
	pl.ev.b = append(pl.ev.b, family)
	pl.ev.u16(port)
	pl.ev.str(id.Addr)
	r, err := pl.event(cmdConnect, NoConnect, NRConn, stageConnect, &env, pl.ev.end())
	l.lap(StageConnect)
	if err != nil {
		return false, &stageError{StageConnect, err}
	}
	if r.final() && r.code != replyDiscard { // DISCARD is not allowed here: Postfix goes on
		l.o.verdict = verdictOf(r, StageConnect)
		return false, nil
	}
	pl.ev.begin(cmdHelo)
	pl.ev.str(id.Helo)
	r, err = pl.event(cmdHelo, NoHelo, NRHelo, stageHelo, &env, pl.ev.end())
	l.lap(StageHelo)
	if err != nil {
		return false, &stageError{StageHelo, err}
	}
	if r.final() && r.code != replyDiscard {
		l.o.verdict = verdictOf(r, StageHelo)
		return false, nil
	}
	v, err := pl.transaction(&env, seq, l)
	l.o.verdict = v
	if err != nil || pl.shutdown { // SMFIR_SHUTDOWN: Postfix closes the milter socket
		return false, err
	}
	return true, pl.abort()
}

// transaction is MAIL, the recipients and, if one is accepted, the message.
func (pl *player) transaction(env *macroEnv, seq uint64, l *laps) (Verdict, error) {
	env.queueID, env.mailAddr = queueID(seq), sender
	pl.ev.begin(cmdMail)
	pl.ev.str("<" + sender + ">")
	pl.ev.str("SIZE=" + strconv.Itoa(len(pl.msg.body)+4096))
	pl.ev.str("BODY=8BITMIME")
	r, err := pl.event(cmdMail, NoMail, NRMail, stageMail, env, pl.ev.end())
	l.lap(StageMail)
	if err != nil {
		return Verdict{}, &stageError{StageMail, err}
	}
	if r.final() {
		return verdictOf(r, StageMail), nil
	}
	var refused uint8
	var last reply
	for _, rcpt := range recipients {
		env.rcptAddr = rcpt
		pl.ev.begin(cmdRcpt)
		pl.ev.str("<" + rcpt + ">")
		r, err := pl.event(cmdRcpt, NoRcpt, NRRcpt, stageRcpt, env, pl.ev.end())
		if err != nil {
			return Verdict{}, &stageError{StageRcpt, err}
		}
		if r.refuses() {
			refused, last = refused+1, r
			continue
		}
		if r.final() { // accept or discard: no more events for this message
			l.lap(StageRcpt)
			v := verdictOf(r, StageRcpt)
			v.RcptRefused = refused
			return v, nil
		}
	}
	env.rcptAddr = ""
	l.lap(StageRcpt)
	if int(refused) == len(recipients) { // no recipient: no DATA
		return verdictOf(last, StageRcpt), nil
	}
	v, err := pl.content(env, l)
	v.RcptRefused = refused
	return v, err
}

// content is DATA, the header, the body and end of message.
func (pl *player) content(env *macroEnv, l *laps) (Verdict, error) {
	pl.ev.begin(cmdData)
	r, err := pl.event(cmdData, NoData, NRData, stageData, env, pl.ev.end())
	if err == nil && !r.final() {
		r, err = pl.headers(env)
	}
	l.lap(StageHeaders)
	if err != nil {
		return Verdict{}, &stageError{StageHeaders, err}
	}
	if r.final() {
		return verdictOf(r, StageHeaders), nil
	}
	if pl.neg.sends(NoBody) {
		pl.ev.begin(cmdBody)
		pl.ev.bytes(pl.msg.body)
		r, err = pl.event(cmdBody, NoBody, NRBody, stageEOM, env, pl.ev.end())
	}
	if err == nil && !r.final() {
		pl.ev.begin(cmdEOB)
		r, err = pl.event(cmdEOB, 0, 0, stageEOM, env, pl.ev.end())
	}
	l.lap(StageEOM)
	if err != nil {
		return Verdict{}, &stageError{StageEOM, err}
	}
	v := verdictOf(r, StageEOM)
	v.Quarantined = pl.quar
	return v, nil
}

// headers sends the header fields and end of header.
func (pl *player) headers(env *macroEnv) (reply, error) {
	if pl.neg.sends(NoHeaders) {
		fields := pl.msg.headers
		if pl.neg.Protocol&HdrLeadSpc != 0 {
			fields = pl.msg.lead
		}
		for _, h := range fields {
			pl.ev.begin(cmdHeader)
			pl.ev.str(h.Name)
			pl.ev.str(h.Value)
			r, err := pl.event(cmdHeader, NoHeaders, NRHeader, stageEOH, env, pl.ev.end())
			if err != nil || r.final() {
				return r, err
			}
		}
	}
	if !pl.neg.sends(NoEOH) {
		return continueReply, nil
	}
	pl.ev.begin(cmdEOH)
	return pl.event(cmdEOH, NoEOH, NREOH, stageEOH, env, pl.ev.end())
}
