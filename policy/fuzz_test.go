package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzParseHelo(f *testing.F) {
	for _, s := range []string{
		"", " ", "localhost", "mail.example.com", "mail.example.com.", "MAIL.Example.COM",
		"NAM02-BL2-obe.outbound.protection.outlook.com", "1.2.3.4", "example.123",
		"my_host.example.com", "-a.example", "a..b", "[192.0.2.25]", "[IPv6:2001:db8::1]",
		"[IPv6:::ffff:192.0.2.1]", "[IPv6:1.2.3.4]", "[1.2.3]", "[010.0.0.1]",
		"[x-tag:content]", "[IPv6:fe80::1%eth0]", " \t[192.0.2.25]\r\n", "mail.exämple.com",
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h := ParseHelo(raw)
		if h.Raw != raw {
			t.Fatalf("Raw = %q, want %q", h.Raw, raw)
		}
		if h2 := ParseHelo(raw); h2 != h {
			t.Fatalf("not deterministic: %+v, then %+v", h, h2)
		}
		switch h.Form {
		case HeloFQDN, HeloBare:
			if h.Name == "" || len(h.Name) > maxNameLen || h.Literal.IsValid() {
				t.Fatalf("%q: %+v", raw, h)
			}
			labels := strings.Split(h.Name, ".")
			if (h.Form == HeloFQDN) != (len(labels) >= 2) {
				t.Fatalf("%q: form %s with %d labels", raw, h.Form, len(labels))
			}
			for _, l := range labels {
				if !ldhLabel(l) || l != strings.ToLower(l) {
					t.Fatalf("%q: bad label %q in %q", raw, l, h.Name)
				}
			}
			if digitsOnly(labels[len(labels)-1]) {
				t.Fatalf("%q: all-digit top label in %q", raw, h.Name)
			}
			// The normalized name is a fixed point.
			if again := ParseHelo(h.Name); again.Form != h.Form || again.Name != h.Name {
				t.Fatalf("%q: ParseHelo(%q) = %+v", raw, h.Name, again)
			}
		case HeloAddressLiteral:
			if !h.Literal.IsValid() || h.Literal.Is4In6() || h.Literal.Zone() != "" || h.Name != "" {
				t.Fatalf("%q: %+v", raw, h)
			}
		case HeloInvalid, HeloEmpty:
			if h.Name != "" || h.Literal.IsValid() {
				t.Fatalf("%q: %+v", raw, h)
			}
			if (h.Form == HeloEmpty) != (strings.Trim(raw, " \t\r\n\v\f") == "") {
				t.Fatalf("%q: form %s", raw, h.Form)
			}
		default:
			t.Fatalf("%q: unknown form %q", raw, h.Form)
		}
		// Anything that passes is also something OrgDomain can read.
		if h.Form == HeloFQDN {
			if org, ok := OrgDomain(h.Name); ok && !strings.HasSuffix("."+h.Name, "."+org) {
				t.Fatalf("%q: org domain %q is not a suffix of %q", raw, org, h.Name)
			}
		}
	})
}

func FuzzIsGenericPTR(f *testing.F) {
	f.Add("c-198-0-10-20.hsd1.ca.cable-isp.example", []byte{198, 0, 10, 20}, "dyn")
	f.Add("mx113-7.mailer.example", []byte{203, 0, 113, 7}, "pool")
	f.Add("mail-bl2nam02on0131.outbound.protection.outlook.com", []byte{104, 47, 38, 131}, "")
	f.Add("dyn.example.com.", []byte{}, "DYN")
	f.Add("2001-db8--1.v6.example", netip.MustParseAddr("2001:db8::1").AsSlice(), "cable")
	f.Add("c6000a14.example", netip.MustParseAddr("::ffff:198.0.10.20").AsSlice(), "x")
	f.Add("a-.-b..-", []byte{0, 0, 0, 0}, "-")
	f.Fuzz(func(t *testing.T, name string, ipb []byte, token string) {
		ip, _ := netip.AddrFromSlice(ipb)
		tokens := append(DefaultGenericTokens(), token)
		got := IsGenericPTR(name, ip, tokens)
		if again := IsGenericPTR(name, ip, tokens); again != got {
			t.Fatalf("not deterministic")
		}
		// IPv4-mapped IPv6 is IPv4.
		if ip.Is4() {
			if m := IsGenericPTR(name, netip.AddrFrom16(ip.As16()), tokens); m != got {
				t.Fatalf("%q: %v gives %v, its mapped form %v", name, ip, got, m)
			}
		}
		// ASCII case and one trailing dot do not matter.
		if isASCII(name) && !strings.HasSuffix(name, ".") {
			if IsGenericPTR(strings.ToUpper(name)+".", ip, tokens) != IsGenericPTR(strings.ToLower(name), ip, tokens) {
				t.Fatalf("%q: case or trailing dot changed the answer", name)
			}
		}
		// More tokens never make a generic name ordinary.
		if got && !IsGenericPTR(name, ip, append(tokens, "extra")) {
			t.Fatalf("%q: adding a token changed the answer", name)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzClientText(f *testing.F) {
	f.Add("mail.example.com", 100)
	f.Add("a\r\nb", 3)
	f.Add("é\x00\x7f%", 4)
	f.Add("", 0)
	f.Add("abc", -5)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := ClientText(s, n)
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Fatalf("ClientText(%q, %d) = %q: byte %#x", s, n, got, got[i])
			}
		}
		limit := max(n, 0)
		if len(got) > limit {
			t.Fatalf("ClientText(%q, %d) = %q: %d bytes", s, n, got, len(got))
		}
		if len(s) <= limit && len(got) != len(s) {
			t.Fatalf("ClientText(%q, %d) = %q: fits, yet length changed", s, n, got)
		}
		if len(s) > limit && len(got) != limit {
			t.Fatalf("ClientText(%q, %d) = %q: cut to %d bytes, want %d", s, n, got, len(got), limit)
		}
		if again := ClientText(got, n); again != got {
			t.Fatalf("ClientText not idempotent on %q: %q", got, again)
		}
	})
}
