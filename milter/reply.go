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
	var b strings.Builder
	b.WriteString(strconv.Itoa(code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	if r.Text != "" {
		b.WriteByte(' ')
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
