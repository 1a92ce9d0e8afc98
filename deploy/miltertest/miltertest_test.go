// Package miltertest_test runs OpenDKIM's miltertest against a real heloguard
// process: the Lua scripts in this directory play the MTA's side of the
// milter protocol for scenario clients served by dnsworld.
//
// It skips unless miltertest is installed; with HELOGUARD_E2E=1 that is a
// failure instead. deploy/install-test-deps.sh installs it on Debian.
package miltertest_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy/scenario"
)

func TestMiltertest(t *testing.T) {
	bin := e2e.Tool(t, "miltertest")
	sc, dns := e2e.StartDNS(t)
	hg := e2e.StartDaemon(t, e2e.Build(t), e2e.Config{DNS: dns.Addr})
	libdir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	office := scenarioCase(t, sc, "office365-generic-helo-blog-example")
	forger := scenarioCase(t, sc, "forged-office365-helo")
	oneToOne := scenarioCase(t, sc, "one-to-one-strict-match")

	tests := []struct {
		script   string
		c        scenario.Case
		stage    string // where the refusal was delivered, "" for none
		exempt   string // expected exemption
		wantFail string // the script must fail with this in its output (a negative control)
	}{
		{script: "office365-accepted.lua", c: office},
		{script: "forger-refused.lua", c: forger, stage: "rcpt"},
		{script: "postmaster-exempt.lua", c: forger, exempt: "recipient postmaster"},
		{script: "eom-headers.lua", c: office},
		// The scripts must be able to fail: the accepting script, fed the
		// forger, has to stop at RCPT.
		{script: "office365-accepted.lua", c: forger, stage: "rcpt", wantFail: "RCPT user@receiver.example: heloguard answered SMFIR_REPLYCODE"},
		// and the header check has to look at the value: this sender is
		// accepted, but its HELO has no SPF record (spf=none).
		{script: "eom-headers.lua", c: oneToOne, wantFail: "lacks spf=pass smtp.helo=mail.one-to-one.example"},
	}
	for _, tc := range tests {
		name := strings.TrimSuffix(tc.script, ".lua") + "/" + tc.c.Name
		if tc.wantFail != "" {
			name += "/must-fail"
		}
		t.Run(name, func(t *testing.T) {
			exp := hg.Check(t, tc.c.IP, tc.c.Helo)
			if exp.Action != tc.c.Expect {
				t.Fatalf("heloguard check says %s, the scenario expects %s", exp.Action, tc.c.Expect)
			}
			before, _, _ := hg.Decisions()
			out, err := runScript(t, bin, tc.script,
				"port="+fmt.Sprint(hg.Port), "ip="+tc.c.IP, "helo="+tc.c.Helo, "libdir="+libdir)
			switch {
			case tc.wantFail == "" && err != nil:
				t.Fatalf("miltertest -s %s: %v\n%s", tc.script, err, out)
			case tc.wantFail != "" && err == nil:
				t.Fatalf("miltertest -s %s should have failed for %s, but passed:\n%s", tc.script, tc.c.Name, out)
			case tc.wantFail != "" && !strings.Contains(out, tc.wantFail):
				t.Fatalf("miltertest -s %s failed, but not with %q:\n%s", tc.script, tc.wantFail, out)
			}
			t.Logf("miltertest -s %s (%s %s):\n%s", tc.script, tc.c.IP, tc.c.Helo, strings.TrimSpace(out))

			// The session's decision log line (miltertest always reports client
			// port 12345, so the line is told apart by order).
			var after []e2e.Decision
			var raw []string
			if !e2e.WaitFor(10*time.Second, func() bool {
				after, raw, _ = hg.Decisions()
				return len(after) > len(before)
			}) {
				t.Fatalf("no decision log line for the session within 10s; stderr:\n%s", hg.Stderr())
			}
			if n := len(after) - len(before); n != 1 {
				t.Errorf("%d decision log lines for one session, want 1:\n%s", n, strings.Join(raw[len(before):], "\n"))
			}
			d := after[len(before)]
			for _, f := range []struct{ field, got, want string }{
				{"client_ip", d.ClientIP.String(), tc.c.IP}, {"helo", d.Helo, tc.c.Helo},
				{"rule", d.Rule, exp.Rule}, {"action", string(d.Action), string(exp.Action)},
				{"stage", d.Stage, tc.stage}, {"exemption", d.Exemption, tc.exempt}, {"mode", d.Mode, "enforce"},
				{"evidence.iprev", string(d.Evidence.IPRev), e2e.ValueText(tc.c.Evidence["iprev"])},
			} {
				if f.got != f.want {
					t.Errorf("decision log %s = %q, want %q\n%s", f.field, f.got, f.want, raw[len(before)])
				}
			}
			if tc.stage != "" && d.Reply != exp.Reply {
				t.Errorf("decision log reply = %q, want the policy's %q", d.Reply, exp.Reply)
			}
		})
	}
}

func scenarioCase(t *testing.T, sc *scenario.File, name string) scenario.Case {
	t.Helper()
	for _, c := range sc.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("scenario %s has no case %q", sc.Path, name)
	return scenario.Case{}
}

// runScript runs miltertest -s script with -D definitions, bounded to 60s.
func runScript(t *testing.T, bin, script string, defs ...string) (string, error) {
	t.Helper()
	args := []string{"-s", script}
	for _, d := range defs {
		args = append(args, "-D", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("miltertest -s %s did not finish within 60s:\n%s", script, out)
	}
	return string(out), err
}
