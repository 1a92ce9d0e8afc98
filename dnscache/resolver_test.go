package dnscache

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

var world = []string{
	"host.example. 300 IN A 192.0.2.1",
	"host.example. 300 IN A 192.0.2.2",
	"host.example. 300 IN AAAA 2001:db8::1",
	"v4only.example. 300 IN A 192.0.2.3",
	"v4only.example. 300 IN TXT \"x\"",
	"alias.example. 300 IN CNAME Alias2.Example.",
	"alias2.example. 300 IN CNAME host.example.",
	"loop1.example. 300 IN CNAME loop2.example.",
	"loop2.example. 300 IN CNAME loop1.example.",
	// RFC 2317: 192.0.2.0/25 delegated to 0-25.2.0.192.in-addr.arpa.
	"1.2.0.192.in-addr.arpa. 300 IN PTR host.example.",
	"5.2.0.192.in-addr.arpa. 300 IN CNAME 5.0-25.2.0.192.in-addr.arpa.",
	"5.0-25.2.0.192.in-addr.arpa. 300 IN PTR Classless.Example.",
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR host.example.",
	`txt.example. 300 IN TXT "say \"hi\" " "back\\slash " "caf\195\169 tab\009end"`,
	`txt.example. 300 IN TXT "v=spf1 " "-all"`,
	"mx.example. 300 IN MX 20 b.example.",
	"mx.example. 300 IN MX 10 a.example.",
	"servfail.example. 300 IN A 192.0.2.9",
	"refused.example. 300 IN A 192.0.2.9",
	"trunc.example. 300 IN A 192.0.2.10",
	"big.example. 300 IN TXT " + strings.Repeat(`"`+strings.Repeat("s", 250)+`" `, 6),
	"mid.example. 300 IN TXT " + strings.Repeat(`"`+strings.Repeat("m", 200)+`" `, 4),
}

var worldFaults = []fault{
	{"servfail.example.", dns.TypeA, dnsworld.FaultServfail},
	{"refused.example.", dns.TypeANY, dnsworld.FaultRefused},
	{"trunc.example.", dns.TypeA, dnsworld.FaultTruncate},
}

func init() {
	// a chain of 12 CNAMEs: from ca2 it is 10 hops (allowed), from ca1 11
	for i := range 12 {
		world = append(world, "c"+itoa(i)+".example. 300 IN CNAME c"+itoa(i+1)+".example.")
	}
	world = append(world, "c"+itoa(12)+".example. 300 IN A 192.0.2.12")
}

func itoa(i int) string { return string(rune('a'+i/10)) + string(rune('0'+i%10)) }

