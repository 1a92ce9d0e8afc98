package milter_test

import (
	"strings"
	"testing"
)

// A client address that public DNS cannot speak for (a NAT or a container
// network in front of the MTA makes every client look like its gateway) is
// deferred, not refused for "no reverse DNS", and the operator is told once
// per range.
func TestPrivateClientDeferred(t *testing.T) {
	h := start(t, "")
	for i, ip := range []string{"172.17.0.1", "172.17.0.2", "10.1.2.3", "100.64.1.1", "fd00::1", "169.254.1.1"} {
		m := h.dial(t)
		wantContinue(t, "connect", m.connect(ip))
		wantContinue(t, "helo", m.helo(o365Helo))
		wantContinue(t, "mail", m.mail("<a@sender.example>"))
		wantReply(t, "rcpt "+ip, m.rcpt("<user@receiver.example>"), 451, "4.7.1 ", ip, "public DNS")
		m.cs.Close()
		if !waitForDecisions(h, i+1) {
			t.Fatalf("no decision line for %s", ip)
		}
	}
	for _, r := range h.log.decisions(t) {
		if r.Rule != "private-client" || r.Action != "tempfail" || r.Evidence.IPRev != "" || r.DNSLookups != 0 {
			t.Errorf("decision %s: %s by %s, iprev %q, %d lookups", r.ClientIP, r.Action, r.Rule, r.Evidence.IPRev, r.DNSLookups)
		}
	}
	ops := h.ops.String()
	if n := strings.Count(ops, "public DNS cannot speak for"); n != 5 { // 172.17.0.0/24 once
		t.Errorf("%d warnings, want one per range (5):\n%s", n, ops)
	}
	for _, r := range []string{`"range":"172.17.0.0/24"`, `"range":"fd00::/64"`, `"range":"100.64.1.0/24"`} {
		if !strings.Contains(ops, r) {
			t.Errorf("no warning for %s:\n%s", r, ops)
		}
	}
}

func TestPrivateClientActionAccept(t *testing.T) {
	h := start(t, "private_client_action: accept\n")
	m := h.dial(t)
	m.connect("192.168.1.10")
	m.helo("localhost")
	m.mail("<a@sender.example>")
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
}

func waitForDecisions(h *harness, n int) bool {
	return waitFor(5e9, func() bool { return strings.Count(h.log.String(), "\n") >= n })
}
