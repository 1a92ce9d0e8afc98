package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"
)

// SPFResult is an RFC 7208 section 2.6 result.
type SPFResult string

const (
	// SPFNone: no SPF record for the domain, or the domain is not a valid
	// domain name (2.6.1).
	SPFNone SPFResult = "none"
	// SPFNeutral: the domain owner explicitly makes no assertion (2.6.2).
	SPFNeutral SPFResult = "neutral"
	// SPFPass: the client is authorized to use the domain (2.6.3).
	SPFPass SPFResult = "pass"
	// SPFFail: the client is explicitly not authorized (2.6.4).
	SPFFail SPFResult = "fail"
	// SPFSoftFail: the client is probably not authorized, weak statement (2.6.5).
	SPFSoftFail SPFResult = "softfail"
	// SPFTempError: a transient (usually DNS) error; a later retry may
	// succeed (2.6.6).
	SPFTempError SPFResult = "temperror"
	// SPFPermError: the published records could not be interpreted (2.6.7).
	SPFPermError SPFResult = "permerror"
)

// spfTimeLimit is the elapsed-time limit of one check_host evaluation
// (RFC 7208 4.6.4: at least 20 seconds, temperror when it runs out).
const spfTimeLimit = 20 * time.Second

// CheckHost runs RFC 7208 check_host through blitiri.com.ar/go/spf fed by r.
//
// sender "" means the null reverse-path: postmaster@<helo> is used (RFC 7208
// 2.4), and an empty local part becomes "postmaster" (4.3). domain "" means
// the sender's domain, or helo when the sender has none.
//
// Limitation: blitiri always checks the domain of the sender it is given, so a
// domain different from the sender's is checked with the sender rewritten to
// <local-part>@<domain>; %{s} and %{o} then expand with that domain.
//
// trace, if non-nil, receives one line per evaluation step.
func CheckHost(ctx context.Context, r Resolver, ip netip.Addr, domain, sender, helo string, trace func(string)) SPFResult {
	local, sdom, _ := strings.Cut(sender, "@") // blitiri splits at the first "@" too
	if sender == "" {
		local, sdom = "postmaster", helo
	}
	if local == "" {
		local = "postmaster"
	}
	if domain == "" {
		domain = sdom
		if domain == "" {
			domain = helo
		}
	}
	if !strings.EqualFold(sdom, domain) {
		if trace != nil && sdom != "" {
			trace(fmt.Sprintf("checking %q with sender %q rewritten to %s@%s", domain, sender, local, domain))
		}
		sdom = domain
	}
	ip = ip.Unmap()
	if !ip.IsValid() {
		return SPFPermError
	}

	ctx, cancel := context.WithTimeout(ctx, spfTimeLimit)
	defer cancel()
	opts := []spf.Option{spf.WithResolver(spfResolver{r}), spf.WithContext(ctx)}
	if trace != nil {
		opts = append(opts, spf.WithTraceFunc(func(f string, a ...any) { trace(fmt.Sprintf(f, a...)) }))
	}
	res, err := spf.CheckHostWithSender(net.IP(ip.AsSlice()), helo, local+"@"+sdom, opts...)
	if ctx.Err() != nil {
		// Some lookups (ptr) swallow errors, so the result cannot be trusted
		// once the deadline has passed or the caller gave up.
		res = spf.TempError
	}
	if trace != nil {
		trace(fmt.Sprintf("result %s (%v)", res, err))
	}
	return SPFResult(res)
}

// CheckHelo is the HELO identity check: check_host(ip, helo, "postmaster@"+helo).
// The caller guarantees helo is a valid FQDN (no trailing dot).
func CheckHelo(ctx context.Context, r Resolver, ip netip.Addr, helo string) SPFResult {
	return CheckHost(ctx, r, ip, helo, "postmaster@"+helo, helo, nil)
}

// spfResolver adapts a Resolver to spf.DNSResolver. blitiri type-asserts
// errors, so they must be bare *net.DNSError values with IsNotFound for
// NXDOMAIN/NODATA and IsTemporary/IsTimeout for everything else; any other
// shape turns into permerror. blitiri's names are raw label bytes (macros can
// put spaces or NULs in them), ours are in presentation form: convert both ways.
type spfResolver struct{ r Resolver }

