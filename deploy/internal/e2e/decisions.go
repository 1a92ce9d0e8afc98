package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy/record"
)

// Decision is one decision log line, as the daemon's decision record.
type Decision = record.Record

// Decisions parses the decision log; lines that are not decision records, or
// lack an evidence field, are returned in bad.
func (d *Daemon) Decisions() (decisions []Decision, raw []string, bad []string) {
	b, _ := os.ReadFile(d.LogPath)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		r, err := record.Parse([]byte(line))
		if err != nil || len(r.Missing) > 0 || r.V != record.Version {
			bad = append(bad, line)
			continue
		}
		decisions = append(decisions, r)
		raw = append(raw, line)
	}
	return
}

// DecisionsFor returns the decision lines for one client address and port.
func (d *Daemon) DecisionsFor(ip string, port int) (out []Decision, raw []string) {
	all, lines, _ := d.Decisions()
	for i, x := range all {
		if x.ClientIP.String() == ip && x.ClientPort == port {
			out, raw = append(out, x), append(raw, lines[i])
		}
	}
	return
}

// WaitDecision waits until the log has a line for ip:port and returns all of
// them (a line is written when a refusal is delivered, at end of message, or
// when the MTA closes the milter connection).
func (d *Daemon) WaitDecision(t testing.TB, ip string, port int) ([]Decision, []string) {
	t.Helper()
	var out []Decision
	var raw []string
	WaitFor(10*time.Second, func() bool {
		out, raw = d.DecisionsFor(ip, port)
		return len(out) > 0
	})
	return out, raw
}

// Expected is what `heloguard check --json` computes for a client: the
// decision record without the session's fields.
type Expected = record.Record

// Check runs `heloguard check --json` with the daemon's config file, which
// resolves through the same dnsworld server: the policy's own answer, to compare
// the wire with.
func (d *Daemon) Check(t testing.TB, ip, helo string) Expected {
	t.Helper()
	cmd := exec.Command(d.Bin, "check", "--json", "--config", d.ConfigPath, ip, helo)
	cmd.Env = raceEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || len(out) == 0 {
			t.Fatalf("heloguard check %s %q: %v\n%s", ip, helo, err, stderr.String())
		}
	}
	e, err := record.Parse(out)
	if err != nil {
		t.Fatalf("heloguard check --json %s %q: %v\n%s", ip, helo, err, out)
	}
	return e
}

// ValueText writes a scenario's expected evidence value (as YAML decoded it)
// the way policy.Field.String writes the value it is compared with.
func ValueText(v any) string {
	if l, ok := v.([]any); ok {
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}
