package policy

import (
	"strings"
	"testing"
)

func TestClientText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"mail.example.com", 100, "mail.example.com"},
		{"", 100, ""},
		{"a\r\nb", 100, "a??b"},
		{"tab\there", 100, "tab?here"},
		{"nul\x00del\x7f", 100, "nul?del?"},
		{"\x1b[31mred", 100, "?[31mred"},
		{"é", 100, "??"},                // UTF-8: one '?' per byte
		{"100% sure", 100, "100% sure"}, // % is the wire encoder's business
		{" ~", 100, " ~"},               // both ends of printable ASCII
		{"abcdefghij", 10, "abcdefghij"},
		{"abcdefghijk", 10, "abcdefg..."},
		{"ab\ncdefghijk", 10, "ab?cdef..."},
		{"abcdefghijk", 4, "a..."},
		{"abcdefghijk", 3, "..."},
		{"abcdefghijk", 2, ".."},
		{"abcdefghijk", 1, "."},
		{"abcdefghijk", 0, ""},
		{"abc", -1, ""},
		{"abc", 3, "abc"},
		{"abc\r", 3, "..."},
		{"abcdefg\xff\xfe", 8, "abcde..."},
	}
	for _, tc := range tests {
		if got := ClientText(tc.in, tc.max); got != tc.want {
			t.Errorf("ClientText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestClientTextLong(t *testing.T) {
	in := strings.Repeat("x\n", 1000)
	got := ClientText(in, 100)
	if len(got) != 100 || !strings.HasSuffix(got, "...") || strings.ContainsAny(got, "\r\n") {
		t.Fatalf("ClientText(long) = %q", got)
	}
}
