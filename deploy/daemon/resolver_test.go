package daemon_test

import (
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
)

// A resolver that answers NXDOMAIN to everything (a broken split horizon, a
// container's DNS) must not turn every client into "550 no reverse DNS": the
// daemon's probes find it out at start, it says so in its log, and refusals
// that rest on DNS are deferred with a 451 until the resolver recovers.
func TestLyingResolverDefers(t *testing.T) {
	srv, err := dnsworld.Start(dnsworld.NewZone()) // no records: NXDOMAIN to every question
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bin := e2e.Build(t)
	d := e2e.StartDaemon(t, bin, e2e.Config{DNS: srv.Addr, Probes: []string{"PTR 8.8.8.8", "A a.root-servers.net"}})
	if !e2e.WaitFor(10*time.Second, func() bool { return strings.Contains(d.Stderr(), "the DNS resolver looks broken") }) {
		t.Fatalf("no warning about the resolver in the log:\n%s", d.Stderr())
	}
	c := gomilter.NewClient("tcp", d.Addr)
	cs, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return cs.Conn("[203.0.113.7]", gomilter.FamilyInet, 40000, "203.0.113.7")
		},
		func() (*gomilter.Action, error) { return cs.Helo("mail.sender.example") },
		func() (*gomilter.Action, error) { return cs.Mail("<a@sender.example>", "") },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := cs.Rcpt("<user@receiver.example>", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != gomilter.ActionRejectWithCode || a.SMTPCode != 451 || !strings.Contains(a.SMTPReply, "resolver looks broken") {
		t.Errorf("RCPT got %v %d %q, want 451 …resolver looks broken…", a, a.SMTPCode, a.SMTPReply)
	}
	cs.Close()
	ds, raw := d.WaitDecision(t, "203.0.113.7", 40000)
	if len(ds) != 1 || ds[0].Rule != "broken-resolver" || ds[0].Action != "tempfail" || ds[0].Evidence.IPRev != "permerror" {
		t.Errorf("decision log: %v", raw)
	}
}