func TestLookup(t *testing.T) {
	s := startZone(t, world, worldFaults...)
	r := newResolver(t, Config{}, s.Addr)
	ip := netip.MustParseAddr

	tests := []struct {
		name    string
		call    func(context.Context) (any, error)
		want    any
		wantErr error  // sentinel, nil = success
		errName string // expected DNSError.Name
		errText string // expected DNSError.Err, "" = not checked
		queries map[string]int64
	}{
		{name: "A and AAAA", call: ipOf(r, "HOST.example"),
			want: []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")}},
		{name: "A only, AAAA NODATA", call: ipOf(r, "v4only.example."),
			want: []netip.Addr{ip("192.0.2.3")}},
		{name: "CNAME chain", call: ipOf(r, "alias.example."),
			want: []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")}},
		{name: "PTR", call: ptrOf(r, ip("192.0.2.1")), want: []string{"host.example."}},
		{name: "PTR of v4-mapped address", call: ptrOf(r, ip("::ffff:192.0.2.1")), want: []string{"host.example."}},
		{name: "PTR IPv6", call: ptrOf(r, ip("2001:db8::1")), want: []string{"host.example."}},
		{name: "PTR through RFC 2317 CNAME", call: ptrOf(r, ip("192.0.2.5")), want: []string{"Classless.Example."}},
		{name: "PTR NXDOMAIN", call: ptrOf(r, ip("192.0.2.77")), wantErr: ErrNXDomain, errName: "77.2.0.192.in-addr.arpa."},
		{name: "CNAME loop", call: ipOf(r, "loop1.example."), wantErr: ErrServFail, errName: "loop1.example.", errText: "CNAME loop"},
		{name: "CNAME chain too long", call: ipOf(r, "ca1.example."), wantErr: ErrServFail, errName: "ca1.example.", errText: "CNAME chain too long"},
		{name: "CNAME chain of 10", call: ipOf(r, "ca2.example."), want: []netip.Addr{ip("192.0.2.12")}},
		{name: "NXDOMAIN", call: ipOf(r, "nope.example"), wantErr: ErrNXDomain, errName: "nope.example.", errText: "no such host"},
		{name: "NODATA", call: mxOf(r, "host.example."), wantErr: ErrNoData, errName: "host.example.", errText: "no data"},
		{name: "NXDOMAIN TXT", call: txtOf(r, "nope.example."), wantErr: ErrNXDomain, errName: "nope.example."},
		{name: "SERVFAIL", call: ipOf(r, "servfail.example."), wantErr: ErrServFail, errName: "servfail.example.",
			queries: map[string]int64{"servfail.example./A": 2}}, // 2 attempts on the one server
		{name: "REFUSED", call: txtOf(r, "refused.example."), wantErr: ErrRefused, errName: "refused.example."},
		{name: "TXT unescaped and joined", call: txtOf(r, "txt.example."),
			want: []string{"say \"hi\" back\\slash caf\u00e9 tab\tend", "v=spf1 -all"}},
		{name: "MX sorted", call: mxOf(r, "mx.example."),
			want: []*net.MX{{Host: "a.example.", Pref: 10}, {Host: "b.example.", Pref: 20}}},
		{name: "truncate fault retried over TCP", call: rawOf(r, "trunc.example.", dns.TypeA),
			want: []string{"192.0.2.10"}, queries: map[string]int64{"trunc.example./A": 2}},
		{name: "TXT above 1232 bytes retried over TCP", call: func(ctx context.Context) (any, error) {
			txt, err := r.LookupTXT(ctx, "big.example.")
			if len(txt) != 1 {
				return txt, err
			}
			return len(txt[0]), err
		}, want: 1500, queries: map[string]int64{"big.example./TXT": 2}},
		{name: "TXT of 800 bytes fits EDNS0 over UDP", call: func(ctx context.Context) (any, error) {
			txt, err := r.LookupTXT(ctx, "mid.example.")
			if len(txt) != 1 {
				return txt, err
			}
			return len(txt[0]), err
		}, want: 800, queries: map[string]int64{"mid.example./TXT": 1}},
		{name: "invalid name", call: ipOf(r, strings.Repeat("a", 64)+".example."), wantErr: ErrNXDomain},
		{name: "root name (null MX)", call: ipOf(r, "."), wantErr: ErrNoData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call(context.Background())
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got %v, want error %v", got, tt.wantErr)
				}
				checkErr(t, err, tt.wantErr, tt.errName)
				if de := err.(*net.DNSError); tt.errText != "" && de.Err != tt.errText {
					t.Errorf("error text %q, want %q", de.Err, tt.errText)
				}
				if de := err.(*net.DNSError); tt.wantErr != ErrNoData && tt.errName != "" && de.Server != s.Addr {
					t.Errorf("error Server %q, want %q", de.Server, s.Addr)
				}
			} else {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if sl, ok := got.([]string); ok {
					slices.Sort(sl)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
			}
			for k, want := range tt.queries {
				name, typ, _ := strings.Cut(k, "/")
				if got := s.QueriesFor(name, dns.StringToType[typ]); got != want {
					t.Errorf("server saw %d queries for %s, want %d", got, k, want)
				}
			}
		})
	}
}

func ipOf(r *Resolver, name string) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) { return r.LookupIP(ctx, name) }
}

func ptrOf(r *Resolver, ip netip.Addr) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) { return r.LookupPTR(ctx, ip) }
}

func txtOf(r *Resolver, name string) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) { return r.LookupTXT(ctx, name) }
}

func mxOf(r *Resolver, name string) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) { return r.LookupMX(ctx, name) }
}

// rawOf calls Lookup and returns the rdata of the records.
func rawOf(r *Resolver, name string, qtype uint16) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		rrs, err := r.Lookup(ctx, name, qtype)
		var out []string
		for _, rr := range rrs {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		return out, err
	}
}

func TestLookupCopies(t *testing.T) {
	s := startZone(t, world)
	r := newResolver(t, Config{}, s.Addr)
	ctx := context.Background()
	rrs, err := r.Lookup(ctx, "host.example.", dns.TypeA)
	if err != nil || len(rrs) != 2 {
		t.Fatalf("Lookup: %v %v", rrs, err)
	}
	rrs[0].(*dns.A).A[3] = 99
	rrs[0].Header().Name = "changed."
	rrs[1] = nil
	again, err := r.Lookup(ctx, "host.example.", dns.TypeA)
	if err != nil || again[0].(*dns.A).A.String() != "192.0.2.1" || again[0].Header().Name != "host.example." || again[1] == nil {
		t.Fatalf("cached records changed by a caller: %v %v", again, err)
	}
	if got := s.QueriesFor("host.example.", dns.TypeA); got != 1 {
		t.Errorf("%d upstream queries, want 1", got)
	}
}