func (a spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	n, ok := presentationName(name)
	if !ok {
		return nil, spfNotFound(name)
	}
	txt, err := a.r.LookupTXT(ctx, n)
	return txt, spfDNSError(err, name)
}

func (a spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	n, ok := presentationName(name)
	if !ok {
		return nil, spfNotFound(name)
	}
	mxs, err := a.r.LookupMX(ctx, n)
	out := make([]*net.MX, len(mxs))
	for i, mx := range mxs {
		out[i] = &net.MX{Host: rawName(mx.Host), Pref: mx.Pref}
	}
	return out, spfDNSError(err, name)
}

func (a spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	n, ok := presentationName(host)
	if !ok || n == "." { // "." is a null MX (RFC 7505)
		return nil, spfNotFound(host)
	}
	ips, err := a.r.LookupIP(ctx, n)
	out := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		out[i] = net.IPAddr{IP: net.IP(ip.AsSlice()), Zone: ip.Zone()}
	}
	return out, spfDNSError(err, host)
}

func (a spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, spfNotFound(addr)
	}
	names, err := a.r.LookupPTR(ctx, ip)
	for i, n := range names {
		names[i] = rawName(n)
	}
	return names, spfDNSError(err, addr)
}

func spfNotFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// spfDNSError returns err as the bare *net.DNSError blitiri expects.
func spfDNSError(err error, name string) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) && (de.IsNotFound || de.IsTemporary || de.IsTimeout) {
		return de
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	d := &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true, IsTimeout: timeout, UnwrapErr: err}
	if de != nil {
		d.Server = de.Server
	}
	return d
}

// presentationName returns the absolute presentation form of a name of raw
// label bytes, or false if it cannot be a domain name (empty or overlong
// labels, over 255 octets).
func presentationName(raw string) (string, bool) {
	if raw == "" || raw == "." {
		return ".", raw != ""
	}
	wire := make([]byte, 0, len(raw)+2)
	for l := range strings.SplitSeq(strings.TrimSuffix(raw, "."), ".") {
		if len(l) == 0 || len(l) > 63 {
			return "", false
		}
		wire = append(append(wire, byte(len(l))), l...)
	}
	name, _, err := dns.UnpackDomainName(append(wire, 0), 0)
	return name, err == nil
}

// rawName undoes presentationName (an escaped dot stays a separator).
func rawName(name string) string {
	if !strings.Contains(name, `\`) {
		return name
	}
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return name
	}
	var b strings.Builder
	for i := 0; i < n && buf[i] != 0; i += int(buf[i]) + 1 {
		b.Write(buf[i+1 : i+1+int(buf[i])])
		b.WriteByte('.')
	}
	return b.String()
}

// CheckPTRDomain is the ptr_spf evidence: check_host(ip, D, postmaster@D) for D
// the organizational domain of name, a forward-confirmed PTR name. It says
// whether the owner of the PTR's domain authorizes the address to send its mail,
// which tells a big sender's IP-shaped server name (mta-70-34-223.sparkpostmail.com)
// from a cable modem's. A pass that D's own record gives to every address
// (a pass-qualified "all", +all or bare all) vouches for none: it is neutral.
// No organizational domain gives none.
func CheckPTRDomain(ctx context.Context, r Resolver, ip netip.Addr, name string) SPFResult {
	d, ok := OrgDomain(name)
	if !ok {
		return SPFNone
	}
	res := CheckHost(ctx, r, ip, d, "postmaster@"+d, d, nil)
	if res == SPFPass && passesAll(ctx, r, d) {
		return SPFNeutral
	}
	return res
}

// passesAll reports whether the SPF record of domain (its own, not what it
// includes or redirects to) holds a pass-qualified "all" term. The TXT answer
// is in the cache: check_host has just read it.
func passesAll(ctx context.Context, r Resolver, domain string) bool {
	txts, err := r.LookupTXT(ctx, domain)
	if err != nil {
		return false
	}
	for _, t := range txts {
		terms := strings.Fields(strings.ToLower(t))
		if len(terms) == 0 || terms[0] != "v=spf1" {
			continue
		}
		for _, term := range terms[1:] {
			if term == "all" || term == "+all" {
				return true
			}
		}
	}
	return false
}
