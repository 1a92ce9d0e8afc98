package dnscache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// TestCacheTTL checks how long each kind of answer stays in the cache: one
// lookup, a second just before the TTL runs out (from the cache), a third when
// it has (from the server).
func TestCacheTTL(t *testing.T) {
	const soa = "neg.example. %d IN SOA ns.neg.example. h.neg.example. 1 2 3 4 %d"
	tests := []struct {
		name    string
		records []string
		faults  []fault
		negTTL  uint32 // dnsworld SetNegativeTTL, 0 = default
		cfg     Config
		qname   string
		qtype   uint16
		ttl     time.Duration // 0 = not cached
	}{
		{name: "positive", records: []string{"a.example. 60 IN A 192.0.2.1"}, qname: "a.example.", qtype: dns.TypeA, ttl: time.Minute},
		{name: "positive below MinTTL", records: []string{"a.example. 1 IN A 192.0.2.1"}, qname: "a.example.", qtype: dns.TypeA, ttl: 5 * time.Second},
		{name: "positive TTL 0", records: []string{"a.example. 0 IN A 192.0.2.1"}, qname: "a.example.", qtype: dns.TypeA, ttl: 5 * time.Second},
		{name: "MinTTL set", records: []string{"a.example. 1 IN A 192.0.2.1"}, cfg: Config{MinTTL: 10 * time.Second}, qname: "a.example.", qtype: dns.TypeA, ttl: 10 * time.Second},
		{name: "positive above MaxTTL", records: []string{"a.example. 86400 IN A 192.0.2.1"}, qname: "a.example.", qtype: dns.TypeA, ttl: time.Hour},
		{name: "MaxTTL set", records: []string{"a.example. 86400 IN A 192.0.2.1"}, cfg: Config{MaxTTL: 2 * time.Hour}, qname: "a.example.", qtype: dns.TypeA, ttl: 2 * time.Hour},
		{name: "CNAME chain minimum", records: []string{"c.example. 30 IN CNAME a.example.", "a.example. 300 IN A 192.0.2.1"}, qname: "C.example.", qtype: dns.TypeA, ttl: 30 * time.Second},
		{name: "CNAME chain minimum at the end", records: []string{"c.example. 300 IN CNAME a.example.", "a.example. 40 IN A 192.0.2.1"}, qname: "c.example.", qtype: dns.TypeA, ttl: 40 * time.Second},
		{name: "NXDOMAIN, SOA minimum below TTL", records: []string{fmt.Sprintf(soa, 900, 30)}, qname: "x.neg.example.", qtype: dns.TypeA, ttl: 30 * time.Second},
		{name: "NXDOMAIN, SOA TTL below minimum", records: []string{fmt.Sprintf(soa, 20, 300)}, qname: "x.neg.example.", qtype: dns.TypeA, ttl: 20 * time.Second},
		{name: "NXDOMAIN, capped", records: []string{fmt.Sprintf(soa, 7200, 7200)}, qname: "x.neg.example.", qtype: dns.TypeA, ttl: 15 * time.Minute},
		{name: "NXDOMAIN, cap set", records: []string{fmt.Sprintf(soa, 7200, 7200)}, cfg: Config{MaxNegativeTTL: time.Minute}, qname: "x.neg.example.", qtype: dns.TypeA, ttl: time.Minute},
		{name: "NXDOMAIN, synthesized SOA", negTTL: 45, qname: "x.example.", qtype: dns.TypeA, ttl: 45 * time.Second},
		{name: "NXDOMAIN, SOA TTL 0", records: []string{fmt.Sprintf(soa, 0, 300)}, qname: "x.neg.example.", qtype: dns.TypeA},
		{name: "NXDOMAIN at the end of a CNAME chain", records: []string{fmt.Sprintf(soa, 900, 300), "c.neg.example. 10 IN CNAME x.neg.example."}, qname: "c.neg.example.", qtype: dns.TypeA, ttl: 10 * time.Second},
		{name: "NODATA", records: []string{fmt.Sprintf(soa, 900, 30), "a.neg.example. 300 IN A 192.0.2.1"}, qname: "a.neg.example.", qtype: dns.TypeMX, ttl: 30 * time.Second},
		{name: "NODATA, capped", records: []string{fmt.Sprintf(soa, 90000, 90000), "a.neg.example. 300 IN A 192.0.2.1"}, qname: "a.neg.example.", qtype: dns.TypeMX, ttl: 15 * time.Minute},
		{name: "SERVFAIL", records: []string{"a.example. 60 IN A 192.0.2.1"}, faults: []fault{{"a.example.", dns.TypeA, dnsworld.FaultServfail}}, qname: "a.example.", qtype: dns.TypeA, ttl: 5 * time.Second},
		{name: "REFUSED, FailureTTL set", faults: []fault{{"a.example.", dns.TypeA, dnsworld.FaultRefused}}, cfg: Config{FailureTTL: 30 * time.Second}, qname: "a.example.", qtype: dns.TypeA, ttl: 30 * time.Second},
		{name: "SERVFAIL, failures not cached", faults: []fault{{"a.example.", dns.TypeA, dnsworld.FaultServfail}}, cfg: Config{FailureTTL: -1}, qname: "a.example.", qtype: dns.TypeA},
		{name: "timeout", faults: []fault{{"a.example.", dns.TypeA, dnsworld.FaultTimeout}}, cfg: Config{Timeout: 50 * time.Millisecond}, qname: "a.example.", qtype: dns.TypeA, ttl: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startZone(t, tt.records, tt.faults...)
			if tt.negTTL != 0 {
				z := dnsworld.NewZone()
				z.SetNegativeTTL(tt.negTTL)
				s.SetZone(z)
			}
			clk := newClock()
			cfg := tt.cfg
			cfg.Now = clk.Now
			cfg.Attempts = 1
			r := newResolver(t, cfg, s.Addr)
			checkExpiry(t, r, clk, tt.qname, tt.qtype, tt.ttl, func() int64 { return s.QueriesFor(tt.qname, tt.qtype) })
		})
	}
}

