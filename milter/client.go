package milter

import (
	"net/netip"
	"strings"
)

// clientIP finds the address of a client whose CONNECT is not of family L (a
// unix-socket client, which is local and never judged): first the CONNECT
// address as go-milter gives it (for family 4 an address net.ParseIP takes,
// for family 6 one without Sendmail's "IPv6:" and brackets, for family U
// none), then
// the {client_addr} macro, then the host name when the MTA wrote the address
// there in brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]"), as it does for a
// client without reverse DNS.
//
// The result is unmapped (IPv4-mapped IPv6 is IPv4 throughout) and carries no
// zone; the zero Addr means none of them holds a usable address, the
// unspecified addresses included: the client is then unknown, which is not
// local.
func clientIP(addr, host, clientAddr string) netip.Addr {
	if a := parseClientAddr(addr); a.IsValid() {
		return a
	}
	if a := parseClientAddr(clientAddr); a.IsValid() {
		return a
	}
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return parseClientAddr(host[1 : len(host)-1])
	}
	return netip.Addr{}
}

// parseClientAddr parses an address as MTAs write it: "192.0.2.1",
// "2001:db8::1" or Sendmail's "IPv6:2001:db8::1".
func parseClientAddr(s string) netip.Addr {
	if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return usableAddr(a)
}

// usableAddr is a without zone and unmapped, or the zero Addr when that is
// no client's address (0.0.0.0, ::).
func usableAddr(a netip.Addr) netip.Addr {
	a = a.WithZone("").Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
