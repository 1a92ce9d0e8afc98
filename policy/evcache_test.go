package policy_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// The evidence cache answers repeat clients without DNS, and only until the
// first DNS answer behind the evidence expires: a change in DNS is seen then.
func TestEvidenceCacheHonoursTTL(t *testing.T) {
	z := dnsworld.NewZone()
	for _, rr := range []string{
		"25.2.0.192.in-addr.arpa. 300 IN PTR mail.one-to-one.example.",
		"mail.one-to-one.example. 60 IN A 192.0.2.25",
	} {
		if err := z.AddRR(rr); err != nil {
			t.Fatal(err)
		}
	}
	z.SetNegativeTTL(120)
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
	opt := config.Default().PolicyOptions(res)
	opt.EvidenceCacheSize, opt.Now = 100, clock.Now
	eng := policy.New(opt)
	ip, helo := netip.MustParseAddr("192.0.2.25"), "mail.one-to-one.example"
	ctx := context.Background()

	d := eng.Evaluate(ctx, ip, helo)
	if d.Cached || d.Rule != "helo-equals-ptr" {
		t.Fatalf("first decision: rule %s cached %v", d.Rule, d.Cached)
	}
	queries := srv.Queries()
	clock.Add(59 * time.Second)
	if d := eng.Evaluate(ctx, ip, helo); !d.Cached || d.Rule != "helo-equals-ptr" {
		t.Fatalf("within the TTL: rule %s cached %v", d.Rule, d.Cached)
	}
	if srv.Queries() != queries {
		t.Fatalf("a cached decision asked DNS %d times", srv.Queries()-queries)
	}
	// The A record (TTL 60) changes and expires: the evidence must follow.
	z2 := dnsworld.NewZone()
	_ = z2.AddRR("25.2.0.192.in-addr.arpa. 300 IN PTR mail.one-to-one.example.")
	_ = z2.AddRR("mail.one-to-one.example. 60 IN A 192.0.2.26")
	srv.SetZone(z2)
	clock.Add(2 * time.Second)
	d = eng.Evaluate(ctx, ip, helo)
	if d.Cached || d.Evidence.IPRev != policy.IPRevFail {
		t.Fatalf("after the TTL: iprev %s cached %v, want fail from fresh DNS", d.Evidence.IPRev, d.Cached)
	}
}

// A HELO that needs no lookup (bare, a literal) is cached for as long as the
// reverse-DNS answers hold.
func TestEvidenceCacheWithoutHeloLookups(t *testing.T) {
	srv := office365World(t)
	res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	eng := policy.New(config.Default().PolicyOptions(res))
	ip := netip.MustParseAddr("192.0.2.25")
	for _, helo := range []string{"localhost", "[192.0.2.25]"} {
		first := eng.Evaluate(context.Background(), ip, helo)
		again := eng.Evaluate(context.Background(), ip, helo)
		if first.Cached || !again.Cached || again.Rule != first.Rule {
			t.Errorf("HELO %s: first %s cached %v, again %s cached %v", helo, first.Rule, first.Cached, again.Rule, again.Cached)
		}
	}
}
