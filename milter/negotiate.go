package milter

import (
	"context"
	"fmt"
	"log/slog"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/config"
)

// What heloguard asks of the MTA at option negotiation (SMFIC_OPTNEG), milter
// protocol version 6 (Postfix 2.6+, Sendmail 8.14+; an MTA that speaks only
// version 2 gets version 2 and the flags it offers).
//
// Events: connect, HELO, MAIL, RCPT, the header fields and end of message. No
// DATA, unknown-command, end-of-header or body events (SMFIP_NODATA, NOUNKNOWN,
// NOEOH, NOBODY): nothing is decided on them. Header fields are needed only to
// find forged Authentication-Results, which are removed at end of message, so
// they get no reply (SMFIP_NR_HDR): the MTA sends them without waiting for one.
// Nor do the stages before reject_at (SMFIP_NR_CONN, NR_HELO, NR_MAIL), where
// the answer is always continue, and in monitor mode no stage but end of
// message, where the headers are changed.
const (
	wantActions  = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine | gomilter.OptSetMacros
	wantProtocol = gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptNoEOH | gomilter.OptNoBody | gomilter.OptNoHeaderReply
)

// noReply maps each stage to the flag that says heloguard does not reply there.
var noReply = [...]struct {
	stage string
	flag  gomilter.OptProtocol
}{
	{config.StageConnect, gomilter.OptNoConnReply},
	{config.StageHelo, gomilter.OptNoHeloReply},
	{config.StageMail, gomilter.OptNoMailReply},
	{config.StageRcpt, gomilter.OptNoRcptReply},
}

// Protocol returns the protocol flags heloguard asks for under cfg.
func Protocol(cfg *config.Config) gomilter.OptProtocol {
	p := wantProtocol
	for _, n := range noReply {
		if cfg.Mode == config.ModeMonitor || stageRank(n.stage) < stageRank(cfg.RejectAt) {
			p |= n.flag
		}
	}
	return p
}

// negotiation is the go-milter server options for a session under cfg: the
// actions, the protocol flags and the macros asked for at each stage.
func negotiation(cfg *config.Config) []gomilter.Option {
	return []gomilter.Option{
		gomilter.WithActions(wantActions),
		gomilter.WithProtocols(Protocol(cfg)),
		gomilter.WithWriteTimeout(0), // the conn sets deadlines
		gomilter.WithMacroRequest(gomilter.StageConnect, []string{"j", "{client_addr}", "{client_name}", "{client_port}", "{daemon_name}"}),
		gomilter.WithMacroRequest(gomilter.StageMail, []string{"i", "{auth_authen}", "{auth_type}", "{mail_addr}"}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []string{"i", "{rcpt_addr}"}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []string{"i"}),
	}
}

// negotiated settles the negotiation with what the MTA offers, and keeps the
// protocol flags for the conn, which answers for skipped packets (skipPacket).
//
// go-milter's own negotiation ends the session when the MTA does not offer
// every flag and action asked for. Here the session goes on with what is
// offered: a version 2 MTA (no reply-less events) is answered at every event,
// and one that lets us change no header gets none changed (endOfMessage).
func (c *conn) negotiated(mtaVersion, milterVersion uint32, mtaActions, milterActions gomilter.OptAction, mtaProtocol, milterProtocol gomilter.OptProtocol, _ gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
	if mtaVersion < 2 {
		return 0, 0, 0, 0, fmt.Errorf("the MTA speaks milter protocol version %d; heloguard needs 2 or later", mtaVersion)
	}
	version, actions := min(mtaVersion, milterVersion), milterActions&mtaActions
	c.protocol = milterProtocol & mtaProtocol
	if c.srv.ops.Enabled(context.Background(), slog.LevelDebug) {
		c.srv.ops.Debug("milter protocol negotiated", "version", version, "mta_version", mtaVersion,
			"actions", actions.String(), "protocol", c.protocol.String())
	}
	return version, actions, c.protocol, gomilter.DataSize64K, nil
}
