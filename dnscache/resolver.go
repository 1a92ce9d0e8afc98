// Package dnscache is heloguard's stub resolver: it sends queries with RD set to
// recursive servers (RFC 1034, RFC 1035) over UDP with EDNS0, retries over TCP
// on truncation, follows CNAME chains (including those of classless reverse
// delegation, RFC 2317) and caches answers, negative answers (RFC 2308) and
// failures in an LRU with a per-entry expiry. Concurrent identical lookups
// share one query.
//
// Every failure is a bare *net.DNSError, following the standard library's
// convention (IsNotFound for NXDOMAIN and NODATA, IsTemporary and IsTimeout for
// the rest), with UnwrapErr set to one of ErrNXDomain, ErrNoData, ErrServFail,
// ErrRefused or ErrTimeout. A Tally on the lookup's context also names every
// lookup that failed and why (a Cause: timeout, servfail, garbage, ...),
// whether it failed just now or its failure came from the cache.
package dnscache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Config configures a Resolver. The zero value of a field means its default.
type Config struct {
	// Servers are the recursive servers, "host:port" with an IP address for
	// host ("[::1]:53" for IPv6). Empty means the nameservers of
	// /etc/resolv.conf.
	Servers []string
	// Timeout is the time one attempt may take; default 2s.
	Timeout time.Duration
	// Attempts is the total number of attempts, spread over the servers
	// round-robin; default 2 per server, at most 6 (but every server once).
	Attempts int
	// CacheSize is the number of cache entries; default 100000.
	CacheSize int
	// MinTTL and MaxTTL clamp the TTL of positive answers; default 5s, 1h.
	MinTTL, MaxTTL time.Duration
	// MaxNegativeTTL caps the RFC 2308 TTL of NXDOMAIN and NODATA; default 15m.
	MaxNegativeTTL time.Duration
	// FailureTTL is how long SERVFAIL, REFUSED, timeouts and other failures
	// are cached; default 5s, negative means not cached.
	FailureTTL time.Duration
	// Now is the clock of the cache; default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultCacheSize      = 100000
	DefaultMinTTL         = 5 * time.Second
	DefaultMaxTTL         = time.Hour
	DefaultMaxNegativeTTL = 15 * time.Minute
	DefaultFailureTTL     = 5 * time.Second
	maxDefaultAttempts    = 6
	maxCNAMEHops          = 10
	// maxCachedAnswer bounds the size of an answer kept in the cache (its
	// records' wire size, uncompressed): the cache counts entries, and a
	// client that names its own domain in the HELO could otherwise fill each
	// with a TXT record of 64 KiB. Real answers, SPF's TXT sets included,
	// are well under it; a larger one is used, and asked for again next time.
	maxCachedAnswer = 8 << 10
	resolvConf      = "/etc/resolv.conf"
)

// Resolver is a caching stub resolver. It is safe for concurrent use.
type Resolver struct {
	cfg    Config
	cache  *cache
	flight singleflight.Group
	stats  counters

	// preferred is the index of the server that last gave a usable answer:
	// the first one asked.
	preferred atomic.Uint32
	// preferredAt is when a server other than the first became preferred
	// (unix nanoseconds): after retryFirstAfter the first server, the
	// operator's choice, is asked first again, so that it returns to service
	// once it answers.
	preferredAt atomic.Int64

	udpBufs sync.Pool // *[]byte of dns.MaxMsgSize, to read UDP replies
	metrics *Metrics  // nil: not counted (Instrument)
}

// New returns a Resolver for cfg.
func New(cfg Config) (*Resolver, error) {
	if len(cfg.Servers) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("dnscache: no servers given and %w", err)
		}
		for _, s := range cc.Servers {
			cfg.Servers = append(cfg.Servers, net.JoinHostPort(s, cc.Port))
		}
		if len(cfg.Servers) == 0 {
			return nil, fmt.Errorf("dnscache: no servers given and none in %s", resolvConf)
		}
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		a, err := parseServer(s)
		if err != nil {
			return nil, err
		}
		servers[i] = a
	}
	cfg.Servers = servers
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = min(2*len(servers), max(maxDefaultAttempts, len(servers)))
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.MinTTL <= 0 {
		cfg.MinTTL = DefaultMinTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.MinTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("dnscache: MinTTL %v is above MaxTTL %v", cfg.MinTTL, cfg.MaxTTL)
	}
	if cfg.MaxNegativeTTL <= 0 {
		cfg.MaxNegativeTTL = DefaultMaxNegativeTTL
	}
	if cfg.FailureTTL == 0 {
		cfg.FailureTTL = DefaultFailureTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c, err := newCache(cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("dnscache: %w", err)
	}
	r := &Resolver{cfg: cfg, cache: c}
	r.udpBufs.New = func() any {
		b := make([]byte, dns.MaxMsgSize)
		return &b
	}
	return r, nil
}

