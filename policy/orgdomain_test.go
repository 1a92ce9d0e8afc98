package policy

import (
	"strings"
	"testing"
)

func TestOrgDomain(t *testing.T) {
	tests := []struct {
		name string
		org  string // "" = not ok
	}{
		{"EUR05-DB8-obe.outbound.protection.outlook.com", "outlook.com"},
		{"mail-db8eur05on2080.outbound.protection.outlook.com", "outlook.com"},
		{"outlook.com", "outlook.com"},
		{"Mail.Example.COM.", "example.com"},
		{"foo.blogspot.com", "foo.blogspot.com"}, // private section: each blog its own
		{"www.foo.blogspot.com", "foo.blogspot.com"},
		{"blogspot.com", ""},
		{"mail.example.co.uk", "example.co.uk"},
		{"a.b.example.co.uk", "example.co.uk"},
		{"example.co.uk", "example.co.uk"},
		{"co.uk", ""},
		{"uk", ""},
		{"ec2-1-2-3-4.compute-1.amazonaws.com", ""}, // *.compute-1.amazonaws.com is a suffix
		{"x.ec2-1-2-3-4.compute-1.amazonaws.com", "x.ec2-1-2-3-4.compute-1.amazonaws.com"},
		{"city.kawasaki.jp", "city.kawasaki.jp"}, // exception rule !city.kawasaki.jp
		{"www.city.kawasaki.jp", "city.kawasaki.jp"},
		// TLDs missing from the list fall to the default rule "*".
		{"vps66.cheap-hosting.example", "cheap-hosting.example"},
		{"cheap-hosting.example", "cheap-hosting.example"},
		{"c-198-0-10-20.hsd1.ca.cable-isp.example", "cable-isp.example"},
		{"a.b.c.test", "c.test"},
		{"example", ""},
		{"localhost", ""},
		{"localhost.", ""},
		// Looser than HELO syntax: underscores and odd hyphens pass.
		{"my_host.example.com", "example.com"},
		{"-odd-.example.com", "example.com"},
		// Not host names.
		{"", ""},
		{".", ""},
		{"..", ""},
		{"a..b.com", ""},
		{".example.com", ""},
		{"example.com..", ""},
		{"1.2.3.4", ""},
		{"5.1.2.3.4", ""}, // top label all digits
		{"[192.0.2.1]", ""},
		{"2001:db8::1", ""},
		{"mail.exämple.com", ""},
		{"\u212a.example.com", ""}, // Kelvin sign, which Unicode lowercases to "k"
		{"mail example.com", ""},
		{strings.Repeat("a", 64) + ".example.com", ""},
		{strings.Repeat("a", 63) + ".example.com", "example.com"},
		{strings.Repeat("a.", 125) + "example.com", ""}, // 261 bytes
	}
	for _, tc := range tests {
		org, ok := OrgDomain(tc.name)
		if org != tc.org || ok != (tc.org != "") {
			t.Errorf("OrgDomain(%q) = %q, %v, want %q, %v", tc.name, org, ok, tc.org, tc.org != "")
		}
	}
}

func TestAligned(t *testing.T) {
	tests := []struct {
		helo string
		ptrs []string
		want bool
	}{
		{"EUR05-DB8-obe.outbound.protection.outlook.com", []string{"mail-db8eur05on2080.outbound.protection.outlook.com"}, true},
		{"NAM02-BL2-obe.outbound.protection.outlook.com", []string{"mail-bl2nam02on0131.outbound.protection.outlook.com"}, true},
		{"NAM02-BL2-obe.outbound.protection.outlook.com", []string{"vps66.cheap-hosting.example"}, false}, // the forger
		{"NAM02-BL2-obe.outbound.protection.outlook.com", []string{"vps66.cheap-hosting.example", "mail.outlook.com."}, true},
		{"MAIL.Example.com.", []string{"mx.example.com"}, true},
		{"mail.example.com", []string{"example.com"}, true},
		{"a.blogspot.com", []string{"b.blogspot.com"}, false},
		{"a.blogspot.com", []string{"www.a.blogspot.com"}, true},
		{"x.example.co.uk", []string{"y.example.co.uk"}, true},
		{"x.example.co.uk", []string{"y.other.co.uk"}, false},
		{"co.uk", []string{"co.uk"}, false}, // a public suffix is no organization
		{"ec2-1-2-3-4.compute-1.amazonaws.com", []string{"ec2-1-2-3-4.compute-1.amazonaws.com"}, false},
		{"mail.cheap-hosting.example", []string{"vps66.cheap-hosting.example"}, true},
		{"localhost", []string{"localhost"}, false},
		{"[192.0.2.1]", []string{"mail.example.com"}, false},
		{"mail.example.com", nil, false},
		{"mail.example.com", []string{}, false},
		{"", []string{"mail.example.com"}, false},
	}
	for _, tc := range tests {
		if got := Aligned(tc.helo, tc.ptrs); got != tc.want {
			t.Errorf("Aligned(%q, %q) = %v, want %v", tc.helo, tc.ptrs, got, tc.want)
		}
	}
}
