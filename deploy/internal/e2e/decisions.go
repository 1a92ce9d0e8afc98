package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Decision is one decision log line.
type Decision map[string]any

// Str returns a string field ("" if absent); dotted names reach into objects.
func (d Decision) Str(name string) string {
	v := d.Get(name)
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Get returns a field; "evidence.iprev" reaches into evidence.
func (d Decision) Get(name string) any {
	var cur any = map[string]any(d)
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// Has reports whether a field is present (even if empty or false).
func (d Decision) Has(name string) bool {
	parts := strings.Split(name, ".")
	var cur any = map[string]any(d)
	for _, part := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// Decisions parses the decision log; lines that are not JSON objects with
// msg "decision" are returned in bad.
func (d *Daemon) Decisions() (decisions []Decision, raw []string, bad []string) {
	b, _ := os.ReadFile(d.LogPath)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] != "decision" {
			bad = append(bad, line)
			continue
		}
		decisions = append(decisions, Decision(m))
		raw = append(raw, line)
	}
	return
}

// DecisionsFor returns the decision lines for one client address and port.
func (d *Daemon) DecisionsFor(ip string, port int) (out []Decision, raw []string) {
	all, lines, _ := d.Decisions()
	for i, x := range all {
		if x.Str("client_ip") == ip && x.Str("client_port") == fmt.Sprint(port) {
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

// Expected is what `heloguard check --json` computes for a client.
type Expected struct {
	Action   string         `json:"action"`
	Rule     string         `json:"rule"`
	Reply    string         `json:"reply"`
	Monitor  bool           `json:"monitor"`
	Evidence map[string]any `json:"evidence"`
}

// Check runs `heloguard check --json` with the daemon's config file, which
// resolves through the same dnstest server: the policy's own answer, to compare
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
	var e Expected
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("heloguard check --json %s %q: %v\n%s", ip, helo, err, out)
	}
	return e
}
