package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// reply is a milter's answer to an event, as Postfix classifies it.
type reply struct {
	code byte   // replyContinue, replyAccept, replyDiscard, replyReject, replyTempfail, replyCode, replyShutdown
	smtp uint16 // the SMTP code of a refusal: the 'y' reply's, 550 for 'r', 451 for 't', 421 for shutdown
}

var continueReply = reply{code: replyContinue}

// refuses reports whether the reply refuses what the event stands for.
func (r reply) refuses() bool {
	switch r.code {
	case replyReject, replyTempfail, replyCode, replyShutdown:
		return true
	}
	return false
}

// final reports whether the milter wants no more events of the message (or,
// at connect and HELO, of the connection).
func (r reply) final() bool { return r.code != replyContinue }

// decision turns a final reply into a reply, with the SMTP code Postfix uses.
func decision(code byte, data []byte) (reply, error) {
	switch code {
	case replyAccept, replyDiscard, replyContinue:
		return reply{code: code}, noData(code, data)
	case replyReject:
		return reply{code: code, smtp: 550}, noData(code, data)
	case replyTempfail:
		return reply{code: code, smtp: 451}, noData(code, data)
	case replyShutdown:
		return reply{code: code, smtp: 421}, noData(code, data)
	}
	return parseReplyCode(data)
}

func noData(code byte, data []byte) error {
	if len(data) != 0 {
		return fmt.Errorf("reply %q was followed by %d data bytes", code, len(data))
	}
	return nil
}

// parseReplyCode checks an SMFIR_REPLYCODE text as Postfix does (milter8.c):
// "[45]dd" then a space or '-', and an enhanced code's class the same as the
// reply's; anything else is a malformed reply, which makes Postfix drop the
// milter.
func parseReplyCode(data []byte) (reply, error) {
	if i := indexNUL(data); i >= 0 {
		data = data[:i]
	}
	t := data
	if len(t) < 4 || (t[0] != '4' && t[0] != '5') || !isDigit(t[1]) || !isDigit(t[2]) ||
		(t[3] != ' ' && t[3] != '-') || (len(t) > 4 && isDigit(t[4]) && t[4] != t[0]) {
		return reply{}, fmt.Errorf("malformed reply %q", clipText(data))
	}
	n, _ := strconv.Atoi(string(t[:3]))
	return reply{code: replyCode, smtp: uint16(n)}, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func clipText(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// Modification kinds counted at end of message.
const (
	ModAddHeader = iota
	ModChangeHeader
	ModInsertHeader
	ModAddRcpt
	ModDelRcpt
	ModChangeBody
	ModChangeFrom
	ModQuarantine
	numMods
)

// ModNames name the modification kinds in reports.
var ModNames = [numMods]string{"add header", "change header", "insert header", "add rcpt", "delete rcpt", "replace body", "change from", "quarantine"}

// modification checks a modification packet at end of message against what
// was negotiated and its layout (the one milter8_event reads), and returns its
// kind.
func modification(code byte, data []byte, acts Actions) (int, error) {
	var kind, strs int
	var need Actions
	idx := false
	switch code {
	case modAddHeader:
		kind, need, strs = ModAddHeader, AddHeaders, 2
	case modChgHeader:
		kind, need, strs, idx = ModChangeHeader, ChangeHeaders, 2, true
	case modInsHeader:
		kind, need, strs, idx = ModInsertHeader, AddHeaders, 2, true
	case modAddRcpt:
		kind, need, strs = ModAddRcpt, AddRcpt, 1
	case modAddRcptPar:
		kind, need, strs = ModAddRcpt, AddRcptPar, 2
	case modDelRcpt:
		kind, need, strs = ModDelRcpt, DelRcpt, 1
	case modChgFrom:
		kind, need, strs = ModChangeFrom, ChangeFrom, -1
	case modReplBody:
		kind, need = ModChangeBody, ChangeBody
	default:
		return 0, fmt.Errorf("unexpected filter response %q after end of message", code)
	}
	if acts&need == 0 {
		return 0, fmt.Errorf("modification %q (%s) without %s negotiated", code, ModNames[kind], need)
	}
	if idx {
		if len(data) < 4 {
			return 0, fmt.Errorf("modification %q: no index", code)
		}
		if code == modChgHeader && int32(binary.BigEndian.Uint32(data)) < 0 {
			return 0, fmt.Errorf("modification %q: bad change header index", code)
		}
		data = data[4:]
	}
	if err := checkStrings(data, strs); err != nil {
		return 0, fmt.Errorf("modification %q: %v", code, err)
	}
	return kind, nil
}

// checkStrings checks that data is exactly n NUL-terminated strings (n < 0:
// one or two, as CHGFROM has), without copying them.
func checkStrings(data []byte, n int) error {
	if n == 0 {
		return nil // a body replacement: any bytes
	}
	count := 0
	for len(data) > 0 {
		i := indexNUL(data)
		if i < 0 {
			return errors.New("missing NUL terminator")
		}
		count++
		data = data[i+1:]
	}
	if count == n || n < 0 && (count == 1 || count == 2) {
		return nil
	}
	return fmt.Errorf("%d strings, want %d", count, max(n, 1))
}
