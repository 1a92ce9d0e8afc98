package dnscache

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// BenchmarkLookupWarm measures the cache hit path.
func BenchmarkLookupWarm(b *testing.B) {
	s := startZone(b, world)
	r := newResolver(b, Config{}, s.Addr)
	ctx := WithTally(context.Background(), new(Tally))
	calls := []struct {
		name string
		call func() error
	}{
		{"Lookup", func() error { _, err := r.Lookup(ctx, "host.example.", dns.TypeA); return err }},
		{"LookupIP", func() error { _, err := r.LookupIP(ctx, "host.example."); return err }},
		{"LookupTXT", func() error { _, err := r.LookupTXT(ctx, "txt.example."); return err }},
		{"NXDOMAIN", func() error {
			if _, err := r.LookupTXT(ctx, "nope.example."); !isNotFound(err) {
				return fmt.Errorf("got %v, want not found", err)
			}
			return nil
		}},
	}
	for _, c := range calls {
		if err := c.call(); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	if up := s.Queries(); up != 4 {
		b.Errorf("%d upstream queries, want 4 (cold lookups only)", up)
	}
}

// BenchmarkCacheMemory fills the cache with 100k names (one A record each,
// over the wire from dnsworld) and reports the heap it takes.
func BenchmarkCacheMemory(b *testing.B) {
	const n = 100000
	z := dnsworld.NewZone()
	for i := range n {
		z.AddRRs(&dns.A{
			Hdr: dns.RR_Header{Name: memName(i), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
			A:   net.IPv4(192, 0, byte(i>>8), byte(i)).To4(),
		})
	}
	s, err := dnsworld.Start(z)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for range b.N {
		// The heap the resolver holds: in use with it, less in use once it
		// is gone (so the server's own bookkeeping is not counted).
		r := newResolver(b, Config{Timeout: 5 * time.Second}, s.Addr)
		fillCache(b, r, n)
		if got := r.Stats().Entries; got != n {
			b.Fatalf("%d entries, want %d", got, n)
		}
		b.StopTimer()
		with := heapInUse()
		runtime.KeepAlive(r)
		r = nil
		without := heapInUse()
		b.StartTimer()
		b.ReportMetric(float64(with-without), "heap-B")
		b.ReportMetric(float64(with-without)/n, "B/entry")
	}
}

func memName(i int) string { return fmt.Sprintf("host-%06d.mail.example.net.", i) }

// fillCache looks up n names with 32 workers.
func fillCache(b *testing.B, r *Resolver, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if _, err := r.Lookup(context.Background(), memName(i), dns.TypeA); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
