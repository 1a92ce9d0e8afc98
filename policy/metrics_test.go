package policy_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every decision that asks the evidence cache is a hit or a miss (an expired
// entry is a miss); trusted clients do not ask. The entries are the current
// engine's, and a new engine (a reload) counts on in the same counters.
func TestEvidenceCacheMetrics(t *testing.T) {
	z := dnsworld.NewZone()
	for _, rr := range []string{
		"25.2.0.192.in-addr.arpa. 300 IN PTR mail.one-to-one.example.",
		"mail.one-to-one.example. 60 IN A 192.0.2.25",
	} {
		if err := z.AddRR(rr); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[policy.Engine]
	reg := prometheus.NewPedanticRegistry()
	m := policy.NewMetrics(reg, current.Load)
	newEngine := func() *policy.Engine {
		opt := config.Default().PolicyOptions(res)
		opt.EvidenceCacheSize, opt.Now, opt.Metrics = 100, clock.Now, m
		e := policy.New(opt)
		current.Store(e)
		return e
	}
	check := func(when string, hits, misses, entries float64) {
		t.Helper()
		want := map[string]float64{
			"heloguard_evidence_cache_hits_total":   hits,
			"heloguard_evidence_cache_misses_total": misses,
			"heloguard_evidence_cache_entries":      entries,
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			v := mf.GetMetric()[0]
			got := v.GetCounter().GetValue() + v.GetGauge().GetValue()
			if got != want[mf.GetName()] {
				t.Errorf("%s: %s = %v, want %v", when, mf.GetName(), got, want[mf.GetName()])
			}
			delete(want, mf.GetName())
		}
		if len(want) > 0 {
			t.Errorf("%s: not registered: %v", when, want)
		}
	}
	check("before any engine", 0, 0, 0)
	eng := newEngine()
	ctx := context.Background()
	ip, helo := netip.MustParseAddr("192.0.2.25"), "mail.one-to-one.example"
	eng.Evaluate(ctx, ip, helo)
	eng.Evaluate(ctx, ip, helo)
	eng.Evaluate(ctx, ip, helo)
	eng.Evaluate(ctx, netip.MustParseAddr("127.0.0.1"), helo) // trusted: no cache
	check("three decisions", 2, 1, 1)
	clock.Add(61 * time.Second) // the A record expired
	if d := eng.Evaluate(ctx, ip, helo); d.Cached {
		t.Fatal("expired evidence was used")
	}
	check("after the TTL", 2, 2, 1)
	eng = newEngine()
	check("a new engine", 2, 2, 0)
	eng.Evaluate(ctx, ip, helo)
	check("a new engine's first decision", 2, 3, 1)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}
