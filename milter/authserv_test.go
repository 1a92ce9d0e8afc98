package milter

import (
	"strings"
	"testing"
)

// The authserv-id of each value, read as RFC 8601 (id, ok) and loosely, and
// whether the value claims mx.receiver.example.
func TestParseAuthservID(t *testing.T) {
	const ours = "mx.receiver.example"
	for _, tc := range []struct {
		value  string
		id     string
		ok     bool
		loose  string
		claims bool
	}{
		{"mx.receiver.example; spf=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example 1; spf=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example\t1; spf=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example(comment); dkim=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example (c) 1 (c); dkim=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{`"mx.receiver.example"; dkim=pass`, "mx.receiver.example", true, "mx.receiver.example", true},
		{`"mx.receiver.example" 1; dkim=pass`, "mx.receiver.example", true, "mx.receiver.example", true},
		{`"mx.receiver\.example"; dkim=pass`, "mx.receiver.example", true, "mx.receiver.example", true},
		{`"mx.receiver.\"x"; dkim=pass`, `mx.receiver."x`, true, "mx.receiver.", false},
		{"\"mx.receiver.\r\n example\"; dkim=pass", "mx.receiver. example", true, "mx.receiver.", false},
		{"MX.Receiver.EXAMPLE; dkim=pass", "MX.Receiver.EXAMPLE", true, "MX.Receiver.EXAMPLE", true},
		{"mx.receiver.example.; dkim=pass", "mx.receiver.example.", true, "mx.receiver.example.", true},
		{"mx.receiver.example..; dkim=pass", "mx.receiver.example..", true, "mx.receiver.example..", true},
		{`" mx.receiver.example. "; dkim=pass`, " mx.receiver.example. ", true, "mx.receiver.example.", true},
		{`(a (nested \) (x) comment) \() mx.receiver.example; dkim=pass`, "mx.receiver.example", true, "mx.receiver.example", true},
		{"\r\n mx.receiver.example\r\n (folded\r\n comment)\r\n 1;\r\n dkim=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example\n\t; spf=pass", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example;none", "mx.receiver.example", true, "mx.receiver.example", true},
		{"mx.receiver.example 12 ; none", "mx.receiver.example", true, "mx.receiver.example", true},

		// Not RFC 8601: what follows the id is wrong, the id still counts.
		{"mx.receiver.example", "mx.receiver.example", false, "mx.receiver.example", true},
		{"mx.receiver.example 1", "mx.receiver.example", false, "mx.receiver.example", true},
		{"mx.receiver.example x; spf=pass", "mx.receiver.example", false, "mx.receiver.example", true},
		{`"mx.receiver.example"1; spf=pass`, "mx.receiver.example", false, "mx.receiver.example", true},
		{"mx.receiver.example/2; spf=pass", "mx.receiver.example", false, "mx.receiver.example", true},
		{"mx.receiver.example@evil.example; spf=pass", "mx.receiver.example", false, "mx.receiver.example", true},
		{"mx.receiver.example (open; dkim=pass", "mx.receiver.example", false, "mx.receiver.example", true},
		// Not RFC 8601 at all: only the loose reading finds an id.
		{`"mx.receiver.example; dkim=pass`, "mx.receiver.example; dkim=pass", false, "mx.receiver.example", true},
		{`" mx.receiver.example; dkim=pass`, " mx.receiver.example; dkim=pass", false, "mx.receiver.example", true},
		{"mx.receiver(c).example; dkim=pass", "mx.receiver", false, "mx.receiver.example", true},
		{`mx.receiver\.example; dkim=pass`, "mx.receiver", false, "mx.receiver.example", true},
		{"\u00a0mx.receiver.example; dkim=pass", "", false, "mx.receiver.example", true},
		{"\vmx.receiver.example\u00a0; dkim=pass", "", false, "mx.receiver.example", true},
		{"mx.receiver.example\u00a0; dkim=pass", "mx.receiver.example", false, "mx.receiver.example", true},
		{"(unterminated mx.receiver.example; dkim=pass", "", false, "", false},
		{"", "", false, "", false},
		{"  ", "", false, "", false},
		{"; spf=pass", "", false, "", false},
		{`"`, "", false, "", false},
		{`"\`, "", false, "", false},

		// Someone else's.
		{"other.example; spf=pass", "other.example", true, "other.example", false},
		{"mx.receiver.example.evil.com; dkim=pass", "mx.receiver.example.evil.com", true, "mx.receiver.example.evil.com", false},
		{"xmx.receiver.example; dkim=pass", "xmx.receiver.example", true, "xmx.receiver.example", false},
		{"mx.receiver.examplex; dkim=pass", "mx.receiver.examplex", true, "mx.receiver.examplex", false},
		{"mx-receiver.example; dkim=pass", "mx-receiver.example", true, "mx-receiver.example", false},
		{".mx.receiver.example; dkim=pass", ".mx.receiver.example", true, ".mx.receiver.example", false},
		{"(mx.receiver.example) other.example; dkim=pass", "other.example", true, "other.example", false},
		{`"mx.receiver.example.evil.com"; dkim=pass`, "mx.receiver.example.evil.com", true, "mx.receiver.example.evil.com", false},
		{`other.example; spf=pass reason="mx.receiver.example"`, "other.example", true, "other.example", false},
		{"other.example 1 mx.receiver.example; spf=pass", "other.example", false, "other.example", false},
	} {
		id, ok := parseAuthservID(tc.value)
		loose := looseAuthservID(tc.value)
		claims := claimsAuthservID(tc.value, ours)
		if id != tc.id || ok != tc.ok || loose != tc.loose || claims != tc.claims {
			t.Errorf("%q: parseAuthservID = %q, %v; looseAuthservID = %q; claims %v; want %q, %v; %q; %v",
				tc.value, id, ok, loose, claims, tc.id, tc.ok, tc.loose, tc.claims)
		}
	}
}

// Our own authserv-id may be configured in any case, with a trailing dot; an
// empty one claims nothing.
func TestSameAuthservID(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"mx.receiver.example", "MX.RECEIVER.EXAMPLE.", true},
		{"mx.receiver.example.", "mx.receiver.example", true},
		{" mx.receiver.example . ", "mx.receiver.example", true},
		{"mx.kpn.example", "mx.\u212apn.example", true}, // KELVIN SIGN folds to k, as a Unicode-folding filter would
		{"mx.receiver.example", "mx.receiver.example.evil.com", false},
		{"mx.receiver.example", "mx.receiver", false},
		{"", "", false},
		{".", "", false},
		{"...", "..", false},
	} {
		if got := sameAuthservID(tc.a, tc.b); got != tc.same {
			t.Errorf("sameAuthservID(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
		if got := sameAuthservID(tc.b, tc.a); got != tc.same {
			t.Errorf("sameAuthservID(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.same)
		}
	}
	if claimsAuthservID("mx.receiver.example; spf=pass", "") || claimsAuthservID("; spf=pass", "") {
		t.Error("an empty authserv_id claims a header")
	}
	if !claimsAuthservID("mx.receiver.example; spf=pass", strings.ToUpper("mx.receiver.example.")) {
		t.Error("authserv_id MX.RECEIVER.EXAMPLE. does not claim mx.receiver.example")
	}
}

// cfwsFrom turns fuzz bytes into CFWS: spaces, tabs, folding (CRLF and bare
// LF, as MTAs hand it over), and comments, nested, holding any byte, with
// quoted-pairs of any byte.
func cfwsFrom(b []byte) string {
	var sb strings.Builder
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] % 8 {
		case 0:
			sb.WriteByte(' ')
		case 1:
			sb.WriteByte('\t')
		case 2:
			sb.WriteString("\r\n ")
		case 3:
			sb.WriteString("\n\t")
		case 4:
			sb.WriteByte('(')
			depth++
		case 5:
			if depth > 0 {
				sb.WriteByte(')')
				depth--
			}
		case 6, 7: // the next byte, quoted (6) or as it is (7), in a comment
			if depth == 0 || i+1 == len(b) {
				sb.WriteByte(' ')
				continue
			}
			i++
			c := b[i]
			if b[i-1]%8 == 6 {
				sb.WriteByte('\\')
			} else if c == '(' || c == ')' || c == '\\' {
				c = 'x'
			}
			sb.WriteByte(c)
		}
	}
	sb.WriteString(strings.Repeat(")", depth))
	return sb.String()
}

// quoteAuthservID writes s as a quoted-string, quoting with a backslash the
// bytes the mask picks and those that must be.
func quoteAuthservID(s string, mask uint64) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' || s[i] == '\r' || s[i] == '\n' || mask&(1<<(i%64)) != 0 {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('"')
	return sb.String()
}

// FuzzAuthservID: any value is read without a panic, and an id read is read
// again the same when quoted; ours, in any spelling RFC 8601 allows, followed
// by any CFWS and "; rest", is always ours; a different token, or a
// quoted-string of token characters, in the same place never is.
func FuzzAuthservID(f *testing.F) {
	f.Add("mx.receiver.example; spf=pass", []byte(" "), []byte("\x04\x07c\x05"), uint8(0), uint64(0), "spf=pass", "other.example")
	f.Add("(c) \"mx.receiver.example\" 1; none", []byte("\x04\x06)\x05\x02"), []byte{}, uint8(0xff), uint64(0xa5a5), "dkim=pass header.d=bank.example", "mx.receiver.example.evil.com")
	f.Add("mx.receiver(c).example", []byte{}, []byte("\x03\x00"), uint8(0x0a), uint64(1<<63|7), "", "xmx.receiver.example")
	f.Fuzz(func(t *testing.T, value string, lead, trail []byte, spelling uint8, mask uint64, rest, other string) {
		// Any value.
		id, _ := parseAuthservID(value)
		claimsAuthservID(value, "mx.receiver.example")
		if id != "" {
			if again, ok := parseAuthservID(quoteAuthservID(id, mask) + "; none"); again != id || !ok {
				t.Fatalf("%q: id %q, quoted reads as %q, %v", value, id, again, ok)
			}
		}

		// Our own authserv-id as the operator may configure it.
		ours := []string{"mx.receiver.example", "MX.Receiver.Example.", "mx.receiver.example."}[int(spelling>>5)%3]
		before, middle := cfwsFrom(lead), ""
		version := ""
		if spelling&4 != 0 {
			half := len(trail) / 2
			middle = cfwsFrom(trail[:half])
			trail = trail[half:]
			if middle == "" {
				middle += " " // CFWS must come between the id and the version
			}
			version = "1"
		}
		after := cfwsFrom(trail)
		build := func(idText string) string {
			return before + idText + middle + version + after + ";" + rest
		}

		// Ours, in any case, with or without a trailing dot, as a token or a
		// quoted-string with quoted-pairs.
		name := []byte("mx.receiver.example")
		for i := range name {
			if mask&(1<<(i%64)) != 0 && 'a' <= name[i] && name[i] <= 'z' {
				name[i] -= 'a' - 'A'
			}
		}
		if spelling&2 != 0 {
			name = append(name, '.')
		}
		idText := string(name)
		if spelling&1 != 0 {
			idText = quoteAuthservID(idText, mask>>7)
		}
		v := build(idText)
		if got, ok := parseAuthservID(v); !claimsAuthservID(v, ours) || !ok || !sameAuthservID(got, ours) {
			t.Fatalf("%q: ours (%q) not detected: parseAuthservID = %q, %v", v, ours, got, ok)
		}

		// Someone else's: the fuzz string's token characters.
		tok := strings.Map(func(r rune) rune {
			if r < 0x80 && isTokenChar(byte(r)) {
				return r
			}
			return -1
		}, other)
		if tok == "" || sameAuthservID(tok, ours) {
			return
		}
		for _, idText := range []string{tok, quoteAuthservID(tok, mask)} {
			if v := build(idText); claimsAuthservID(v, ours) {
				t.Fatalf("%q: %q is not %q, but detected", v, tok, ours)
			}
		}
	})
}
