package milter

import (
	"strings"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/policy"
)

// replyResponse turns a policy reply into a milter 'y' (SMFIR_REPLYCODE)
// response, which the MTA sends the client as it is. go-milter doubles every %
// (Postfix and Sendmail treat the text as a format string) and writes lines
// over 950 bytes as a multi-line reply; policy has already removed CR, LF and
// control bytes from the client's part of the text, and any that remain are
// made spaces here.
func replyResponse(r policy.Reply) *gomilter.Response {
	code := r.Code
	if code == 0 {
		code = 550
	}
	resp, err := gomilter.RejectWithCodeAndReason(uint16(code), replyText(r))
	if err != nil {
		// Only a code outside 400-599, which config does not accept.
		return gomilter.RespTempFail
	}
	return resp
}

// replyText is the reply after its code: "5.7.1 text". Postfix wants
// "[45]dd" and then a space: a bare code is a malformed reply that drops the
// milter, so the text is never empty.
func replyText(r policy.Reply) string {
	var b strings.Builder
	if r.Enhanced != "" {
		b.WriteString(r.Enhanced)
	}
	if r.Text != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		for _, c := range []byte(r.Text) {
			if c < 0x20 || c == 0x7f {
				c = ' '
			}
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		b.WriteString("refused")
	}
	return b.String()
}
