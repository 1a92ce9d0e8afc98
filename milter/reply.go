package milter

import (
	"strconv"
	"strings"

	gomilter "github.com/emersion/go-milter"
	"github.com/heloguard/heloguard/policy"
)

// replyResponse turns a policy reply into a milter 'y' (SMFIR_REPLYCODE)
// response. A 'y' response keeps go-milter's backend, so the connection's state
// survives a refusal. Postfix and Sendmail treat the text as a format string, so
// every % is doubled; policy has already removed CR, LF and control bytes from the
// client's part of the text, and we drop any that remain.
func replyResponse(r policy.Reply) gomilter.Response {
	return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), wireReply(r))
}

func wireReply(r policy.Reply) string {
	code := r.Code
	if code == 0 {
		code = 550
	}
	// Postfix wants "[45]dd" and then a space: a bare code is a malformed
	// reply that drops the milter.
	var b strings.Builder
	b.WriteString(strconv.Itoa(code))
	b.WriteByte(' ')
	if r.Enhanced != "" {
		b.WriteString(r.Enhanced)
		b.WriteByte(' ')
	}
	if r.Text != "" {
		for _, c := range []byte(r.Text) {
			switch {
			case c == '%':
				b.WriteString("%%")
			case c < 0x20 || c == 0x7f:
				b.WriteByte(' ')
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}
