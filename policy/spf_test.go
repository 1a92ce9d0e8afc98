package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// spfTestZone is the world of the SPF unit tests. The client is 192.0.2.1.
func spfTestZone(t *testing.T) *dnsworld.Zone {
	t.Helper()
	z := dnsworld.NewZone()
	big := make([]string, 0, 40)
	for i := range 40 {
		big = append(big, fmt.Sprintf("ip4:198.51.100.%d", i))
	}
	for _, l := range []string{
		`pass.example. TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`nodata.example. A 192.0.2.9`,
		`servfail.example. TXT "v=spf1 +all"`,
		`timeout.example. TXT "v=spf1 +all"`,
		`trunc.example. TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`big.example. TXT "v=spf1 ` + strings.Join(big[:20], " ") + ` " "` + strings.Join(big[20:], " ") + ` ip4:192.0.2.1 -all"`,
		`a-servfail.example. TXT "v=spf1 a:servfail.example -all"`,
		`a-refused.example. TXT "v=spf1 a:refused.example -all"`,
		`a-nx.example. TXT "v=spf1 a:nx.example -all"`,
		`mx-timeout.example. TXT "v=spf1 mx -all"`,
		`mx-target-nx.example. TXT "v=spf1 mx -all"`,
		`mx-target-nx.example. MX 10 nx.example.`,
		`mx-target-servfail.example. TXT "v=spf1 mx -all"`,
		`mx-target-servfail.example. MX 10 servfail.example.`,
		`nullmx.example. TXT "v=spf1 mx -all"`,
		`nullmx.example. MX 0 .`,
		`incl-nx.example. TXT "v=spf1 include:nx.example -all"`,
		`incl-refused.example. TXT "v=spf1 include:refused.example -all"`,
		`exists-timeout.example. TXT "v=spf1 exists:timeout.example -all"`,
		`ptr-servfail.example. TXT "v=spf1 ptr ?all"`,
		`helo.example. TXT "v=spf1 exists:%{l}.%{d}.ok.example -all"`,
		`postmaster.helo.example.ok.example. A 127.0.0.2`,
	} {
		if err := z.AddRR(l); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	z.AddFault("servfail.example.", dns.TypeANY, dnsworld.FaultServfail)
	z.AddFault("refused.example.", dns.TypeANY, dnsworld.FaultRefused)
	z.AddFault("timeout.example.", dns.TypeANY, dnsworld.FaultTimeout)
	z.AddFault("trunc.example.", dns.TypeTXT, dnsworld.FaultTruncate)
	z.AddFault("mx-timeout.example.", dns.TypeMX, dnsworld.FaultTimeout)
	z.AddFault("1.2.0.192.in-addr.arpa.", dns.TypePTR, dnsworld.FaultServfail)
	return z
}

func startSPFTest(t *testing.T) *dnsworld.Server {
	t.Helper()
	srv, err := dnsworld.Start(spfTestZone(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func newSPFTestResolver(t *testing.T, srv *dnsworld.Server) Resolver {
	t.Helper()
	r, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Timeout: 300 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var spfClient = netip.MustParseAddr("192.0.2.1")

func TestSPFCheckHostDNSErrors(t *testing.T) {
	srv := startSPFTest(t)
	for _, tc := range []struct {
		domain string
		want   SPFResult
	}{
		{"pass.example", SPFPass},
		{"nx.example", SPFNone},                      // NXDOMAIN
		{"nodata.example", SPFNone},                  // NOERROR, no TXT
		{"servfail.example", SPFTempError},           // SERVFAIL
		{"refused.example", SPFTempError},            // REFUSED
		{"timeout.example", SPFTempError},            // no answer
		{"trunc.example", SPFPass},                   // TC over UDP, answer over TCP
		{"big.example", SPFPass},                     // > 512 bytes
		{"a-servfail.example", SPFTempError},         // a: target SERVFAIL
		{"a-refused.example", SPFTempError},          // a: target REFUSED
		{"a-nx.example", SPFFail},                    // a: target NXDOMAIN: no match
		{"mx-timeout.example", SPFTempError},         // MX query times out
		{"mx-target-nx.example", SPFFail},            // MX target NXDOMAIN: skipped
		{"mx-target-servfail.example", SPFTempError}, // MX target SERVFAIL
		{"nullmx.example", SPFFail},                  // null MX: no match, no error
		{"incl-nx.example", SPFPermError},            // include of a name with no record
		{"incl-refused.example", SPFTempError},       // include target REFUSED
		{"exists-timeout.example", SPFTempError},     // exists: target times out
		{"ptr-servfail.example", SPFNeutral},         // PTR SERVFAIL: no match (RFC 7208 5.5)
	} {
		t.Run(tc.domain, func(t *testing.T) {
			t.Parallel()
			var trace []string
			got := CheckHost(context.Background(), newSPFTestResolver(t, srv), spfClient, tc.domain, "joe@"+tc.domain, "mta.example",
				func(s string) { trace = append(trace, s) })
			if got != tc.want {
				t.Errorf("CheckHost(%s) = %s, want %s\n\t%s", tc.domain, got, tc.want, strings.Join(trace, "\n\t"))
			}
		})
	}
}

func TestSPFResolverErrors(t *testing.T) {
	srv := startSPFTest(t)
	type flags struct{ notFound, temporary, timeout bool }
	for _, tc := range []struct {
		name   string
		lookup func(context.Context, spfResolver) error
		want   flags
	}{
		{"txt nxdomain", txtLookup("nx.example"), flags{notFound: true}},
		{"txt nodata", txtLookup("nodata.example"), flags{notFound: true}},
		{"txt servfail", txtLookup("servfail.example"), flags{temporary: true}},
		{"txt refused", txtLookup("refused.example"), flags{temporary: true}},
		{"txt timeout", txtLookup("timeout.example"), flags{timeout: true}},
		{"mx servfail", func(ctx context.Context, a spfResolver) error {
			_, err := a.LookupMX(ctx, "servfail.example")
			return err
		}, flags{temporary: true}},
		{"ip refused", ipLookup("refused.example"), flags{temporary: true}},
		{"ip nxdomain", ipLookup("nx.example"), flags{notFound: true}},
		{"ip null mx", ipLookup("."), flags{notFound: true}},
		{"ptr servfail", func(ctx context.Context, a spfResolver) error {
			_, err := a.LookupAddr(ctx, "192.0.2.1")
			return err
		}, flags{temporary: true}},
		{"ptr bad address", func(ctx context.Context, a spfResolver) error {
			_, err := a.LookupAddr(ctx, "192.0.2")
			return err
		}, flags{notFound: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkSPFError(t, tc.lookup(context.Background(), spfResolver{newSPFTestResolver(t, srv)}),
				tc.want.notFound, tc.want.temporary, tc.want.timeout)
		})
	}
}

func txtLookup(name string) func(context.Context, spfResolver) error {
	return func(ctx context.Context, a spfResolver) error {
		_, err := a.LookupTXT(ctx, name)
		return err
	}
}

func ipLookup(name string) func(context.Context, spfResolver) error {
	return func(ctx context.Context, a spfResolver) error {
		_, err := a.LookupIPAddr(ctx, name)
		return err
	}
}

// checkSPFError checks that err is a bare *net.DNSError (blitiri does not
// unwrap) with the flags wanted; a timeout must also be temporary.
func checkSPFError(t *testing.T, err error, notFound, temporary, timeout bool) {
	t.Helper()
	de, ok := err.(*net.DNSError)
	if !ok {
		t.Fatalf("error %T %v, want bare *net.DNSError", err, err)
	}
	if de.IsNotFound != notFound || de.Temporary() != (temporary || timeout) || (timeout && !de.IsTimeout) {
		t.Errorf("%v: IsNotFound=%v Temporary()=%v IsTimeout=%v, want %v %v %v",
			de, de.IsNotFound, de.Temporary(), de.IsTimeout, notFound, temporary || timeout, timeout)
	}
}

func TestSPFDNSErrorShape(t *testing.T) {
	nf := &net.DNSError{Err: "no such host", Name: "x.example", IsNotFound: true}
	for _, tc := range []struct {
		name                         string
		err                          error
		notFound, temporary, timeout bool
	}{
		{"not found", nf, true, false, false},
		{"wrapped not found", fmt.Errorf("lookup: %w", nf), true, false, false},
		{"no flags (REFUSED in net)", &net.DNSError{Err: "server misbehaving"}, false, true, false},
		{"wrapped timeout", fmt.Errorf("x: %w", &net.DNSError{Err: "i/o timeout", IsTimeout: true}), false, true, true},
		{"deadline", context.DeadlineExceeded, false, true, true},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false, true, false},
		{"other", errors.New("boom"), false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := spfDNSError(tc.err, "x.example")
			checkSPFError(t, err, tc.notFound, tc.temporary, tc.timeout)
			if !errors.Is(err, tc.err) && !errors.Is(tc.err, err) {
				t.Errorf("%v does not unwrap to %v", err, tc.err)
			}
		})
	}
	if spfDNSError(nil, "x") != nil {
		t.Error("nil error mapped to non-nil")
	}
}

func TestSPFHeloAndSender(t *testing.T) {
	srv := startSPFTest(t)
	ctx := context.Background()
	helo := "helo.example" // exists:%{l}.%{d}.ok.example: passes only for postmaster
	if got := CheckHelo(ctx, newSPFTestResolver(t, srv), spfClient, helo); got != SPFPass {
		t.Errorf("CheckHelo = %s, want pass", got)
	}
	for _, tc := range []struct {
		domain, sender string
		want           SPFResult
	}{
		{"", "", SPFPass},                              // null sender: postmaster@helo
		{"helo.example", "", SPFPass},                  // same, domain given
		{"", "@helo.example", SPFPass},                 // empty local part
		{"", "joe@helo.example", SPFFail},              // %{l} = joe
		{"pass.example", "joe@other.example", SPFPass}, // domain other than the sender's
	} {
		got := CheckHost(ctx, newSPFTestResolver(t, srv), spfClient, tc.domain, tc.sender, helo, nil)
		if got != tc.want {
			t.Errorf("CheckHost(%q, %q) = %s, want %s", tc.domain, tc.sender, got, tc.want)
		}
	}
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	if got := CheckHost(ctx, newSPFTestResolver(t, srv), mapped, "pass.example", "", "mta.example", nil); got != SPFPass {
		t.Errorf("IPv4-mapped client = %s, want pass", got)
	}
	if got := CheckHost(ctx, newSPFTestResolver(t, srv), netip.Addr{}, "pass.example", "", "mta.example", nil); got != SPFPermError {
		t.Errorf("invalid client = %s, want permerror", got)
	}
}

func TestSPFDeadline(t *testing.T) {
	srv := startSPFTest(t)
	srv.SetDelay(200 * time.Millisecond)
	r, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Timeout: 2 * time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if got := CheckHost(ctx, r, spfClient, "pass.example", "", "mta.example", nil); got != SPFTempError {
		t.Errorf("expired deadline: %s, want temperror", got)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if got := CheckHelo(ctx, r, spfClient, "helo.example"); got != SPFTempError {
		t.Errorf("canceled: %s, want temperror", got)
	}
}

// TestSPFRawNames checks the name conversion: blitiri passes raw label bytes
// (macros can expand to spaces) and gets raw names back.
func TestSPFRawNames(t *testing.T) {
	z := dnsworld.NewZone()
	for _, l := range []string{
		`sp\ ace.example. TXT "v=spf1 mx -all"`,
		`sp\ ace.example. MX 10 m\ x.example.`,
		`m\ x.example. A 192.0.2.1`,
	} {
		if err := z.AddRR(l); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	a := spfResolver{newSPFTestResolver(t, srv)}
	mxs, err := a.LookupMX(ctx, "sp ace.example")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "m x.example." {
		t.Fatalf("LookupMX = %v, %v; want [m x.example.]", mxs, err)
	}
	if got := CheckHost(ctx, a.r, spfClient, "sp ace.example", "", "mta.example", nil); got != SPFPass {
		t.Errorf("CheckHost(sp ace.example) = %s, want pass", got)
	}
	before := srv.Queries()
	_, err = a.LookupTXT(ctx, strings.Repeat("x", 64)+".example")
	checkSPFError(t, err, true, false, false)
	if srv.Queries() != before {
		t.Error("an overlong label was queried")
	}
}
