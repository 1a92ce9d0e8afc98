package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// Run is one SMTP session a test made that heloguard should have judged:
// every such session must leave exactly one decision line.
type Run struct {
	Name string
	IP   string
	Port int
}

// CheckOnePerRun checks that the decision log holds nothing but JSON decision
// lines, exactly one for each run. addrFormat prints a run's IP and port in
// the failure message (e.g. "%s:%d"). It returns the log for more checks.
func (d *Daemon) CheckOnePerRun(t testing.TB, runs []Run, addrFormat string) (all []Decision, raw []string) {
	t.Helper()
	all, raw, bad := d.Decisions()
	if len(bad) > 0 {
		t.Errorf("the decision log has %d lines that are not JSON decisions:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	for _, r := range runs {
		n := 0
		for _, x := range all {
			if x.ClientIP.String() == r.IP && x.ClientPort == r.Port {
				n++
			}
		}
		if n != 1 {
			t.Errorf("session %s (%s): %d decision log lines, want 1", r.Name, fmt.Sprintf(addrFormat, r.IP, r.Port), n)
		}
	}
	if len(all) != len(runs) {
		t.Errorf("%d decision lines for %d SMTP sessions:\n%s", len(all), len(runs), strings.Join(raw, "\n"))
	}
	return all, raw
}

// LogDecisions logs the whole decision log, for a failed test's post-mortem.
func (d *Daemon) LogDecisions(t testing.TB) {
	t.Helper()
	_, raw, bad := d.Decisions()
	t.Logf("--- decision log (%d lines, %d unparsable):\n%s\n%s", len(raw), len(bad), strings.Join(raw, "\n"), strings.Join(bad, "\n"))
}
