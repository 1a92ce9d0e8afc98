package policy_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// seedScenario is the Office 365 scenario world, kept in the repository.
const seedScenario = "scenario/testdata/seed-office365.yaml"

func office365World(t testing.TB) *dnsworld.Server {
	t.Helper()
	f, err := scenario.Load(seedScenario)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := f.Serve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// 1000 concurrent decisions for the same cold client make one upstream query
// per name and type: the resolver's singleflight collapses the rest.
func TestConcurrentColdDecisionsShareQueries(t *testing.T) {
	srv := office365World(t)
	srv.SetDelay(50 * time.Millisecond) // keep the first queries in flight while the rest arrive
	res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng := policy.New(config.Default().PolicyOptions(res))
	ip := netip.MustParseAddr("104.47.38.131")
	const helo = "NAM02-BL2-obe.outbound.protection.outlook.com"
	var wg sync.WaitGroup
	rules := make([]string, 1000)
	for i := range rules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rules[i] = eng.Evaluate(context.Background(), ip, helo).Rule
		}()
	}
	wg.Wait()
	for i, r := range rules {
		if r != "generic-helo" {
			t.Fatalf("decision %d: rule %s", i, r)
		}
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"131.38.47.104.in-addr.arpa.", dns.TypePTR},
		{"mail-bl2nam02on0131.outbound.protection.outlook.com.", dns.TypeA},
		{"mail-bl2nam02on0131.outbound.protection.outlook.com.", dns.TypeAAAA},
		{"nam02-bl2-obe.outbound.protection.outlook.com.", dns.TypeA},
		{"nam02-bl2-obe.outbound.protection.outlook.com.", dns.TypeTXT},
		{"spf.protection.outlook.com.", dns.TypeTXT},
	} {
		if n := srv.QueriesFor(q.name, q.qtype); n != 1 {
			t.Errorf("%s %s: %d upstream queries, want 1", q.name, dns.TypeToString[q.qtype], n)
		}
	}
}

// BenchmarkColdOffice365 measures the Office 365 decision on a cold cache
// against a DNS server that takes 20 ms per answer, with the reverse lookups
// started at connect (as the milter does) and the HELO arriving 100 ms later.
// It reports the time from HELO to decision in round trips. Target: ≤ 3.
func BenchmarkColdOffice365(b *testing.B) {
	const rtt = 20 * time.Millisecond
	srv := office365World(b)
	srv.SetDelay(rtt)
	ip := netip.MustParseAddr("104.47.38.131")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}})
		if err != nil {
			b.Fatal(err)
		}
		eng := policy.New(config.Default().PolicyOptions(res))
		pending := eng.StartReverse(context.Background(), ip)
		time.Sleep(100 * time.Millisecond) // the client's banner, EHLO
		start := time.Now()
		d := eng.Decide(context.Background(), ip, "NAM02-BL2-obe.outbound.protection.outlook.com", pending)
		total += time.Since(start)
		if d.Rule != "generic-helo" {
			b.Fatalf("rule %s", d.Rule)
		}
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(rtt), "round-trips-after-helo")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-after-helo")
}

// BenchmarkColdNoHeadStart measures a cold decision when the reverse lookups
// get no head start (a client that says EHLO at once, or `heloguard check`):
// everything from the first query, against a DNS server that takes 20 ms per
// answer, in round trips.
func BenchmarkColdNoHeadStart(b *testing.B) {
	for _, c := range []struct{ name, file, ip, helo, rule string }{
		{"office365", seedScenario, "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com", "generic-helo"},
		{"sparkpost", "scenario/testdata/esp-ip-shaped.yaml", "156.70.34.223", "mta-70-34-223.sparkpostmail.com", "helo-equals-ptr"},
	} {
		b.Run(c.name, func(b *testing.B) {
			const rtt = 20 * time.Millisecond
			f, err := scenario.Load(c.file)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := f.Serve()
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			srv.SetDelay(rtt)
			ip := netip.MustParseAddr(c.ip)
			var total time.Duration
			for i := 0; i < b.N; i++ {
				res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}})
				if err != nil {
					b.Fatal(err)
				}
				eng := policy.New(config.Default().PolicyOptions(res))
				start := time.Now()
				d := eng.Evaluate(context.Background(), ip, c.helo)
				total += time.Since(start)
				if d.Rule != c.rule {
					b.Fatalf("rule %s, want %s", d.Rule, c.rule)
				}
			}
			b.ReportMetric(float64(total)/float64(b.N)/float64(rtt), "round-trips")
		})
	}
}

// BenchmarkDeadFirstServer: with dns.servers [dead, good], the first cold
// decision pays the dead server's timeout once; the cold decisions after it
// (other clients, nothing cached for them) go to the good server first. It
// reports both in milliseconds (BENCHMARKS.md).
func BenchmarkDeadFirstServer(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // reads queries, never answers
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	srv := office365World(b)
	clients := []struct{ ip, helo string }{
		{"104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com"},
		{"192.0.2.25", "mail.one-to-one.example"},
		{"192.0.2.66", "NAM02-BL2-obe.outbound.protection.outlook.com"},
		{"157.56.110.65", "na01-bn1-obe.outbound.protection.outlook.com"},
	}
	var first, next time.Duration
	nNext := 0
	for i := 0; i < b.N; i++ {
		res, err := dnscache.New(dnscache.Config{Servers: []string{pc.LocalAddr().String(), srv.Addr}, Timeout: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		eng := policy.New(config.Default().PolicyOptions(res))
		for j, c := range clients {
			start := time.Now()
			d := eng.Evaluate(context.Background(), netip.MustParseAddr(c.ip), c.helo)
			el := time.Since(start)
			if d.Rule == policy.RuleTimeout {
				b.Fatalf("%s: decision timeout", c.ip)
			}
			if j == 0 {
				first += el
			} else {
				next += el
				nNext++
			}
		}
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "first-ms")
	b.ReportMetric(float64(next.Microseconds())/1000/float64(nNext), "next-ms")
}