// parseServer checks a server address and returns it as "ip:port".
func parseServer(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("dnscache: bad server address %q: want ip:port, like 192.0.2.1:53 or [2001:db8::1]:53", s)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("dnscache: bad server address %q: %q is not an IP address", s, host)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("dnscache: bad server address %q: bad port %q", s, port)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// Servers returns the servers the resolver asks, as it resolved them
// (from Config.Servers or /etc/resolv.conf).
func (r *Resolver) Servers() []string { return append([]string(nil), r.cfg.Servers...) }

// Purge empties the cache.
func (r *Resolver) Purge() { r.cache.purge() }

// Lookup returns the records of type qtype for name (made absolute), CNAMEs
// followed: the records are those at the end of the chain, without the
// CNAMEs (unless qtype is CNAME). It answers from the cache if it can, or
// else asks the servers, sharing the query with concurrent identical lookups.
// The records are the caller's to keep and modify.
func (r *Resolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	e, err := r.lookup(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	out := make([]dns.RR, len(e.rrs))
	for i, rr := range e.rrs {
		out[i] = dns.Copy(rr)
	}
	return out, nil
}

// lookup returns the shared cache entry for name and qtype, whose records
// must not be modified, or the error of the lookup.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (*entry, error) {
	fqdn := dns.Fqdn(name)
	r.stats.queries.Add(1)
	t := tallyOf(ctx)
	t.each(func(t *Tally) { t.Lookups.Add(1) })
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return nil, r.fail(&failure{kind: kindNXDomain, text: "invalid domain name"}, fqdn)
	}
	k := key{strings.ToLower(fqdn), qtype}
	if e, ok := r.cache.get(k, r.cfg.Now()); ok {
		r.stats.hits.Add(1)
		r.metrics.cacheHit()
		t.each(func(t *Tally) { t.Hits.Add(1) })
		return r.result(t, e, fqdn, qtype, true)
	}
	r.stats.misses.Add(1)
	r.metrics.cacheMiss()
	if ctx.Err() != nil {
		return nil, r.canceled(ctx, t, fqdn, qtype)
	}
	ch := r.flight.DoChan(k.name+"/"+strconv.Itoa(int(qtype)), func() (any, error) {
		return r.fly(ctx, k, fqdn), nil
	})
	select {
	case res := <-ch:
		return r.result(t, res.Val.(*entry), fqdn, qtype, false)
	case <-ctx.Done():
		return nil, r.canceled(ctx, t, fqdn, qtype)
	}
}

// result returns what a lookup of name and qtype gives from entry e, and notes
// it in the tally: its expiry, and the failure if it is one. A failure expires
// the tally at once (no evidence built on it is kept), however long the cache
// keeps it.
func (r *Resolver) result(t *Tally, e *entry, name string, qtype uint16, cached bool) (*entry, error) {
	if e.fail == nil {
		t.note(e.expires)
		return e, nil
	}
	if e.fail.temporary() {
		t.note(time.Time{})
		t.failed(Failure{Name: name, Type: typeString(qtype), Cause: e.fail.why, Server: e.fail.server, Cached: cached})
	} else {
		t.note(e.expires)
	}
	return nil, r.fail(e.fail, name)
}

func (r *Resolver) fail(f *failure, name string) *net.DNSError {
	r.stats.countError(f.kind)
	return f.dnsError(name)
}

// canceled is the error for a caller whose ctx ended before the answer came.
// A deadline (the decision's budget) is a timeout of the lookup; a
// cancellation (the connection went away) is no DNS trouble and is not
// reported as a failure.
func (r *Resolver) canceled(ctx context.Context, t *Tally, name string, qtype uint16) *net.DNSError {
	t.note(time.Time{}) // no answer: what was gathered must not be cached
	e := ctxError(ctx, name)
	f := ctxFailure(ctx.Err())
	r.stats.countError(f.kind)
	if f.why != "" {
		t.failed(Failure{Name: name, Type: typeString(qtype), Cause: f.why})
	}
	return e
}

// fly is the shared part of a lookup. It runs on a context detached from the
// caller's, with a budget of its own, so that one caller giving up does not
// fail the others.
func (r *Resolver) fly(ctx context.Context, k key, name string) *entry {
	if e, ok := r.cache.get(k, r.cfg.Now()); ok {
		return e
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout*time.Duration(r.cfg.Attempts))
	defer cancel()
	e := r.resolve(ctx, name, k.qtype)
	r.cache.add(k, e, r.cfg.Now())
	return e
}

