package milter

import (
	"strings"
	"testing"

	"github.com/heloguard/heloguard/policy"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…[cut 1 bytes]"},
		{strings.Repeat("x", 1000), 255, strings.Repeat("x", 255) + "…[cut 745 bytes]"},
	} {
		if got := clip(tc.s, tc.max); got != tc.want {
			t.Errorf("clip(%d bytes, %d) = %q, want %q", len(tc.s), tc.max, got, tc.want)
		}
		if got := keep(tc.s, tc.max); got != tc.want {
			t.Errorf("keep(%d bytes, %d) = %q, want %q", len(tc.s), tc.max, got, tc.want)
		}
	}
}

// A clipped HELO is invalid whatever it started with: a name, a literal, or
// white space around a name.
func TestClippedHeloInvalid(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("a.", 200) + "example",
		"[192.0.2.1]" + strings.Repeat(" ", 300),
		"[IPv6:2001:db8::1" + strings.Repeat("0", 300) + "]",
		strings.Repeat(" ", 300) + "mail.example",
	} {
		if h := policy.ParseHelo(clip(s, maxName)); h.Form != policy.HeloInvalid {
			t.Errorf("ParseHelo(clip(%.20q…)) form %s", s, h.Form)
		}
	}
}