// checkExpiry checks that an answer is cached for exactly ttl (0: not cached).
func checkExpiry(t *testing.T, r *Resolver, clk *clock, name string, qtype uint16, ttl time.Duration, queries func() int64) {
	t.Helper()
	ctx := context.Background()
	_, err1 := r.Lookup(ctx, name, qtype)
	if queries() != 1 {
		t.Fatalf("%d queries after the first lookup, want 1", queries())
	}
	step := ttl - time.Second
	if ttl == 0 {
		step = 0
	}
	clk.Advance(step)
	_, err2 := r.Lookup(ctx, name, qtype)
	if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
		t.Errorf("second lookup: %v, want %v", err2, err1)
	}
	if ttl > 0 && queries() != 1 {
		t.Errorf("%d queries after %v, want it cached for %v", queries(), step, ttl)
	}
	if ttl == 0 && queries() != 2 {
		t.Errorf("%d queries after 2 lookups, want it not cached", queries())
	}
	clk.Advance(time.Second)
	r.Lookup(ctx, name, qtype)
	if want := int64(2); ttl > 0 && queries() != want {
		t.Errorf("%d queries after %v, want %d: cached longer than %v", queries(), ttl, want, ttl)
	}
}

// RFC 2308 section 5: a negative answer without an SOA is not cached.
func TestNegativeWithoutSOANotCached(t *testing.T) {
	for _, rcode := range []int{dns.RcodeNameError, dns.RcodeSuccess} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			var mu sync.Mutex
			var n int64
			addr := startCustom(t, func(w dns.ResponseWriter, req *dns.Msg) {
				mu.Lock()
				n++
				mu.Unlock()
				w.WriteMsg(reply(req, rcode))
			})
			clk := newClock()
			r := newResolver(t, Config{Now: clk.Now}, addr)
			checkExpiry(t, r, clk, "x.example.", dns.TypeA, 0, func() int64 {
				mu.Lock()
				defer mu.Unlock()
				return n
			})
		})
	}
}