// resolve queries for name and qtype and classifies the answer. It follows
// the CNAME chain in the answer and asks again for the target when the chain
// stops short.
func (r *Resolver) resolve(ctx context.Context, name string, qtype uint16) *entry {
	cur := name
	seen := map[string]bool{strings.ToLower(name): true}
	chainTTL := uint32(math.MaxUint32)
	hops := 0
	for {
		msg, server, f := r.exchange(ctx, cur, qtype)
		now := r.cfg.Now()
		if f != nil {
			return r.failed(f, now)
		}
		asked := cur
		for {
			var rrs []dns.RR
			var next *dns.CNAME
			ttl := chainTTL
			for _, rr := range msg.Answer {
				h := rr.Header()
				if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, cur) {
					continue
				}
				if h.Rrtype == qtype {
					rrs = append(rrs, rr)
					ttl = min(ttl, h.Ttl)
				} else if c, ok := rr.(*dns.CNAME); ok && next == nil {
					next = c
				}
			}
			if len(rrs) > 0 {
				e := &entry{rrs: slices.Clip(rrs), expires: now.Add(r.positiveTTL(ttl))}
				if answerSize(rrs) > maxCachedAnswer {
					e.expires = time.Time{} // used, not cached
				}
				return e
			}
			if next == nil {
				break
			}
			hops++
			target := strings.ToLower(dns.Fqdn(next.Target))
			if seen[target] {
				return r.failed(&failure{kind: kindServFail, why: CauseCNAMELoop, text: "CNAME loop", server: server}, now)
			}
			if hops > maxCNAMEHops {
				return r.failed(&failure{kind: kindServFail, why: CauseCNAMELoop, text: "CNAME chain too long", server: server}, now)
			}
			seen[target] = true
			chainTTL = min(chainTTL, next.Hdr.Ttl)
			cur = dns.Fqdn(next.Target)
		}
		if msg.Rcode == dns.RcodeNameError {
			return r.negative(kindNXDomain, msg, cur, chainTTL, server, now)
		}
		if cur != asked && findSOA(msg, cur) == nil {
			continue // the chain stops short: ask for its target
		}
		return r.negative(kindNoData, msg, cur, chainTTL, server, now)
	}
}

// answerSize is the wire size of records, uncompressed.
func answerSize(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		n += dns.Len(rr)
	}
	return n
}

func (r *Resolver) negative(k kind, msg *dns.Msg, name string, chainTTL uint32, server string, now time.Time) *entry {
	e := &entry{fail: &failure{kind: k, server: server}}
	if ttl := r.negativeTTL(msg, name, chainTTL); ttl > 0 {
		e.expires = now.Add(ttl)
	}
	return e
}

func (r *Resolver) failed(f *failure, now time.Time) *entry {
	e := &entry{fail: f}
	if r.cfg.FailureTTL > 0 {
		e.expires = now.Add(r.cfg.FailureTTL)
	}
	return e
}

// LookupPTR returns the PTR names of ip (IPv4-mapped IPv6 addresses are
// looked up as IPv4), CNAMEs followed (RFC 2317).
func (r *Resolver) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, error) {
	if !ip.IsValid() {
		return nil, &net.DNSError{Err: "unrecognized address", Name: ip.String(), IsNotFound: true, UnwrapErr: ErrNXDomain}
	}
	name, err := dns.ReverseAddr(ip.Unmap().WithZone("").String())
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: ip.String(), IsNotFound: true, UnwrapErr: ErrNXDomain}
	}
	e, err := r.lookup(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(e.rrs))
	for _, rr := range e.rrs {
		if p, ok := rr.(*dns.PTR); ok {
			names = append(names, p.Ptr)
		}
	}
	return names, nil
}

// LookupIP returns the A and then the AAAA addresses of name, asked for
// concurrently. If one type has addresses and the other failed with "not
// found", the error is nil; if the other failed otherwise, the addresses come
// back with that error. The root name "." (null MX) is not found without a
// query.
func (r *Resolver) LookupIP(ctx context.Context, name string) ([]netip.Addr, error) {
	fqdn := dns.Fqdn(name)
	if fqdn == "." {
		return nil, (&failure{kind: kindNoData}).dnsError(fqdn)
	}
	var (
		wg   sync.WaitGroup
		e6   *entry
		err6 error
	)
	wg.Go(func() { e6, err6 = r.lookup(ctx, fqdn, dns.TypeAAAA) })
	e4, err4 := r.lookup(ctx, fqdn, dns.TypeA)
	wg.Wait()

	var addrs []netip.Addr
	if err4 == nil {
		for _, rr := range e4.rrs {
			if a, ok := rr.(*dns.A); ok {
				if ip, ok := netip.AddrFromSlice(a.A); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
		}
	}
	if err6 == nil {
		for _, rr := range e6.rrs {
			if a, ok := rr.(*dns.AAAA); ok {
				if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
					addrs = append(addrs, ip)
				}
			}
		}
	}
	switch {
	case err4 == nil && err6 == nil:
		return addrs, nil
	case err4 == nil || err6 == nil:
		if isNotFound(err4) || isNotFound(err6) {
			return addrs, nil
		}
		return addrs, cmp.Or(err4, err6)
	case isNotFound(err4) && isNotFound(err6):
		if errors.Is(err6, ErrNXDomain) {
			return nil, err6
		}
		return nil, err4
	case isNotFound(err4):
		return nil, err6
	default:
		return nil, err4
	}
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// LookupTXT returns each TXT record of name as one string: its
// character-strings unescaped to raw bytes and joined with no separator.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	e, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	txts := make([]string, 0, len(e.rrs))
	for _, rr := range e.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, joinTXT(t.Txt))
		}
	}
	return txts, nil
}

// LookupMX returns the MX records of name, sorted by preference.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	e, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	mxs := make([]*net.MX, 0, len(e.rrs))
	for _, rr := range e.rrs {
		if m, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, &net.MX{Host: m.Mx, Pref: m.Preference})
		}
	}
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	return mxs, nil
}
