package postfix_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

// openDKIMMain is main.cf as OpenDKIM's guides leave it: its milter, the same
// milters for local submission, and fail-open for all of them.
const openDKIMMain = `# OpenDKIM, as its guides set it up
smtpd_milters = inet:localhost:8891
non_smtpd_milters = $smtpd_milters
milter_default_action = accept
`

// TestPostfixConfig runs the commands `heloguard postfix-config` prints on a
// throw-away Postfix that already has an OpenDKIM milter, then sends mail
// through it: heloguard judges (the OpenDKIM milter is not running, and its
// milter_default_action = accept lets the mail past it), and with heloguard
// stopped its own default_action = tempfail holds the mail back.
func TestPostfixConfig(t *testing.T) {
	swaksBin := e2e.Tool(t, "swaks")
	e2e.Tool(t, "postfix")
	postconf := e2e.Tool(t, "postconf")
	e2e.RequireRoot(t, "a throw-away Postfix instance")

	_, dns := e2e.StartDNS(t)
	bin := e2e.Build(t)
	pf := newPostfix(t)
	hg := e2e.StartDaemon(t, bin, e2e.Config{DNS: dns.Addr})
	ours := "inet:" + hg.Addr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Postfix maillog (tail):\n%s", tail(pf.log(), 60))
			t.Logf("--- heloguard stderr:\n%s", tail(hg.Stderr(), 40))
		}
	})
	sn := snippet{text: openDKIMMain, unixSpec: "unix:/heloguard/heloguard.sock"}
	mainCF := filepath.Join(pf.confDir, "main.cf")
	if err := os.WriteFile(mainCF, []byte(pf.mainCF(sn)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pf.confDir, "master.cf"), []byte(pf.masterCF(sn)), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(param string) string {
		t.Helper()
		out, err := exec.Command(postconf, "-c", pf.confDir, "-h", param).Output()
		if err != nil {
			t.Fatalf("postconf -h %s: %v", param, err)
		}
		return strings.TrimSpace(string(out))
	}
	postfixConfig := func() string {
		t.Helper()
		cmd := exec.Command(bin, "postfix-config", "--config", hg.ConfigPath, "-c", pf.confDir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("heloguard postfix-config: %v\n%s", err, out)
		}
		return string(out)
	}

	script := postfixConfig()
	t.Logf("heloguard postfix-config -c %s:\n%s", pf.confDir, script)
	if out, err := exec.Command("sh", "-e", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("running the printed commands: %v\n%s", err, out)
	}

	t.Run("merged", func(t *testing.T) {
		smtpd := get("smtpd_milters")
		if want := "inet:localhost:8891, { " + ours + ", default_action=tempfail }"; smtpd != want {
			t.Errorf("smtpd_milters = %s\nwant            %s", smtpd, want)
		}
		if non := get("non_smtpd_milters"); non != "inet:localhost:8891" {
			t.Errorf("non_smtpd_milters = %q, want the OpenDKIM milter alone (heloguard out, $smtpd_milters written out)", non)
		}
		if a := get("milter_default_action"); a != "accept" {
			t.Errorf("milter_default_action = %q: the other milters' choice (accept) must stay", a)
		}
		if m := get("milter_connect_macros"); !strings.Contains(m, "{client_addr}") {
			t.Errorf("milter_connect_macros = %q lacks {client_addr}", m)
		}
		if !strings.Contains(script, "# master.cf: 127.0.0.1:") || !strings.Contains(script, "overrides smtpd_milters") {
			t.Errorf("the master.cf override of smtpd_milters (the chrooted service) is not reported")
		}
	})

	t.Run("postfix-check", func(t *testing.T) {
		out, err := pf.run("check")
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("postfix -c %s check: %v\n%s", pf.confDir, err, out)
		}
		cmd := exec.Command(postconf, "-c", pf.confDir, "-n")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("postconf -n: %v\n%s", err, stderr.String())
		}
	})

	t.Run("idempotent", func(t *testing.T) {
		before, _ := os.ReadFile(mainCF)
		again := postfixConfig()
		for _, l := range strings.Split(again, "\n") {
			if strings.HasPrefix(l, "postconf ") {
				t.Errorf("a second run still changes something: %s\n%s", l, again)
			}
		}
		if !strings.Contains(again, "is already in smtpd_milters") || !strings.Contains(again, "# nothing to change") {
			t.Errorf("a second run should say heloguard is already there and nothing changes:\n%s", again)
		}
		if after, _ := os.ReadFile(mainCF); string(after) != string(before) {
			t.Errorf("postfix-config changed main.cf itself")
		}
	})

	// Mail through the merged configuration.
	t.Cleanup(func() { pf.stop(t) })
	if out, err := pf.run("start"); err != nil {
		t.Fatalf("postfix -c %s start: %v\n%s\n--- maillog:\n%s", pf.confDir, err, out, pf.log())
	}
	addr := fmt.Sprintf("127.0.0.1:%d", pf.port)
	if !e2e.WaitPort(addr, 15*time.Second) {
		t.Fatalf("Postfix does not listen on %s within 15s\n--- maillog:\n%s", addr, pf.log())
	}
	rcpt := []string{"user@receiver.example"}
	const forgerIP, o365IP, o365Helo = "192.0.2.66", "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com"

	t.Run("heloguard-judges", func(t *testing.T) {
		exp := hg.Check(t, forgerIP, o365Helo)
		if exp.Action != "reject" {
			t.Fatalf("the scenario's forger is not refused by the policy: %+v", exp)
		}
		s := swaks(t, swaksBin, pf.port, client{name: "pfconfig-forger", ip: forgerIP, port: 41001, helo: o365Helo, rcpts: rcpt})
		if r := s.Reply("RCPT"); r != exp.Reply {
			t.Errorf("forger: RCPT got %q, want heloguard's %q\n%s", r, exp.Reply, s.Out)
		}
		cl := client{name: "pfconfig-office365", ip: o365IP, port: 41002, helo: o365Helo, rcpts: rcpt}
		s = swaks(t, swaksBin, pf.port, cl)
		if r := s.Reply("."); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("Office 365: end of data got %q, want 250 (OpenDKIM is down, its default_action accept)\n%s", r, s.Out)
		}
		if m, ok := pf.waitDelivered(t, cl.id()); ok {
			if ours, _ := m.AuthResults(); len(ours) != 1 {
				t.Errorf("want heloguard's Authentication-Results on the delivered message, got %q", ours)
			}
		}
		// The OpenDKIM milter is still asked (and, not running, skipped).
		if !strings.Contains(pf.log(), "Milter service inet:localhost:8891") {
			t.Errorf("the maillog shows no attempt to reach the OpenDKIM milter: is it still in smtpd_milters?\n%s", tail(pf.log(), 30))
		}
	})

	t.Run("heloguard-down-tempfails", func(t *testing.T) {
		hg.Stop(t)
		cl := client{name: "pfconfig-down", ip: o365IP, port: 41003, helo: o365Helo, rcpts: rcpt}
		s := swaks(t, swaksBin, pf.port, cl)
		var refused string
		for _, cmd := range []string{"MAIL", "RCPT"} {
			if r := s.Reply(cmd); r != "" && !strings.HasPrefix(r, "250") {
				refused = r
				break
			}
		}
		if !strings.HasPrefix(refused, "451 4.7.1 ") {
			t.Errorf("heloguard down: want 451 4.7.1 (its own default_action=tempfail, while milter_default_action = accept), got %q\n%s", refused, s.Out)
		}
		if len(pf.find(cl.id())) > 0 {
			t.Errorf("a message got in while heloguard was down")
		}
	})
}
