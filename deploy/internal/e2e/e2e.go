// Package e2e holds what the end-to-end tests under deploy/ share: the gate that
// skips them when the MTA tools are missing (or fails them under HELOGUARD_E2E=1),
// the scenario world served by dnstest, and a heloguard daemon built from this
// tree and run as a real process; and, for the tests through a real MTA,
// swaks sessions and their transcripts (swaks.go), delivered messages
// (mail.go) and the one-decision-per-session check (runs.go).
//
// Everything listens on and talks to 127.0.0.1 only.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heloguard/heloguard/dnscache/dnstest"
	"github.com/heloguard/heloguard/policy/scenario"
)

// EnvStrict is the variable that turns a missing tool into a failure. CI sets it
// after deploy/install-test-deps.sh.
const EnvStrict = "HELOGUARD_E2E"

// Strict reports whether HELOGUARD_E2E=1.
func Strict() bool { return os.Getenv(EnvStrict) == "1" }

// SkipOrFail skips the test, or fails it when HELOGUARD_E2E=1.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s=1 but %s (install with deploy/install-test-deps.sh)", EnvStrict, msg)
	}
	t.Skipf("skipping end-to-end test: %s (install with deploy/install-test-deps.sh; set %s=1 to make this a failure)", msg, EnvStrict)
}

// Tool finds an executable on PATH or in the sbin directories, where Debian puts
// postfix and postconf (a non-root PATH often lacks them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	SkipOrFail(t, "%s is not installed", name)
	return ""
}

// RequireRoot skips (or fails) unless the test runs as root, which a real
// Postfix instance needs.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "%s needs root (running as uid %d)", why, os.Geteuid())
	}
}

// ScenarioFile is the shared scenario world, relative to a package directory
// under deploy/ (CI clones the repository with shared/ beside it).
const ScenarioFile = "../../policy/scenario/testdata/seed-office365.yaml"

// StartDNS loads the scenario file and serves its world on 127.0.0.1, with
// extra records (zone-file lines, absolute names) added to it.
func StartDNS(t testing.TB, extra ...string) (*scenario.File, *dnstest.Server) {
	t.Helper()
	path, err := filepath.Abs(ScenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		SkipOrFail(t, "scenario file %s is missing (shared/ must be checked out beside the repository)", path)
	}
	f, err := scenario.Load(path)
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	z, err := f.Zone()
	if err != nil {
		t.Fatalf("scenario world: %v", err)
	}
	for _, rr := range extra {
		if err := z.AddRR(rr); err != nil {
			t.Fatalf("extra DNS record %q: %v", rr, err)
		}
	}
	srv, err := dnstest.Start(z)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return f, srv
}

