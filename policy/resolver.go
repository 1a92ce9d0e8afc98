package policy

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Resolver is the DNS that policy sees. dnscache.Resolver implements it over the
// wire; tests may implement it however they like.
//
// Errors follow the standard library's convention, so that the SPF library and
// net.Resolver agree with us: a lookup that failed returns a *net.DNSError (never
// wrapped) with IsNotFound set for NXDOMAIN and NODATA, and IsTemporary (and
// IsTimeout where it applies) set for SERVFAIL, REFUSED, other rcodes, timeouts
// and network errors. Names are absolute or not; implementations treat them as
// absolute (no search list) and return absolute names (trailing dot).
type Resolver interface {
	// LookupPTR returns the PTR names of ip, CNAMEs followed (RFC 2317).
	LookupPTR(ctx context.Context, ip netip.Addr) ([]string, error)
	// LookupIP returns the A and AAAA addresses of name. If one of the two
	// types answers and the other fails, the addresses come back with a nil
	// error only when the failure was "not found".
	LookupIP(ctx context.Context, name string) ([]netip.Addr, error)
	// LookupTXT returns each TXT record as one string: its character-strings
	// unescaped to raw bytes and joined with no separator (RFC 7208 3.3).
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupMX returns the MX records of name.
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// isNotFound reports whether err says the name or the records do not exist.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
