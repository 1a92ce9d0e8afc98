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
