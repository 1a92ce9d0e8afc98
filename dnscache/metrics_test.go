package dnscache

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// Each query sent upstream is counted once, by type and with the outcome the
// resolver's own classification gives it, and timed by server.
func TestMetricsUpstreamOutcomes(t *testing.T) {
	records := []string{
		"host.example. 300 IN A 192.0.2.1",
		"tc.example. 300 IN A 192.0.2.2",
		"example. 300 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 300",
	}
	world := startZone(t, records,
		fault{"sf.example.", dns.TypeANY, dnsworld.FaultServfail},
		fault{"ref.example.", dns.TypeANY, dnsworld.FaultRefused},
		fault{"silent.example.", dns.TypeANY, dnsworld.FaultTimeout},
		fault{"tc.example.", dns.TypeA, dnsworld.FaultTruncate},
	)
	garbage := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		w.Write([]byte{0xde, 0xad}) // not a DNS message; then nothing
	})
	formerr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) { w.WriteMsg(reply(req, dns.RcodeFormatError)) })
	lame := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := reply(req, dns.RcodeSuccess)
		m.RecursionAvailable = false
		w.WriteMsg(m)
	})
	tests := []struct {
		name   string
		server string
		qname  string
		qtype  uint16
		want   map[string]float64 // outcome: queries
	}{
		{"answer", world.Addr, "host.example.", dns.TypeA, map[string]float64{OutcomeAnswer: 1}},
		{"nxdomain", world.Addr, "nope.example.", dns.TypeA, map[string]float64{OutcomeNXDomain: 1}},
		{"nodata", world.Addr, "host.example.", dns.TypeMX, map[string]float64{OutcomeNoData: 1}},
		{"servfail", world.Addr, "sf.example.", dns.TypeTXT, map[string]float64{OutcomeServFail: 1}},
		{"refused", world.Addr, "ref.example.", dns.TypePTR, map[string]float64{OutcomeRefused: 1}},
		{"timeout", world.Addr, "silent.example.", dns.TypeAAAA, map[string]float64{OutcomeTimeout: 1}},
		{"truncated, then TCP", world.Addr, "tc.example.", dns.TypeA, map[string]float64{OutcomeTruncated: 1, OutcomeAnswer: 1}},
		{"garbage", garbage, "host.example.", dns.TypeA, map[string]float64{OutcomeMalformed: 1}},
		{"FORMERR", formerr, "host.example.", dns.TypeA, map[string]float64{OutcomeMalformed: 1}},
		{"lame referral", lame, "host.example.", dns.TypeA, map[string]float64{OutcomeServFail: 1}},
		{"connection refused", closedPort(t), "host.example.", dns.TypeA, map[string]float64{OutcomeNetwork: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewPedanticRegistry())
			r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 1}, tt.server)
			r.Instrument(m)
			r.Lookup(context.Background(), tt.qname, tt.qtype)
			typ := dns.TypeToString[tt.qtype]
			var total float64
			for _, o := range Outcomes() {
				got := testutil.ToFloat64(m.queries.WithLabelValues(typ, o))
				if got != tt.want[o] {
					t.Errorf("%s %s: %s %v, want %v", tt.qname, typ, o, got, tt.want[o])
				}
				total += got
			}
			if n := testutil.CollectAndCount(m.queries); n != len(queryTypes())*len(Outcomes()) {
				t.Errorf("%d type and outcome series, want every one of %d types and %d outcomes", n, len(queryTypes()), len(Outcomes()))
			}
			if got := histogramCount(t, m.duration, r.Servers()[0]); got != uint64(total) {
				t.Errorf("%d timings for server %s, want one per query (%v)", got, r.Servers()[0], total)
			}
		})
	}
}

// A lookup is a cache hit or a miss; entries are the instrumented resolver's,
// and a resolver that replaces it keeps counting into the same counters.
func TestMetricsCache(t *testing.T) {
	s := startZone(t, []string{"host.example. 300 IN A 192.0.2.1", "other.example. 300 IN A 192.0.2.2"})
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	r := newResolver(t, Config{}, s.Addr)
	r.Instrument(m)
	ctx := context.Background()
	for range 3 {
		if _, err := r.Lookup(ctx, "host.example.", dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Lookup(ctx, "other.example.", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if h, ms := testutil.ToFloat64(m.hits), testutil.ToFloat64(m.misses); h != 2 || ms != 2 {
		t.Errorf("hits %v misses %v, want 2 and 2", h, ms)
	}
	if got := gauge(t, reg, "heloguard_dns_cache_entries"); got != 2 {
		t.Errorf("entries %v, want 2", got)
	}
	// A reload with another dns section: a new resolver, an empty cache, the
	// same counters.
	r2 := newResolver(t, Config{}, s.Addr)
	r2.Instrument(m)
	if got := gauge(t, reg, "heloguard_dns_cache_entries"); got != 0 {
		t.Errorf("entries of the new resolver %v, want 0", got)
	}
	r2.Lookup(ctx, "host.example.", dns.TypeA)
	r.Lookup(ctx, "host.example.", dns.TypeA) // the old one, still finishing sessions
	if h, ms := testutil.ToFloat64(m.hits), testutil.ToFloat64(m.misses); h != 3 || ms != 3 {
		t.Errorf("after the new resolver: hits %v misses %v, want 3 and 3", h, ms)
	}
	// A resolver that is not instrumented counts nowhere.
	r3 := newResolver(t, Config{}, s.Addr)
	r3.Lookup(ctx, "host.example.", dns.TypeA)
	if h, ms := testutil.ToFloat64(m.hits), testutil.ToFloat64(m.misses); h != 3 || ms != 3 {
		t.Errorf("an uninstrumented resolver counted: hits %v misses %v", h, ms)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// closedPort is a UDP address on loopback where nothing listens: a query
// there gets ICMP port unreachable, a connection refused.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func histogramCount(t *testing.T, h *prometheus.HistogramVec, server string) uint64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	h.Collect(ch)
	close(ch)
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "server" && l.GetValue() == server {
				return pb.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// heloguard_dns_server_preferred follows the server asked first: after the
// first server fails (port closed), the second is preferred.
func TestMetricsServerPreferred(t *testing.T) {
	good := startZone(t, []string{"host.example. 300 IN A 192.0.2.1"})
	dead := closedPort(t)
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	r := newResolver(t, Config{}, dead, good.Addr)
	r.Instrument(m)
	state := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() == "heloguard_dns_server_preferred" {
				for _, mm := range mf.GetMetric() {
					out[mm.GetLabel()[0].GetValue()] = mm.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	if s := state(); s[dead] != 1 || s[good.Addr] != 0 {
		t.Errorf("before any lookup: %v, want the first server preferred", s)
	}
	if _, err := r.Lookup(context.Background(), "host.example.", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if s := state(); s[dead] != 0 || s[good.Addr] != 1 {
		t.Errorf("after the first server failed: %v, want the second preferred", s)
	}
}