// Build compiles heloguard from this tree into a temporary directory. Under
// `go test -race` the daemon is built with the race detector too, and Daemon
// fails the test if it reports a race.
func Build(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "heloguard")
	args := []string{"build", "-o", out}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/heloguard/heloguard/cmd/heloguard")
	cmd := exec.Command(goBin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// raceEnv is the environment for the daemon binary: a race report is printed,
// and without the race detector's default one-second sleep at exit.
func raceEnv() []string {
	return append(os.Environ(), "GORACE=halt_on_error=0 exitcode=66 atexit_sleep_ms=0")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every 50 ms until it holds or d passes.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitPort waits until something accepts TCP connections on addr.
func WaitPort(addr string, d time.Duration) bool {
	return WaitFor(d, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// WorldDir makes a temporary directory that the postfix and nobody users can
// traverse (t.TempDir's parent is 0700), removed at the end of the test.
func WorldDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// Config is what a test varies in the daemon's configuration.
type Config struct {
	Listen  []string // default inet:127.0.0.1:<free port>
	Mode    string   // enforce (default) or monitor
	DNS     string   // dnstest address
	Extra   string   // more YAML, appended verbatim
	LogPath string   // decision log
	// TrustedNetworks: nil means loopback (127.0.0.0/8, ::1/128); an empty,
	// non-nil slice means none, for an MTA whose clients connect from loopback.
	TrustedNetworks []string
}

// YAML renders the config file the daemon and `heloguard check` read.
func (c Config) YAML() string {
	var b strings.Builder
	b.WriteString("# written by the heloguard end-to-end test\n")
	b.WriteString("listen:\n")
	for _, l := range c.Listen {
		fmt.Fprintf(&b, "  - %q\n", l)
	}
	mode := c.Mode
	if mode == "" {
		mode = "enforce"
	}
	fmt.Fprintf(&b, "mode: %s\n", mode)
	b.WriteString("reject_at: rcpt\n")
	fmt.Fprintf(&b, "authserv_id: %s\n", AuthservID)
	b.WriteString("local_names: [mx.receiver.example]\n")
	// Loopback only: none of the scenario addresses is trusted (with the proxy
	// protocol Postfix hands the milter the proxied client address).
	trusted := c.TrustedNetworks
	if trusted == nil {
		trusted = []string{"127.0.0.0/8", "::1/128"}
	}
	b.WriteString("trusted_networks: [")
	for i, n := range trusted {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", n)
	}
	b.WriteString("]\n")
	fmt.Fprintf(&b, "log: %q\n", c.LogPath)
	b.WriteString("decision_timeout: 8s\n")
	b.WriteString("dns:\n")
	fmt.Fprintf(&b, "  servers: [%q]\n", c.DNS)
	b.WriteString("  timeout: 2s\n")
	b.WriteString(c.Extra)
	return b.String()
}

// Daemon is a heloguard serve process.
type Daemon struct {
	Bin        string
	Dir        string
	ConfigPath string
	LogPath    string // decision log
	StderrPath string
	Port       int // of the inet listener
	Addr       string
	Cfg        Config

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // of Wait, valid after exited is closed
}

// StartDaemon writes cfg (filling in Listen, LogPath) and runs `heloguard serve`
// until the test ends.
func StartDaemon(t testing.TB, bin string, cfg Config) *Daemon {
	t.Helper()
	dir := WorldDir(t)
	d := &Daemon{Bin: bin, Dir: dir, ConfigPath: filepath.Join(dir, "heloguard.yaml"),
		StderrPath: filepath.Join(dir, "heloguard.stderr"), exited: make(chan struct{})}
	d.Port = FreePort(t)
	d.Addr = fmt.Sprintf("127.0.0.1:%d", d.Port)
	cfg.Listen = append([]string{"inet:" + d.Addr}, cfg.Listen...)
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(dir, "decisions.log")
	}
	d.LogPath, d.Cfg = cfg.LogPath, cfg
	if err := os.WriteFile(d.ConfigPath, []byte(cfg.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	validate := exec.Command(bin, "validate", "--config", d.ConfigPath)
	validate.Env = raceEnv()
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("heloguard validate rejects the test config: %v\n%s\n--- config:\n%s", err, out, cfg.YAML())
	}
	stderr, err := os.Create(d.StderrPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "serve", "--config", d.ConfigPath)
	d.cmd.Stdout, d.cmd.Stderr = stderr, stderr
	d.cmd.Env = raceEnv()
	if err := d.cmd.Start(); err != nil {
		stderr.Close()
		t.Fatalf("starting heloguard: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		stderr.Close()
		close(d.exited)
	}()
	t.Cleanup(func() { d.Stop(t) })
	// Ready when it says where it listens (and the port answers).
	ok := WaitFor(15*time.Second, func() bool {
		select {
		case <-d.exited:
			return true
		default:
		}
		return strings.Contains(d.Stderr(), d.Addr)
	})
	select {
	case <-d.exited:
		t.Fatalf("heloguard exited at start: %v\n%s", d.err, d.Stderr())
	default:
	}
	if !ok || !WaitPort(d.Addr, 5*time.Second) {
		t.Fatalf("heloguard did not listen on %s within 20s; stderr:\n%s", d.Addr, d.Stderr())
	}
	return d
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Exited is closed when the daemon has exited; ExitErr is then its status.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// ExitErr is the daemon's exit status, valid once Exited is closed.
func (d *Daemon) ExitErr() error { return d.err }

// Stderr is what the daemon wrote to stderr so far.
func (d *Daemon) Stderr() string {
	b, _ := os.ReadFile(d.StderrPath)
	return string(b)
}

// Alive reports whether the process still runs.
func (d *Daemon) Alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Reload writes a new config and sends SIGHUP, then waits until the daemon
// reports the reload on stderr.
func (d *Daemon) Reload(t testing.TB, cfg Config) {
	t.Helper()
	cfg.Listen, cfg.LogPath = d.Cfg.Listen, d.Cfg.LogPath // what needs a restart stays
	before := strings.Count(d.Stderr(), "reloaded")
	if err := os.WriteFile(d.ConfigPath, []byte(cfg.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	if !WaitFor(10*time.Second, func() bool { return strings.Count(d.Stderr(), "reloaded") > before }) {
		t.Fatalf("heloguard did not report a reload within 10s after SIGHUP; stderr:\n%s", d.Stderr())
	}
	d.Cfg = cfg
}

// Stop sends SIGTERM and expects a clean exit within 15 s (then kills). It
// fails the test on a non-zero exit or a race report. Safe to call twice.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.Alive() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
			t.Errorf("heloguard did not exit within 15s of SIGTERM; killed. stderr:\n%s", d.Stderr())
			return
		}
		if d.err != nil {
			t.Errorf("heloguard exited with %v after SIGTERM (want status 0); stderr:\n%s", d.err, d.Stderr())
		}
	}
	if s := d.Stderr(); strings.Contains(s, "WARNING: DATA RACE") {
		t.Errorf("the race detector found a data race in the heloguard daemon:\n%s", s)
	}
}

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
