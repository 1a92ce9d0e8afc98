package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config is what a test varies in the daemon's configuration.
type Config struct {
	Listen  []string // default inet:127.0.0.1:<free port>
	Mode    string   // enforce (default) or monitor
	DNS     string   // dnsworld address
	Extra   string   // more YAML, appended verbatim
	LogPath string   // decision log
	Probes  []string // dns.probes; nil: two names of the scenario world
	Metrics string   // metrics.listen (IP:PORT); "" = no metrics
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
	// Probes the scenario world answers: the default ones (Google's PTR, a
	// root server) do not exist in it, and would make the resolver look
	// broken (Probes overrides, e.g. to test just that).
	probes := c.Probes
	if probes == nil {
		probes = []string{"PTR 104.47.38.131", "A mail.one-to-one.example"}
	}
	b.WriteString("  probes: [")
	for i, p := range probes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", p)
	}
	b.WriteString("]\n")
	if c.Metrics != "" {
		fmt.Fprintf(&b, "metrics: {listen: %q}\n", c.Metrics)
	}
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
	if cfg.Metrics != "" && !WaitPort(cfg.Metrics, 5*time.Second) {
		t.Fatalf("heloguard does not serve metrics on %s; stderr:\n%s", cfg.Metrics, d.Stderr())
	}
	return d
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

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
	cfg.Listen, cfg.LogPath, cfg.Metrics = d.Cfg.Listen, d.Cfg.LogPath, d.Cfg.Metrics // what needs a restart stays
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
