package policy

import (
	"net/netip"
	"slices"
	"testing"
)

func TestIsGenericPTR(t *testing.T) {
	defaults := DefaultGenericTokens()
	tests := []struct {
		name   string
		ip     string // "" = invalid address
		tokens []string
		want   bool
	}{
		// The PTR names of the seed scenarios, and a near miss.
		{"c-198-0-10-20.hsd1.ca.cable-isp.example", "198.0.10.20", defaults, true},
		{"c-198-0-10-20.hsd1.ca.cable-isp.example.", "198.0.10.20", defaults, true},
		{"c-198-0-10-20.hsd1.ca.cable-isp.example", "::ffff:198.0.10.20", defaults, true}, // mapped: IPv4 rules
		{"mx113-7.mailer.example", "203.0.113.7", defaults, false},                        // runs 113, 7: two octets
		{"mail-bl2nam02on0131.outbound.protection.outlook.com", "104.47.38.131", defaults, false},
		{"mail-bn1on0065.outbound.protection.outlook.com", "157.56.110.65", defaults, false},
		{"mail.one-to-one.example", "192.0.2.25", defaults, false},
		{"vps66.cheap-hosting.example", "192.0.2.66", defaults, false},

		// Decimal runs: at least 3 octets, any order, leading zeros allowed.
		{"123-45-67-89.static.example", "123.45.67.89", defaults, true},
		{"89.67.45.123.rev.isp.example", "123.45.67.89", defaults, true},
		{"host-45-67-89.isp.example", "123.45.67.89", defaults, true}, // three of four
		{"smtp-out-203-113.example", "203.0.113.7", defaults, false},  // two of four
		{"ip-010-000-113-007.isp.example", "10.0.113.7", defaults, true},
		{"h0198-0000-0010-0020.isp.example", "198.0.10.20", defaults, true}, // long runs with leading zeros
		{"x1198-1000-1010.isp.example", "198.0.10.20", defaults, false},     // 1198 is not 198
		{"a000000000000000000000000000198b0c10.example", "198.0.10.20", defaults, true},
		{"7.113.0.203.example", "203.0.113.7", defaults, true},
		{"198.0.10.20.example", "::ffff:198.0.10.20", defaults, true},
		{"mail1.example", "1.1.1.1", defaults, false},

		// Each octet and each run counts once.
		{"10-0-5.isp.example", "10.0.0.5", defaults, true},
		{"mail10-5.example", "10.0.0.5", defaults, false},
		{"x10.y10.example", "10.10.10.1", defaults, false},
		{"10-10-10.example", "10.10.10.1", defaults, true},
		{"10.example", "10.10.10.10", defaults, false},
		{"h0-0.example", "10.0.0.5", defaults, false},

		// The address as 8 hex digits, in any case, anywhere in a label.
		{"c6000a14.isp.example", "198.0.10.20", defaults, true},
		{"host-C6000A14.isp.example", "198.0.10.20", defaults, true},
		{"abc6000a14x.isp.example", "198.0.10.20", defaults, true},
		{"c6000a14.isp.example", "::ffff:198.0.10.20", defaults, true},
		{"c6000a1.isp.example", "198.0.10.20", defaults, false},
		{"c6000a15.isp.example", "198.0.10.20", defaults, false},
		{"0a000001.isp.example", "10.0.0.1", defaults, true},

		// Tokens left of the organizational domain.
		{"dyn.example.com", "192.0.2.1", defaults, true},
		{"DSL-Pool.Example.COM.", "192.0.2.1", defaults, true},
		{"customer-dhcp-12.isp.example", "192.0.2.1", defaults, true},
		{"a.b.residential.isp.co.uk", "192.0.2.1", defaults, true},
		{"cable-isp.example", "192.0.2.1", defaults, false},               // the token is in the org domain
		{"mail.cable-isp.example", "192.0.2.1", defaults, false},          // ditto
		{"pool.example", "192.0.2.1", defaults, false},                    // the name is its own org domain
		{"pool.co.uk", "192.0.2.1", defaults, false},                      // ditto, under a two-label suffix
		{"dynamo.example.com", "192.0.2.1", defaults, false},              // a token must be a whole part
		{"dsl123.isp.example", "192.0.2.1", defaults, false},              // ditto
		{"dyn.compute-1.amazonaws.com", "192.0.2.1", defaults, true},      // no org domain: all labels but the last
		{"mail.dyn", "192.0.2.1", defaults, false},                        // the last label never counts
		{"dyn", "192.0.2.1", defaults, false},                             // single label: nothing left of it
		{"dyn.example.com", "192.0.2.1", nil, false},                      // no tokens, no token rule
		{"customer.isp.example", "192.0.2.1", []string{"Customer"}, true}, // configured, any case
		{"a--b.isp.example", "192.0.2.1", []string{""}, false},            // an empty token matches nothing
		{"dyn.example.com", "", defaults, true},                           // invalid IP: tokens only
		{"1-2-3-4.example", "", defaults, false},

		// IPv6.
		{"host-0a0027fffe4e66a1.isp.example", "2001:db8:1:2:a00:27ff:fe4e:66a1", defaults, true},
		{"host-0A0027FFFE4E66A1.isp.example", "2001:db8:1:2:a00:27ff:fe4e:66a1", defaults, true},
		{"2001-db8-1-2-a00-27ff-fe4e-66a1.v6.isp.example", "2001:db8:1:2:a00:27ff:fe4e:66a1", defaults, true},
		{"2001-db8--1.ipv6-literal.example", "2001:db8::1", defaults, true},
		{"x-2001-db8-0-0-0-0-0-1.isp.example", "2001:db8::1", defaults, true},
		{"x-2001-0db8-0000-0000-0000-0000-0000-0001.isp.example", "2001:db8::1", defaults, true},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.isp.example", "2001:db8::1", defaults, true},
		{"2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.isp.example", "2001:db8::1", defaults, true},
		{"1-2-3-4.example", "2001:db8::1:2:3:4", defaults, false}, // decimal runs mean nothing for IPv6
		{"mail.example.com", "2001:db8::25", defaults, false},
		{"dynamic-v6.isp.example", "2001:db8::25", defaults, true},
		{"fe80--1.lan.example", "fe80::1%eth0", defaults, true}, // the zone is not part of the name

		{"", "192.0.2.1", defaults, false},
		{".", "192.0.2.1", defaults, false},
	}
	for _, tc := range tests {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := IsGenericPTR(tc.name, ip, tc.tokens); got != tc.want {
			t.Errorf("IsGenericPTR(%q, %s, %q) = %v, want %v", tc.name, tc.ip, tc.tokens, got, tc.want)
		}
	}
}

func TestDefaultGenericTokensFresh(t *testing.T) {
	want := []string{"dyn", "dynamic", "dsl", "adsl", "xdsl", "dhcp", "pool", "ppp", "pppoe", "cable", "cpe", "dialup", "broadband", "residential"}
	a := DefaultGenericTokens()
	if !slices.Equal(a, want) {
		t.Fatalf("DefaultGenericTokens() = %q, want %q", a, want)
	}
	a[0] = "changed"
	if b := DefaultGenericTokens(); b[0] != "dyn" {
		t.Fatalf("editing one result changed the next: %q", b)
	}
}

func BenchmarkIsGenericPTR(b *testing.B) {
	tokens := DefaultGenericTokens()
	ip := netip.MustParseAddr("104.47.38.131")
	for b.Loop() {
		IsGenericPTR("mail-bl2nam02on0131.outbound.protection.outlook.com", ip, tokens)
	}
}
