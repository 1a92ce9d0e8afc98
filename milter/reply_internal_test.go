package milter

import (
	"strings"
	"testing"

	"github.com/heloguard/heloguard/policy"
)

func TestReplyText(t *testing.T) {
	for _, tc := range []struct {
		code int
		r    policy.Reply
		want string
	}{
		{550, policy.Reply{Enhanced: "5.7.1", Text: "go away"}, "5.7.1 go away"},
		{550, policy.Reply{Text: "go away"}, "go away"},
		{550, policy.Reply{}, "refused"},
		{550, policy.Reply{Enhanced: "5.7.1"}, "5.7.1"},
		// A text starting with a digit would be read as an enhanced code.
		{550, policy.Reply{Text: "192.0.2.1 blocked"}, "5.0.0 192.0.2.1 blocked"},
		{451, policy.Reply{Text: "4 tries left"}, "4.0.0 4 tries left"},
		{550, policy.Reply{Enhanced: "5.7.1", Text: "a\r\nb\x00c"}, "5.7.1 a  b c"},
	} {
		if got := replyText(tc.code, tc.r); got != tc.want {
			t.Errorf("replyText(%d, %+v) = %q, want %q", tc.code, tc.r, got, tc.want)
		}
	}
	// Long texts stay one line once go-milter doubles the %s, and are cut on a
	// UTF-8 boundary.
	for _, text := range []string{strings.Repeat("%", 2000), strings.Repeat("é", 2000), strings.Repeat("a%", 1000)} {
		got := replyText(550, policy.Reply{Enhanced: "5.7.1", Text: text})
		if n := len(got) + strings.Count(got, "%"); n > maxReplyText {
			t.Errorf("%d bytes once doubled, more than %d", n, maxReplyText)
		}
		if !strings.HasPrefix(text, got[len("5.7.1 "):]) || !utf8Valid(got) {
			t.Errorf("cut badly: %q…", got[:40])
		}
		resp := replyResponse(policy.Reply{Code: 550, Enhanced: "5.7.1", Text: text})
		if data := resp.Response().Data; strings.Contains(string(data), "\r\n") {
			t.Errorf("a multi-line reply: %q…", data[:60])
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
