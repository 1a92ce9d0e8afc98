package dnscache

import "testing"

func TestJoinTXT(t *testing.T) {
	tests := []struct {
		name  string
		parts []string // as miekg/dns presents them
		want  string
	}{
		{"plain", []string{"v=spf1 -all"}, "v=spf1 -all"},
		{"quotes", []string{`say \"hi\"`}, `say "hi"`},
		{"backslash", []string{`a\\b`}, `a\b`},
		{"non-ASCII", []string{`caf\195\169`}, "caf\u00e9"},
		{"control and DEL", []string{`a\009b\127c\000d`}, "a\tb\x7fc\x00d"},
		{"escaped printable", []string{`\065\.`}, "A."},
		{"not a byte value", []string{`\300`}, "300"},
		{"short digits", []string{`\12`}, "12"},
		{"trailing backslash", []string{`ab\`}, `ab\`},
		{"multi-string joined", []string{"v=spf1 ip4:192.0.2.0/24 ", `include:\"x\" `, "-all"}, `v=spf1 ip4:192.0.2.0/24 include:"x" -all`},
		{"empty strings", []string{"", "a", ""}, "a"},
	}
	for _, tt := range tests {
		if got := joinTXT(tt.parts); got != tt.want {
			t.Errorf("%s: joinTXT(%q) = %q, want %q", tt.name, tt.parts, got, tt.want)
		}
	}
}
