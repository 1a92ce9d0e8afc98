package milter

import (
	"net"
	"net/netip"
	"strings"
)

// clientIP finds the client's address. go-milter parses the CONNECT address
// with net.ParseIP, which gives nil for Sendmail's "IPv6:2001:db8::1"; then the
// {client_addr} macro or the bracketed host name ("[IPv6:…]") has it.
func clientIP(family string, addr net.IP, host string, macros map[string]string) netip.Addr {
	if a, ok := netip.AddrFromSlice(addr); ok && family != "unix" {
		return a.Unmap()
	}
	if family == "unix" {
		return netip.Addr{}
	}
	for _, s := range []string{macros["{client_addr}"], strings.Trim(host, "[]")} {
		s = strings.TrimPrefix(s, "IPv6:")
		s = strings.TrimPrefix(s, "ipv6:")
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}
