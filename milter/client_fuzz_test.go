package milter

import (
	"net/netip"
	"testing"
)

// FuzzClientIP: whatever the MTA puts in the CONNECT address, the
// {client_addr} macro and the host name, the
// client's address is a valid address without zone, unmapped and specified,
// or none (unknown); and the CONNECT address wins when it is one. Seeds:
// testdata/fuzz/FuzzClientIP.
func FuzzClientIP(f *testing.F) {
	f.Fuzz(func(t *testing.T, addrText, host, clientAddr string) {
		for _, addr := range []string{addrText} {
			got := clientIP(addr, host, clientAddr)
			if again := clientIP(addr, host, clientAddr); again != got {
				t.Fatalf("not deterministic: %v then %v", got, again)
			}
			if !got.IsValid() {
				continue
			}
			if got.Zone() != "" || got.Is4In6() || got.IsUnspecified() {
				t.Fatalf("clientIP(%q, %q, %q) = %v: zone, mapped or unspecified", addr, host, clientAddr, got)
			}
			if got.String() != got.WithZone("").String() || netip.MustParseAddr(got.String()) != got {
				t.Fatalf("clientIP(%q, %q, %q) = %v does not survive its text", addr, host, clientAddr, got)
			}
			if a, err := netip.ParseAddr(addr); err == nil && !a.Unmap().IsUnspecified() && got != a.WithZone("").Unmap() {
				t.Fatalf("clientIP(%q, …) = %v, not the CONNECT address %v", addr, got, a.Unmap())
			}
		}
	})
}