func TestStatsAndTally(t *testing.T) {
	s := startZone(t, world, worldFaults...)
	r := newResolver(t, Config{}, s.Addr)
	var tally Tally
	ctx := WithTally(context.Background(), &tally)
	r.LookupIP(ctx, "host.example.")        // 2 misses, 2 upstream
	r.LookupIP(ctx, "host.example.")        // 2 hits
	r.LookupTXT(ctx, "nope.example.")       // miss, NXDOMAIN
	r.LookupTXT(ctx, "nope.example.")       // hit, NXDOMAIN
	r.LookupMX(ctx, "host.example.")        // miss, NODATA
	r.LookupIP(ctx, "servfail.example.")    // A: miss, SERVFAIL (2 queries); AAAA: miss, NODATA
	r.LookupTXT(context.Background(), "x.") // miss, NXDOMAIN, not in the tally
	want := Stats{Queries: 10, Hits: 3, Misses: 7, Upstream: 8, Entries: 7,
		NXDomain: 3, NoData: 2, ServFail: 1}
	if got := r.Stats(); got != want {
		t.Errorf("Stats() = %+v\nwant %+v", got, want)
	}
	if l, h, u := tally.Lookups.Load(), tally.Hits.Load(), tally.Upstream.Load(); l != 9 || h != 3 || u != 7 {
		t.Errorf("tally lookups %d hits %d upstream %d, want 9 3 7", l, h, u)
	}
	r.Purge()
	if n := r.Stats().Entries; n != 0 {
		t.Errorf("%d entries after Purge", n)
	}
	r.LookupIP(ctx, "host.example.")
	if got := s.QueriesFor("host.example.", dns.TypeA); got != 2 {
		t.Errorf("%d queries for host.example. A after Purge, want 2", got)
	}
}

// LookupIP combines the A and AAAA outcomes.
func TestLookupIPCombines(t *testing.T) {
	soa := "example. 60 IN SOA ns.example. h.example. 1 2 3 4 60"
	// outcome of each name and type: an address, or an rcode (NODATA = "nodata")
	outcomes := map[string][2]string{
		"both.example.":       {"192.0.2.1", "2001:db8::1"},
		"a-servfail.example.": {"192.0.2.1", "SERVFAIL"},
		"servfail-a.example.": {"SERVFAIL", "2001:db8::1"},
		"a-nx.example.":       {"192.0.2.1", "NXDOMAIN"},
		"nodata-nx.example.":  {"nodata", "NXDOMAIN"},
		"nx-nodata.example.":  {"NXDOMAIN", "nodata"},
		"nodata-both.example": {"nodata", "nodata"},
		"nx-servfail.example": {"NXDOMAIN", "SERVFAIL"},
		"servfail-nx.example": {"SERVFAIL", "NXDOMAIN"},
	}
	addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		o, ok := outcomes[q.Name]
		if !ok {
			o = outcomes[strings.TrimSuffix(q.Name, ".")]
		}
		out := o[0]
		if q.Qtype == dns.TypeAAAA {
			out = o[1]
		}
		var m *dns.Msg
		switch out {
		case "nodata":
			m = reply(req, dns.RcodeSuccess)
			m.Ns = []dns.RR{rr(t, soa)}
		case "NXDOMAIN":
			m = reply(req, dns.RcodeNameError)
			m.Ns = []dns.RR{rr(t, soa)}
		case "SERVFAIL":
			m = reply(req, dns.RcodeServerFailure)
		default:
			m = reply(req, dns.RcodeSuccess, rr(t, q.Name+" 60 IN "+dns.TypeToString[q.Qtype]+" "+out))
		}
		w.WriteMsg(m)
	})
	r := newResolver(t, Config{Attempts: 1}, addr)
	tests := []struct {
		name    string
		want    []string
		wantErr error
	}{
		{"both.example.", []string{"192.0.2.1", "2001:db8::1"}, nil},
		{"a-servfail.example.", []string{"192.0.2.1"}, ErrServFail},
		{"servfail-a.example.", []string{"2001:db8::1"}, ErrServFail},
		{"a-nx.example.", []string{"192.0.2.1"}, nil},
		{"nodata-nx.example.", nil, ErrNXDomain},
		{"nx-nodata.example.", nil, ErrNXDomain},
		{"nodata-both.example", nil, ErrNoData},
		{"nx-servfail.example", nil, ErrServFail},
		{"servfail-nx.example", nil, ErrServFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs, err := r.LookupIP(context.Background(), tt.name)
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("addresses %v, want %v", got, tt.want)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("error %v, want nil", err)
				}
				return
			}
			checkErr(t, err, tt.wantErr, dns.Fqdn(tt.name))
		})
	}
}
