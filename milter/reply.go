package milter

import (
	"fmt"
	"strings"
	"unicode/utf8"

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
	resp, err := gomilter.RejectWithCodeAndReason(uint16(code), replyText(code, r))
	if err != nil {
		// Only a code outside 400-599, which config does not accept.
		return gomilter.RespTempFail
	}
	return resp
}

// maxReplyText bounds the text after the code, counting each % twice. go-milter
// doubles each % and then cuts lines longer than 950 bytes into a multi-line
// reply, and its cut can fall between the two %s of a pair: Postfix then
// drops both, Sendmail throws the whole reply away for its default. A text of
// at most 900 doubled bytes stays one line.
const maxReplyText = 900

// replyText is the reply after its code: "5.7.1 text". Postfix wants
// "[45]dd" and then a space: a bare code is a malformed reply that drops the
// milter, so the text is never empty, and a text that starts with a digit
// (which Postfix would take for an enhanced status code, and one of another
// class for a malformed reply) gets the class's generic enhanced code before
// it. The text is cut so that, with each % doubled, it stays one line.
func replyText(code int, r policy.Reply) string {
	enhanced := r.Enhanced
	if enhanced == "" && r.Text != "" && '0' <= r.Text[0] && r.Text[0] <= '9' {
		enhanced = fmt.Sprintf("%d.0.0", code/100)
	}
	text := r.Text
	if enhanced != "" && text != "" {
		text = " " + text
	}
	// Where the text ends once doubled: cut at the start of a UTF-8 sequence.
	n, end := len(enhanced), len(text)
	for i := 0; i < len(text); i++ {
		if n++; text[i] == '%' {
			n++
		}
		if n > maxReplyText {
			for end = i; end > 0 && !utf8.RuneStart(text[end]); end-- {
			}
			break
		}
	}
	var b strings.Builder
	b.WriteString(enhanced)
	for _, c := range []byte(text[:end]) {
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "refused"
	}
	return b.String()
}
