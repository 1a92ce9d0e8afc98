package policy

import (
	"context"
	"net/netip"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Validity is implemented by resolvers that know how long their answers stay
// true (dnscache does, from record TTLs and RFC 2308 negative TTLs). Track
// returns a context to do lookups under, and a function that reports the
// earliest expiry among the answers given under it so far.
type Validity interface {
	Track(ctx context.Context) (context.Context, func() time.Time)
}

// evidenceCache keeps the evidence of recent (IP, HELO) pairs until the first
// DNS answer behind it expires, so that a client that connects again — the
// common case for a busy sender — is judged without repeating the SPF
// evaluation. Rules are applied afresh on every decision.
type evidenceCache struct {
	lru     *lru.Cache[evKey, *evEntry]
	now     func() time.Time
	metrics *Metrics
}

type evKey struct {
	ip   netip.Addr
	helo string // as sent; the case matters to nothing but is cheap to keep exact
}

type evEntry struct {
	ev      Evidence
	expires time.Time
}

func newEvidenceCache(size int, m *Metrics) *evidenceCache {
	if size <= 0 {
		return nil
	}
	c, err := lru.New[evKey, *evEntry](size)
	if err != nil {
		return nil
	}
	return &evidenceCache{lru: c, now: time.Now, metrics: m}
}

func (c *evidenceCache) get(ip netip.Addr, helo string) (Evidence, bool) {
	if c == nil {
		return Evidence{}, false
	}
	e, ok := c.lru.Get(evKey{ip, helo})
	if !ok {
		c.metrics.miss()
		return Evidence{}, false
	}
	if !c.now().Before(e.expires) {
		c.lru.Remove(evKey{ip, helo})
		c.metrics.miss()
		return Evidence{}, false
	}
	c.metrics.hit()
	return e.ev, true
}

func (c *evidenceCache) add(ip netip.Addr, helo string, ev Evidence, expires time.Time) {
	if c == nil || !c.now().Before(expires) {
		return
	}
	c.lru.Add(evKey{ip, helo}, &evEntry{ev: ev, expires: expires})
}
