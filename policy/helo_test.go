package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseHelo(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	long64 := strings.Repeat("a", 64)
	// 4 labels of 63 and one of 1: 4*63 + 1 + 4 dots = 257; trim to exactly 253.
	name253 := strings.Join([]string{long63, long63, long63, strings.Repeat("b", 61)}, ".")
	name254 := name253 + "c"

	tests := []struct {
		in      string
		form    HeloForm
		name    string
		literal string // "" = no literal
	}{
		// Domain names.
		{"mail.example.com", HeloFQDN, "mail.example.com", ""},
		{"MAIL.One-To-One.EXAMPLE", HeloFQDN, "mail.one-to-one.example", ""},
		{"NAM02-BL2-obe.outbound.protection.outlook.com", HeloFQDN, "nam02-bl2-obe.outbound.protection.outlook.com", ""},
		{"mail.example.com.", HeloFQDN, "mail.example.com", ""},       // one trailing dot tolerated
		{"mail.example.com..", HeloInvalid, "", ""},                   // but not two
		{"  mail.example.com \r\n", HeloFQDN, "mail.example.com", ""}, // white space trimmed
		{"\tmail.example.com", HeloFQDN, "mail.example.com", ""},
		{"1mail.example.com", HeloFQDN, "1mail.example.com", ""}, // RFC 1123: a label may start with a digit
		{"123.example.com", HeloFQDN, "123.example.com", ""},
		{"mail.example.c0m", HeloFQDN, "mail.example.c0m", ""}, // top label not all digits
		{"a.b", HeloFQDN, "a.b", ""},
		{"xn--bcher-kva.example", HeloFQDN, "xn--bcher-kva.example", ""},
		{"a--b.example", HeloFQDN, "a--b.example", ""},
		{long63 + ".example", HeloFQDN, long63 + ".example", ""},
		{long64 + ".example", HeloInvalid, "", ""},
		{name253, HeloFQDN, name253, ""},
		{name253 + ".", HeloFQDN, name253, ""}, // 253 without the trailing dot
		{name254, HeloInvalid, "", ""},
		{"-mail.example.com", HeloInvalid, "", ""},
		{"mail-.example.com", HeloInvalid, "", ""},
		{"mail.-example.com", HeloInvalid, "", ""},
		{"my_host.example.com", HeloInvalid, "", ""}, // underscores are not LDH
		{"mail..example.com", HeloInvalid, "", ""},
		{".mail.example.com", HeloInvalid, "", ""},
		{"mail example.com", HeloInvalid, "", ""},
		{"mail.example.com extra", HeloInvalid, "", ""},
		{"mail.exämple.com", HeloInvalid, "", ""},
		{"mail.example.com\x00", HeloInvalid, "", ""},
		{"*.example.com", HeloInvalid, "", ""},
		{"example.123", HeloInvalid, "", ""}, // top label all digits
		{"1.2.3.4", HeloInvalid, "", ""},     // an unbracketed IPv4 address
		{"1.2.3.4.", HeloInvalid, "", ""},
		{"2001:db8::1", HeloInvalid, "", ""}, // an unbracketed IPv6 address
		{"::1", HeloInvalid, "", ""},
		{".", HeloInvalid, "", ""},
		{"..", HeloInvalid, "", ""},
		{"-", HeloInvalid, "", ""},

		// Bare names.
		{"localhost", HeloBare, "localhost", ""},
		{"LOCALHOST.", HeloBare, "localhost", ""},
		{"mx1", HeloBare, "mx1", ""},
		{long63, HeloBare, long63, ""},
		{long64, HeloInvalid, "", ""},
		{"12345", HeloInvalid, "", ""}, // all-digit single label: a number, not a name
		{"my_host", HeloInvalid, "", ""},

		// Address literals.
		{"[192.0.2.25]", HeloAddressLiteral, "", "192.0.2.25"},
		{" [192.0.2.25] ", HeloAddressLiteral, "", "192.0.2.25"},
		{"[0.0.0.0]", HeloAddressLiteral, "", "0.0.0.0"},
		{"[255.255.255.255]", HeloAddressLiteral, "", "255.255.255.255"},
		{"[IPv6:2001:db8::1]", HeloAddressLiteral, "", "2001:db8::1"},
		{"[ipv6:2001:DB8::1]", HeloAddressLiteral, "", "2001:db8::1"}, // ABNF strings ignore case
		{"[IPv6:2001:db8:0:0:0:0:0:1]", HeloAddressLiteral, "", "2001:db8::1"},
		{"[IPv6:::ffff:192.0.2.1]", HeloAddressLiteral, "", "192.0.2.1"}, // mapped: unmapped
		{"[IPv6:::FFFF:c000:0201]", HeloAddressLiteral, "", "192.0.2.1"},
		{"[IPv6:2001:db8::192.0.2.1]", HeloAddressLiteral, "", "2001:db8::c000:201"},
		{"[IPv6:::1]", HeloAddressLiteral, "", "::1"},
		{"[IPv6:::]", HeloAddressLiteral, "", "::"},
		{"[IPv6:1.2.3.4]", HeloInvalid, "", ""}, // IPv4 under the IPv6 tag
		{"[IPv6:fe80::1%eth0]", HeloInvalid, "", ""},
		{"[IPv6:2001:db8::1::2]", HeloInvalid, "", ""},
		{"[IPv6:2001:db8::12345]", HeloInvalid, "", ""},
		{"[IPv6: 2001:db8::1]", HeloInvalid, "", ""},
		{"[IPv6:]", HeloInvalid, "", ""},
		{"[IPv6]", HeloInvalid, "", ""},
		{"[2001:db8::1]", HeloInvalid, "", ""}, // IPv6 needs its tag
		{"[IPv4:192.0.2.1]", HeloInvalid, "", ""},
		{"[x-tag:whatever]", HeloInvalid, "", ""}, // general literal
		{"[1.2.3]", HeloInvalid, "", ""},
		{"[1.2.3.4.5]", HeloInvalid, "", ""},
		{"[256.1.1.1]", HeloInvalid, "", ""},
		{"[010.0.0.1]", HeloInvalid, "", ""}, // leading zero: octal to some
		{"[ 192.0.2.25 ]", HeloInvalid, "", ""},
		{"[192.0.2.25", HeloInvalid, "", ""},
		{"192.0.2.25]", HeloInvalid, "", ""},
		{"[192.0.2.25].", HeloInvalid, "", ""},
		{"[192.0.2.25]x", HeloInvalid, "", ""},
		{"[[192.0.2.25]]", HeloInvalid, "", ""},
		{"[]", HeloInvalid, "", ""},
		{"[", HeloInvalid, "", ""},
		{"[mail.example.com]", HeloInvalid, "", ""},

		// Nothing.
		{"", HeloEmpty, "", ""},
		{" ", HeloEmpty, "", ""},
		{"   \t ", HeloEmpty, "", ""},
		{"\r\n", HeloEmpty, "", ""},
	}
	for _, tc := range tests {
		h := ParseHelo(tc.in)
		if h.Raw != tc.in {
			t.Errorf("ParseHelo(%q).Raw = %q, want the input", tc.in, h.Raw)
		}
		if h.Form != tc.form || h.Name != tc.name {
			t.Errorf("ParseHelo(%q) = form %q name %q, want %q %q", tc.in, h.Form, h.Name, tc.form, tc.name)
		}
		if tc.literal == "" {
			if h.Literal.IsValid() {
				t.Errorf("ParseHelo(%q).Literal = %v, want none", tc.in, h.Literal)
			}
		} else if want := netip.MustParseAddr(tc.literal); h.Literal != want {
			t.Errorf("ParseHelo(%q).Literal = %v, want %v", tc.in, h.Literal, want)
		}
	}
}

// The engine compares the literal with the client IP, unmapped; a mapped
// literal must compare equal to the plain IPv4 address.
func TestParseHeloMappedLiteralEqualsIPv4(t *testing.T) {
	h := ParseHelo("[IPv6:::ffff:192.0.2.1]")
	if !h.Literal.Is4() || h.Literal != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("literal %v is not the IPv4 address", h.Literal)
	}
}
