package dnscache

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Stats are counters since New. Errors are counted per lookup that returned
// them, from the cache or not.
type Stats struct {
	Queries  int64 // lookups asked (Lookup calls; LookupIP counts two)
	Hits     int64 // answered from the cache
	Misses   int64 // not in the cache (or expired)
	Upstream int64 // queries sent to servers (UDP, TCP retries and fail-over included)
	Entries  int   // entries now in the cache

	NXDomain, NoData, ServFail, Refused, Timeout, Other int64
}

type counters struct {
	queries, hits, misses, upstream                     atomic.Int64
	nxdomain, nodata, servfail, refused, timeout, other atomic.Int64
}

func (c *counters) countError(k kind) {
	switch k {
	case kindNXDomain:
		c.nxdomain.Add(1)
	case kindNoData:
		c.nodata.Add(1)
	case kindServFail:
		c.servfail.Add(1)
	case kindRefused:
		c.refused.Add(1)
	case kindTimeout:
		c.timeout.Add(1)
	case kindOther:
		c.other.Add(1)
	}
}

// Stats returns a snapshot of the counters.
func (r *Resolver) Stats() Stats {
	c := &r.stats
	return Stats{
		Queries:  c.queries.Load(),
		Hits:     c.hits.Load(),
		Misses:   c.misses.Load(),
		Upstream: c.upstream.Load(),
		Entries:  r.cache.len(),
		NXDomain: c.nxdomain.Load(),
		NoData:   c.nodata.Load(),
		ServFail: c.servfail.Load(),
		Refused:  c.refused.Load(),
		Timeout:  c.timeout.Load(),
		Other:    c.other.Load(),
	}
}

// Tally counts the DNS work done for one decision. Attach it to a context with
// WithTally; every lookup made with that context (or one derived from it) adds
// to it. Upstream queries of a lookup shared with other callers are counted by
// the caller that started it. It also keeps the lookups that failed (see
// Failures).
type Tally struct {
	Lookups  atomic.Int64 // lookups asked
	Hits     atomic.Int64 // answered from the cache
	Upstream atomic.Int64 // queries sent to servers

	parent  *Tally       // the tally of the enclosing context, which counts too
	expires atomic.Int64 // earliest expiry (Unix ns) of the answers given; 0 = none yet

	mu       sync.Mutex
	failures []Failure // at most MaxFailures, one per name and type
}

// Failure is a lookup that failed: what the decision record names under
// dns_failures. NXDOMAIN and NODATA are answers, not failures.
type Failure struct {
	Name   string // the name looked up, as asked, without the trailing dot ("." for the root)
	Type   string // the record type: A, AAAA, PTR, TXT, MX
	Cause  Cause
	Server string // "ip:port" of the server whose failure this is (the last to fail, unless it was silent after another replied); "" if the budget ran out first
	Cached bool   // the failure came from the cache: it happened up to FailureTTL before
}

// MaxFailures bounds the failures a Tally keeps: the first ones, one per name
// and type. A decision whose DNS is down fails the same few lookups; more
// would only lengthen the log line.
const MaxFailures = 10

// failed adds f to t and the tallies it is nested in, unless a failure of the
// same name and type is there already or the list is full.
func (t *Tally) failed(f Failure) {
	if t == nil {
		return
	}
	if len(f.Name) > 1 {
		f.Name = strings.TrimSuffix(f.Name, ".")
	}
	t.each(func(t *Tally) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if len(t.failures) >= MaxFailures {
			return
		}
		for _, g := range t.failures {
			if g.Type == f.Type && strings.EqualFold(g.Name, f.Name) {
				return
			}
		}
		t.failures = append(t.failures, f)
	})
}

// Failures returns the lookups that failed under t, in the order they failed:
// at most MaxFailures, one per name and type (the first failure of each).
// Nil if none did.
func (t *Tally) Failures() []Failure {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.failures) == 0 {
		return nil
	}
	return append([]Failure(nil), t.failures...)
}

// typeString is the mnemonic of a record type, or TYPEnnn (RFC 3597).
func typeString(qtype uint16) string {
	if s, ok := dns.TypeToString[qtype]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(qtype))
}

// each runs f on t and the tallies it is nested in.
func (t *Tally) each(f func(*Tally)) {
	for ; t != nil; t = t.parent {
		f(t)
	}
}

// note records the expiry of an answer given under t. An answer that is not
// cached (zero expiry) makes the whole tally expire at once.
func (t *Tally) note(exp time.Time) {
	ns := int64(1)
	if !exp.IsZero() {
		ns = exp.UnixNano()
	}
	t.each(func(t *Tally) {
		for {
			cur := t.expires.Load()
			if cur != 0 && cur <= ns || t.expires.CompareAndSwap(cur, ns) {
				return
			}
		}
	})
}

// Expires is the earliest expiry of the answers given under t: until then,
// repeating the same lookups would give the same answers. Zero if there were
// none. A lookup that failed (not NXDOMAIN or NODATA) or did not finish
// makes it expire at once, however long the failure is cached: evidence built
// on DNS trouble is not kept, and each decision that meets the trouble reads
// the failure again (from the cache, for FailureTTL) and names it.
func (t *Tally) Expires() time.Time {
	ns := t.expires.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Track returns a context whose lookups are tallied in a new Tally nested in
// ctx's (which keeps counting), and that tally's Expires. It implements
// policy.Validity: the engine caches evidence until the first answer behind it
// expires.
func (r *Resolver) Track(ctx context.Context) (context.Context, func() time.Time) {
	t := &Tally{parent: tallyOf(ctx)}
	return WithTally(ctx, t), t.Expires
}

type tallyKey struct{}

// WithTally returns a context that carries t.
func WithTally(ctx context.Context, t *Tally) context.Context {
	return context.WithValue(ctx, tallyKey{}, t)
}

func tallyOf(ctx context.Context) *Tally {
	t, _ := ctx.Value(tallyKey{}).(*Tally)
	return t
}
