package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// outcome is what one session recorded.
type outcome struct {
	identity int
	stages   [NumStages]time.Duration // 0: not reached
	reached  [NumStages]bool
	total    time.Duration
	verdict  Verdict
	mods     [numMods]uint16
	err      error
	errStage int
}

// stageError is a session's failure and the stage it happened in.
type stageError struct {
	stage int
	err   error
}

func (e *stageError) Error() string { return StageNames[e.stage] + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// player plays Postfix toward a milter, one session at a time, with buffers
// kept from one session to the next. Packets whose reply the milter said it
// will not send stay in the write buffer and go out with the next packet that
// needs an answer, as Postfix's VSTREAM does.
type player struct {
	target  Target
	offer   Offer
	timeout time.Duration
	msg     *message

	conn    net.Conn
	r       reader
	w       *bufio.Writer
	mac, ev packet // the macro packet and the event packet being built
	neg     Negotiated
	skip    byte // Postfix's skip_event_type: events not sent after SMFIR_SKIP
	quar    bool // a quarantine request was seen
	// shutdown: the milter sent SMFIR_SHUTDOWN, after which Postfix closes
	// the socket without another word.
	shutdown bool
	mods     [numMods]uint16
}

// message is the content every session sends: built once per run.
type message struct {
	headers []Header
	lead    []Header // the same with the leading space kept (HDR_LEADSPC)
	body    []byte
}

func newMessage(headers int) *message {
	h := Headers(headers)
	lead := make([]Header, len(h))
	for i, f := range h {
		lead[i] = Header{f.Name, " " + f.Value}
	}
	return &message{headers: h, lead: lead, body: []byte(body)}
}

func newPlayer(t Target, o Offer, timeout time.Duration, m *message) *player {
	return &player{target: t, offer: o, timeout: timeout, msg: m, w: bufio.NewWriterSize(nil, writeBufferSize), r: reader{r: bufio.NewReaderSize(nil, 4096)}}
}

// open dials the milter and negotiates.
func (pl *player) open() error {
	d := net.Dialer{Timeout: pl.timeout}
	c, err := d.Dial(pl.target.Network, pl.target.Address)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(pl.timeout))
	pl.conn = c
	pl.r.r.Reset(c)
	pl.w.Reset(c)
	pl.skip, pl.quar, pl.shutdown, pl.mods = 0, false, false, [numMods]uint16{}
	if _, err := pl.w.Write(encodeOptNeg(&pl.ev, pl.offer)); err != nil {
		return err
	}
	if err := pl.w.Flush(); err != nil {
		return err
	}
	code, data, err := pl.r.next()
	if err != nil {
		return fmt.Errorf("reading the OPTNEG reply: %w", err)
	}
	if code != cmdOptNeg {
		return fmt.Errorf("unexpected reply %q in initial handshake", code)
	}
	pl.neg, err = parseOptNeg(pl.offer, data)
	return err
}

// close ends the session the way Postfix does: nothing more after a decision
// at connect or HELO (the socket is just closed), else QUIT.
func (pl *player) close(quit bool) {
	if quit {
		pl.ev.begin(cmdQuit)
		_, _ = pl.w.Write(pl.ev.end())
		_ = pl.w.Flush()
	}
	_ = pl.conn.Close()
	pl.conn = nil
}

// abort sends ABORT, which ends every transaction (milter8_abort); no reply.
func (pl *player) abort() error {
	pl.ev.begin(cmdAbort)
	_, err := pl.w.Write(pl.ev.end())
	return err
}

// event sends one event as milter8_event does: not at all when the protocol
// version has no such event or an SMFIR_SKIP said so; else the macros of its
// stage (even when the milter asked not to get the event), then the event
// unless the milter asked not to get it, then the reply unless the milter said
// it sends none.
func (pl *player) event(cmd byte, noEvent, noReply Protocol, stage int, env *macroEnv, pkt []byte) (reply, error) {
	if pl.neg.nonProtocol&noEvent != 0 {
		return continueReply, nil
	}
	if pl.skip != 0 {
		if pl.skip == cmd {
			return continueReply, nil
		}
		pl.skip = 0
	}
	if stage >= 0 {
		names := pl.neg.Macros[stage]
		if names == nil {
			names = postfixMacros[stage]
		}
		if _, err := pl.w.Write(appendMacros(&pl.mac, cmd, names, env)); err != nil {
			return reply{}, err
		}
	}
	if pl.neg.Protocol&noEvent != 0 {
		return continueReply, nil
	}
	if _, err := pl.w.Write(pkt); err != nil {
		return reply{}, err
	}
	if pl.neg.Protocol&noReply != 0 {
		return continueReply, nil
	}
	if err := pl.w.Flush(); err != nil {
		return reply{}, err
	}
	return pl.readReply(cmd)
}

// readReply reads the milter's reply to an event: progress packets are
// skipped, a quarantine request is noted, a skip is honoured where it may be
// sent, modifications are taken only at end of message.
func (pl *player) readReply(event byte) (reply, error) {
	for {
		code, data, err := pl.r.next()
		if err != nil {
			return reply{}, fmt.Errorf("can't read %s reply packet: %w", eventName(event), err)
		}
		switch code {
		case replyProgress:
			if err := noData(code, data); err != nil {
				return reply{}, err
			}
			continue
		case replyContinue, replyAccept, replyDiscard, replyReject, replyTempfail, replyCode, replyShutdown:
			pl.shutdown = code == replyShutdown
			return decision(code, data)
		case modQuarantine:
			if pl.neg.Actions&Quarantine == 0 {
				return reply{}, errors.New("quarantine request without QUARANTINE negotiated")
			}
			pl.quar = true
			pl.mods[ModQuarantine]++
			continue
		case replySkip:
			if pl.neg.Protocol&Skip == 0 || (event != cmdRcpt && event != cmdHeader && event != cmdBody) {
				return reply{}, fmt.Errorf("unexpected filter response SKIP after event %s", eventName(event))
			}
			pl.skip = event
			return continueReply, noData(code, data)
		}
		if event != cmdEOB {
			return reply{}, fmt.Errorf("unexpected filter response %q after event %s", code, eventName(event))
		}
		kind, err := modification(code, data, pl.neg.Actions)
		if err != nil {
			return reply{}, err
		}
		pl.mods[kind]++
	}
}

func eventName(cmd byte) string {
	switch cmd {
	case cmdConnect:
		return "SMFIC_CONNECT"
	case cmdHelo:
		return "SMFIC_HELO"
	case cmdMail:
		return "SMFIC_MAIL"
	case cmdRcpt:
		return "SMFIC_RCPT"
	case cmdData:
		return "SMFIC_DATA"
	case cmdHeader:
		return "SMFIC_HEADER"
	case cmdEOH:
		return "SMFIC_EOH"
	case cmdBody:
		return "SMFIC_BODY"
	case cmdEOB:
		return "SMFIC_BODYEOB"
	}
	return strconv.QuoteRune(rune(cmd))
}
