package policy_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// brokenWorld is an engine over a resolver that may answer NXDOMAIN to
// everything (no records at all), probing the given names, with the built-in
// rules.
func healthEngine(t *testing.T, records []string, setup func(*dnsworld.Zone), ignore bool) (*policy.Engine, *policy.ResolverHealth) {
	t.Helper()
	z := dnsworld.NewZone()
	for _, r := range records {
		if err := z.AddRR(r); err != nil {
			t.Fatal(err)
		}
	}
	if setup != nil {
		setup(z)
	}
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Timeout: 500 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	opt := config.Default().PolicyOptions(res)
	opt.LocalNames = []string{"mx.receiver.example"}
	opt.Health = &policy.ResolverHealth{}
	opt.IgnoreBrokenResolver = ignore
	return policy.New(opt), opt.Health
}

var probeRecords = []string{
	"8.8.8.8.in-addr.arpa. 300 IN PTR dns.google.",
	"a.root-servers.net. 300 IN A 198.41.0.4",
}

func TestProbeResolver(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		records []string
		setup   func(*dnsworld.Zone)
		broken  bool
	}{
		{"truthful", probeRecords, nil, false},
		{"NXDOMAIN to everything", nil, nil, true},
		{"one probe answered", probeRecords[:1], nil, false},
		{"SERVFAIL proves nothing", nil, func(z *dnsworld.Zone) { z.AddFault("8.8.8.8.in-addr.arpa.", dns.TypeANY, dnsworld.FaultServfail) }, true},
		{"every probe SERVFAIL", nil, func(z *dnsworld.Zone) {
			z.AddFault("8.8.8.8.in-addr.arpa.", dns.TypeANY, dnsworld.FaultServfail)
			z.AddFault("a.root-servers.net.", dns.TypeANY, dnsworld.FaultServfail)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, h := healthEngine(t, tc.records, tc.setup, false)
			broken, changed, reason := eng.Probe(ctx)
			if broken != tc.broken || changed != tc.broken || reason == "" {
				t.Errorf("broken %v changed %v (%s), want broken %v", broken, changed, reason, tc.broken)
			}
			if b, _ := h.Broken(); b != tc.broken {
				t.Errorf("health says broken %v", b)
			}
		})
	}
}

// While the resolver looks broken, a refusal that rests on DNS is deferred;
// one that rests on the HELO's syntax alone stands; with on_broken_resolver:
// ignore, nothing changes.
func TestBrokenResolverDefers(t *testing.T) {
	ctx := context.Background()
	eng, h := healthEngine(t, nil, nil, false) // NXDOMAIN to everything
	ip := netip.MustParseAddr("203.0.113.7")
	if d := eng.Evaluate(ctx, ip, "mail.sender.example"); d.Rule != "no-ptr" || d.Action != policy.ActionReject {
		t.Fatalf("before probing: %s by %s, want reject by no-ptr", d.Action, d.Rule)
	}
	if broken, _, _ := eng.Probe(ctx); !broken {
		t.Fatal("an all-NXDOMAIN resolver does not look broken")
	}
	d := eng.Evaluate(ctx, ip, "mail.sender.example")
	if d.Rule != policy.RuleBrokenResolver || d.Action != policy.ActionTempfail || d.Reply.Code != 451 || d.Evidence.IPRev != policy.IPRevPermError {
		t.Errorf("broken resolver: %s by %s (%s), evidence iprev %s", d.Action, d.Rule, d.Reply, d.Evidence.IPRev)
	}
	if d := eng.Evaluate(ctx, ip, "localhost"); d.Rule != "helo-syntax" || d.Action != policy.ActionReject {
		t.Errorf("a bare HELO: %s by %s, want reject by helo-syntax (no DNS behind it)", d.Action, d.Rule)
	}
	h.Set(false, "")
	if d := eng.Evaluate(ctx, ip, "mail.sender.example"); d.Rule != "no-ptr" {
		t.Errorf("recovered: %s by %s, want no-ptr", d.Action, d.Rule)
	}
	ign, ih := healthEngine(t, nil, nil, true)
	ih.Set(true, "test")
	if d := ign.Evaluate(ctx, ip, "mail.sender.example"); d.Rule != "no-ptr" || d.Action != policy.ActionReject {
		t.Errorf("on_broken_resolver: ignore: %s by %s, want reject by no-ptr", d.Action, d.Rule)
	}
}

// The second signal: when nearly every distinct recent client has no PTR at
// all, the resolver is more likely lying than the world.
func TestResolverHealthShare(t *testing.T) {
	var h policy.ResolverHealth
	var changes []string
	h.OnChange = func(broken bool, reason string) {
		changes = append(changes, fmt.Sprintf("%v: %s", broken, reason))
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, byte(i / 256), byte(i % 256)}) }
	for i := 0; i < 49; i++ {
		h.Observe(ip(i), true, now)
	}
	if b, _ := h.Broken(); b {
		t.Fatal("broken after 49 clients: too few to say")
	}
	h.Observe(ip(49), true, now)
	if b, why := h.Broken(); !b || !strings.Contains(why, "50 of 50 distinct clients") {
		t.Fatalf("50 of 50 without PTR: broken %v (%s)", b, why)
	}
	for i := 50; i < 55; i++ { // 5 with a PTR: 50 of 55 = 91%
		h.Observe(ip(i), false, now)
	}
	if b, _ := h.Broken(); b {
		t.Error("still broken with 9% of clients resolving")
	}
	if len(changes) != 2 || !strings.HasPrefix(changes[0], "true: ") || !strings.HasPrefix(changes[1], "false") {
		t.Errorf("OnChange calls: %q", changes)
	}
	// The window forgets: 11 minutes later, one more client decides nothing.
	h.Observe(ip(1000), true, now.Add(11*time.Minute))
	if b, _ := h.Broken(); b {
		t.Error("broken on one client after the window")
	}
}