// 100 concurrent identical lookups (names differing in case) make one query.
func TestConcurrentLookupsShareOneQuery(t *testing.T) {
	s := startZone(t, []string{"host.example. 300 IN A 192.0.2.1"})
	s.SetDelay(200 * time.Millisecond)
	r := newResolver(t, Config{Timeout: time.Second}, s.Addr)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		name := "host.example."
		if i%2 == 1 {
			name = "HOST.Example"
		}
		wg.Go(func() {
			rrs, err := r.Lookup(context.Background(), name, dns.TypeA)
			if err == nil && len(rrs) != 1 {
				err = errors.New("no record")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := s.QueriesFor("host.example.", dns.TypeA); got != 1 {
		t.Errorf("%d upstream queries, want 1", got)
	}
	if st := r.Stats(); st.Upstream != 1 || st.Queries != 100 || st.Misses+st.Hits != 100 {
		t.Errorf("Stats %+v, want 1 upstream of 100 queries", st)
	}
}

// A caller that gives up does not fail the others waiting for the same query.
func TestCanceledCallerKeepsFlight(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startZone(t, []string{"host.example. 300 IN A 192.0.2.1"})
			s.SetDelay(300 * time.Millisecond)
			r := newResolver(t, Config{Timeout: time.Second}, s.Addr)
			ctx1, cancel1 := tt.ctx()
			defer cancel1()
			err1 := make(chan error, 1)
			go func() {
				_, err := r.Lookup(ctx1, "host.example.", dns.TypeA)
				err1 <- err
			}()
			for s.Queries() == 0 { // the first caller leads the flight
				time.Sleep(time.Millisecond)
			}
			err2 := make(chan error, 1)
			go func() {
				_, err := r.Lookup(context.Background(), "host.example.", dns.TypeA)
				err2 <- err
			}()
			time.Sleep(20 * time.Millisecond)
			if tt.wantErr == context.Canceled {
				cancel1()
			}
			select {
			case err := <-err1:
				if err == nil || !errors.Is(err, tt.wantErr) {
					t.Fatalf("first caller: %v, want %v", err, tt.wantErr)
				}
				if de, ok := err.(*net.DNSError); !ok || !de.IsTemporary || de.IsNotFound || de.IsTimeout != (tt.wantErr == context.DeadlineExceeded) {
					t.Errorf("first caller: %#v", err)
				}
			case <-time.After(150 * time.Millisecond):
				t.Fatal("first caller still waits after its context ended")
			}
			if err := <-err2; err != nil {
				t.Fatalf("second caller: %v", err)
			}
			if got := s.Queries(); got != 1 {
				t.Errorf("%d queries, want 1", got)
			}
			// the answer is cached although its first caller left
			if _, err := r.Lookup(context.Background(), "host.example.", dns.TypeA); err != nil || s.Queries() != 1 {
				t.Errorf("third lookup: %v, %d queries", err, s.Queries())
			}
		})
	}
}

func TestCanceledBeforeLookup(t *testing.T) {
	s := startZone(t, []string{"host.example. 300 IN A 192.0.2.1"})
	r := newResolver(t, Config{}, s.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.LookupMX(ctx, "host.example.")
	if !errors.Is(err, context.Canceled) || s.Queries() != 0 {
		t.Errorf("got %v after %d queries, want context.Canceled and none", err, s.Queries())
	}
}

// An answer larger than maxCachedAnswer is used, and not cached: the cache
// counts entries, and such answers would make each one weigh 64 KiB.
func TestHugeAnswerNotCached(t *testing.T) {
	huge := "huge.example. 300 IN TXT" + strings.Repeat(` "`+strings.Repeat("h", 255)+`"`, 40) // about 10 KiB
	s := startZone(t, []string{huge, `small.example. 300 IN TXT "v=spf1 -all"`})
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name    string
		queries int64 // upstream queries for two lookups
		cached  bool
	}{
		{"huge.example.", 4, false}, // each time over UDP (truncated), then TCP
		{"small.example.", 1, true},
	}
	for _, tt := range tests {
		var tally Tally
		ctx := WithTally(context.Background(), &tally)
		for range 2 {
			if txts, err := r.LookupTXT(ctx, tt.name); err != nil || len(txts) != 1 {
				t.Fatalf("%s: %d records, %v", tt.name, len(txts), err)
			}
		}
		if got := s.QueriesFor(tt.name, dns.TypeTXT); got != tt.queries {
			t.Errorf("%s: %d queries, want %d", tt.name, got, tt.queries)
		}
		// Evidence built on an answer that is not cached is not kept either.
		if expiresAtOnce := tally.Expires() == time.Unix(0, 1); expiresAtOnce == tt.cached {
			t.Errorf("%s: tally expires %v", tt.name, tally.Expires())
		}
	}
}
