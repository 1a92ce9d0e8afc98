// Package fleet_test proves how heloguard scales out: one instance per MX host,
// all of them resolving through one shared caching resolver. It runs Debian's
// Unbound on loopback, forwarding to the scenario world's authoritative server,
// and two heloguard daemons that use it. The second daemon's first, cold
// decision for a client the first daemon has already judged makes no query to
// the authoritative server (Unbound answers it), and both decide alike.
//
// It skips without Unbound, or fails under HELOGUARD_E2E=1;
// deploy/install-test-deps.sh installs it. All traffic is on 127.0.0.1.
package fleet_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy/record"
	"github.com/miekg/dns"
)

// startUnbound runs unbound in the foreground with its own config: loopback
// only, no privilege drop or chroot, no DNSSEC (the world is not signed), every
// name forwarded to upstream.
func startUnbound(t *testing.T, upstream string) string {
	t.Helper()
	bin := e2e.Tool(t, "unbound")
	check := e2e.Tool(t, "unbound-checkconf")
	dir := e2e.WorldDir(t)
	port := e2e.FreePort(t)
	host, uport, _ := strings.Cut(upstream, ":")
	conf := fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: %d
	do-ip6: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	username: ""
	chroot: ""
	directory: %q
	pidfile: %q
	logfile: ""
	use-syslog: no
	verbosity: 1
	module-config: "iterator"
	qname-minimisation: no
	harden-referral-path: no
	minimal-responses: no
	cache-min-ttl: 0
	num-threads: 1
	so-reuseport: no
	# Unbound answers the documentation networks' reverse zones itself
	# (RFC 6303); the scenario world uses them, so let them through.
	local-zone: "2.0.192.in-addr.arpa." nodefault
	local-zone: "100.51.198.in-addr.arpa." nodefault
	local-zone: "113.0.203.in-addr.arpa." nodefault
forward-zone:
	name: "."
	forward-addr: %s@%s
`, port, dir, filepath.Join(dir, "unbound.pid"), host, uport)
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(check, path).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-d", "-c", path)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting unbound: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("unbound's output:\n%s", stderr.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !e2e.WaitFor(10*time.Second, func() bool { return answers(addr) }) {
		t.Fatalf("unbound did not answer on %s within 10s:\n%s", addr, stderr.String())
	}
	return addr
}

// session plays one MTA session for ip and helo and returns the RCPT answer.
func session(t *testing.T, addr, ip, helo string, port uint16) *gomilter.Action {
	t.Helper()
	c := gomilter.NewClient("tcp", addr)
	cs, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return cs.Conn("["+ip+"]", gomilter.FamilyInet, port, ip) },
		func() (*gomilter.Action, error) { return cs.Helo(helo) },
		func() (*gomilter.Action, error) { return cs.Mail("<a@sender.example>", "") },
	}
	for _, s := range steps {
		if _, err := s(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := cs.Rcpt("<user@receiver.example>", "")
	if err != nil {
		t.Fatal(err)
	}
	cs.Abort(nil)
	return a
}

func TestFleetSharesOneUnbound(t *testing.T) {
	sc, auth := e2e.StartDNS(t)
	unbound := startUnbound(t, auth.Addr)
	bin := e2e.Build(t)
	// Two heloguard instances, each with its own DNS cache, both asking Unbound.
	a := e2e.StartDaemon(t, bin, e2e.Config{DNS: unbound})
	b := e2e.StartDaemon(t, bin, e2e.Config{DNS: unbound})

	var totalA int64
	for i, c := range sc.Cases {
		if c.Helo == "" || strings.HasPrefix(c.IP, "127.") {
			continue
		}
		port := uint16(40000 + i)
		t.Run(c.Name, func(t *testing.T) {
			before := auth.Queries()
			ra := session(t, a.Addr, c.IP, c.Helo, port)
			first := auth.Queries() - before
			totalA += first
			before = auth.Queries()
			rb := session(t, b.Addr, c.IP, c.Helo, port)
			second := auth.Queries() - before
			t.Logf("%s %s: instance A %d queries to the authoritative server, instance B (cold for this client) %d", c.IP, c.Helo, first, second)
			if second != 0 {
				t.Errorf("instance B made %d queries to the authoritative server; Unbound should have answered them all", second)
			}
			if ra.Type != rb.Type || ra.SMTPCode != rb.SMTPCode || ra.SMTPReply != rb.SMTPReply {
				t.Errorf("the instances answered differently: A %v %d %q, B %v %d %q", ra.Type, ra.SMTPCode, ra.SMTPReply, rb.Type, rb.SMTPCode, rb.SMTPReply)
			}
			da := decision(t, a, c.IP, port)
			db := decision(t, b, c.IP, port)
			if da.Rule != db.Rule || da.Action != db.Action || fmt.Sprint(da.Evidence) != fmt.Sprint(db.Evidence) {
				t.Errorf("the instances decided differently:\n A %s %s %+v\n B %s %s %+v", da.Action, da.Rule, da.Evidence, db.Action, db.Rule, db.Evidence)
			}
			if string(da.Action) != string(c.Expect) {
				t.Errorf("through Unbound: %s by %s, the scenario expects %s", da.Action, da.Rule, c.Expect)
			}
		})
	}
	if totalA == 0 {
		t.Errorf("instance A made no query to the authoritative server at all: is Unbound in the path?")
	}
}

// decision waits for the daemon's decision line for ip:port (written when the
// session closes).
func decision(t *testing.T, d *e2e.Daemon, ip string, port uint16) record.Record {
	t.Helper()
	got, raw := d.WaitDecision(t, ip, int(port))
	if len(got) != 1 {
		t.Fatalf("%d decision lines for %s:%d: %v", len(got), ip, port, raw)
	}
	return got[0]
}

// answers reports whether a DNS server answers at addr.
func answers(addr string) bool {
	m := new(dns.Msg)
	m.SetQuestion("ready.invalid.", dns.TypeA)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	_, _, err := c.Exchange(m, addr)
	return err == nil
}
