package dnscache

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/miekg/dns"
)

// key identifies a cache entry: lowercased absolute name and type (class IN).
type key struct {
	name  string
	qtype uint16
}

// entry is the classified outcome of a lookup: records, or a failure. It is
// never modified once built and is shared by every caller, so its records must
// be copied before they leave the package.
type entry struct {
	rrs     []dns.RR // records of the asked type at the end of the CNAME chain
	fail    *failure // nil when rrs holds the answer
	expires time.Time
}

// cache is an LRU of entries with per-entry expiry. It uses simplelru under its
// own mutex (rather than lru.Cache) so that "expired, remove" is atomic and
// cannot remove a fresh entry another goroutine has just stored.
type cache struct {
	mu  sync.Mutex
	lru *simplelru.LRU[key, *entry]
}

func newCache(size int) (*cache, error) {
	l, err := simplelru.NewLRU[key, *entry](size, nil)
	if err != nil {
		return nil, err
	}
	return &cache{lru: l}, nil
}

// get returns the entry for k if it has not expired at now. An expired entry is
// removed and reported as a miss.
func (c *cache) get(k key, now time.Time) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(k)
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		c.lru.Remove(k)
		return nil, false
	}
	return e, true
}

// add stores e unless it expires at or before now.
func (c *cache) add(k key, e *entry, now time.Time) {
	if !now.Before(e.expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Add(k, e)
}

func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// ttlSeconds converts a DNS TTL to a duration.
func ttlSeconds(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

// positiveTTL clamps the minimum TTL of an answer and its CNAME chain.
func (r *Resolver) positiveTTL(ttl uint32) time.Duration {
	return min(max(ttlSeconds(ttl), r.cfg.MinTTL), r.cfg.MaxTTL)
}

// negativeTTL returns the RFC 2308 TTL of a negative answer for name: the
// smaller of the SOA's TTL and MINIMUM, taken from an SOA in the authority
// section that encloses name, no more than chainTTL (the CNAME chain that led
// there) and MaxNegativeTTL. Without such an SOA it returns 0: not cached
// (RFC 2308 section 5).
func (r *Resolver) negativeTTL(m *dns.Msg, name string, chainTTL uint32) time.Duration {
	soa := findSOA(m, name)
	if soa == nil {
		return 0
	}
	ttl := min(soa.Hdr.Ttl, soa.Minttl, chainTTL)
	return min(ttlSeconds(ttl), r.cfg.MaxNegativeTTL)
}

func findSOA(m *dns.Msg, name string) *dns.SOA {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok && soa.Hdr.Class == dns.ClassINET && dns.IsSubDomain(soa.Hdr.Name, name) {
			return soa
		}
	}
	return nil
}
