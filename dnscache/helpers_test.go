package dnscache

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// policyResolver is policy.Resolver, redefined here so that dnscache does not
// import policy.
type policyResolver interface {
	LookupPTR(ctx context.Context, ip netip.Addr) ([]string, error)
	LookupIP(ctx context.Context, name string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

var _ policyResolver = (*Resolver)(nil)

// clock is a fake clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startZone serves the records (zone-file lines) and faults with dnsworld.
func startZone(t testing.TB, lines []string, faults ...fault) *dnsworld.Server {
	t.Helper()
	z := dnsworld.NewZone()
	for _, l := range lines {
		if err := z.AddRR(l); err != nil {
			t.Fatalf("AddRR(%q): %v", l, err)
		}
	}
	for _, f := range faults {
		z.AddFault(f.name, f.qtype, f.fault)
	}
	s, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type fault struct {
	name  string
	qtype uint16
	fault dnsworld.Fault
}

// newResolver returns a resolver for servers with short timeouts.
func newResolver(t testing.TB, cfg Config, servers ...string) *Resolver {
	t.Helper()
	cfg.Servers = servers
	if cfg.Timeout == 0 {
		cfg.Timeout = 250 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startCustom serves h on 127.0.0.1, UDP and TCP on the same port, for the
// situations dnsworld cannot produce.
func startCustom(t testing.TB, h dns.HandlerFunc) string {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", l.Addr().String()); err == nil {
			ln = l
			break
		}
		l.Close()
	}
	if ln == nil {
		t.Fatal("no free port for UDP and TCP")
	}
	return serve(t, pc, ln, h)
}

func serve(t testing.TB, pc net.PacketConn, ln net.Listener, h dns.HandlerFunc) string {
	t.Helper()
	var started sync.WaitGroup
	var servers []*dns.Server
	if pc != nil {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: h})
	}
	if ln != nil {
		servers = append(servers, &dns.Server{Listener: ln, Handler: h})
	}
	for _, s := range servers {
		started.Add(1)
		s.NotifyStartedFunc = started.Done
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	started.Wait()
	if pc != nil {
		return pc.LocalAddr().String()
	}
	return ln.Addr().String()
}

// reply returns a recursive server's reply to req.
func reply(req *dns.Msg, rcode int, answer ...dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	m.Answer = answer
	return m
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkErr checks that err is a bare *net.DNSError of the given kind.
func checkErr(t *testing.T, err error, want error, name string) {
	t.Helper()
	de, ok := err.(*net.DNSError)
	if !ok {
		t.Fatalf("error %T %v, want a bare *net.DNSError", err, err)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v (UnwrapErr %v), want errors.Is %v", err, de.UnwrapErr, want)
	}
	if name != "" && de.Name != name {
		t.Errorf("error Name %q, want %q", de.Name, name)
	}
	notFound := want == ErrNXDomain || want == ErrNoData
	if de.IsNotFound != notFound || de.IsTemporary == notFound {
		t.Errorf("error %v: IsNotFound %v IsTemporary %v, want %v %v", err, de.IsNotFound, de.IsTemporary, notFound, !notFound)
	}
	timeout := want == ErrTimeout || want == context.DeadlineExceeded
	if de.IsTimeout != timeout {
		t.Errorf("error %v: IsTimeout %v, want %v", err, de.IsTimeout, timeout)
	}
}
