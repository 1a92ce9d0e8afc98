package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heloguard/heloguard/loadgen"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
)

// benchEnv is what heloguard bench sets up without --target, all on loopback
// and unix sockets in a temporary directory: a DNS server serving the
// world, heloguard on its config, and the two reference milters.
type benchEnv struct {
	dir      string
	dns      *dnsworld.Server
	children []*child
	targets  []loadgen.Target
	cpus     *cpuSplit // nil: not pinned
}

// child is a process the bench started.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	exit chan struct{}
}

// setupBench starts everything; on error, what was started is stopped.
func setupBench(ctx context.Context, w *loadgen.World, heloguardBin string, version uint32, workers int, timeout time.Duration, pin bool, progress io.Writer) (_ *benchEnv, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if heloguardBin == "" {
		heloguardBin = self
	}
	e := &benchEnv{}
	if pin {
		if e.cpus, err = newCPUSplit(); err != nil {
			return nil, fmt.Errorf("--pin: %v", err)
		}
	}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "heloguard-bench-"); err != nil {
		return nil, err
	}
	if e.dns, err = w.File.Serve(); err != nil {
		return nil, fmt.Errorf("DNS server for %s: %v", w.Name, err)
	}
	hg := loadgen.Target{Name: "heloguard", Network: "unix", Address: filepath.Join(e.dir, "heloguard.sock")}
	cfg := filepath.Join(e.dir, "heloguard.yaml")
	if err := os.WriteFile(cfg, []byte(benchConfig(w, hg.Address, e.dns.Addr, filepath.Join(e.dir, "decisions.log"), workers)), 0o600); err != nil {
		return nil, err
	}
	if err := e.start(ctx, hg, heloguardBin, "serve", "--config", cfg); err != nil {
		return nil, err
	}
	neg, err := loadgen.Probe(hg, version, timeout)
	if err != nil {
		return nil, fmt.Errorf("negotiating with heloguard: %v", err)
	}
	fmt.Fprintf(progress, "bench: heloguard (%s) negotiated %s; the reference milters negotiate the same\n", heloguardBin, neg)
	same := loadgen.SameAs(neg)
	noHeaders := same
	noHeaders.Protocol |= loadgen.NoHeaders
	for _, ref := range []struct {
		name string
		o    loadgen.RefOptions
	}{{loadgen.RefSame, same}, {loadgen.RefNoHeaders, noHeaders}} {
		t := loadgen.Target{Name: ref.name, Network: "unix", Address: filepath.Join(e.dir, ref.name+".sock")}
		if err := e.start(ctx, t, self, "bench-milter", "--listen", t.Spec(), "--version", strconv.Itoa(int(ref.o.Version)),
			"--actions", fmt.Sprintf("0x%x", uint32(ref.o.Actions)), "--protocol", fmt.Sprintf("0x%x", uint32(ref.o.Protocol)),
			"--macros", loadgen.Negotiated{Macros: ref.o.Macros}.MacroSpec()); err != nil {
			return nil, err
		}
	}
	return e, e.cpus.pinSelf()
}

// benchConfig is heloguard's config for the bench: the world's DNS server
// (no resolver probes: the world has no root servers), a unix socket, the
// decision log in the temporary directory, sessions enough for the workers.
func benchConfig(w *loadgen.World, sock, dns, decisions string, workers int) string {
	local := w.File.LocalNames
	if local == nil {
		local = []string{"mx.receiver.example"}
	}
	return fmt.Sprintf(`# written by heloguard bench
listen: [%q]
socket_mode: "0600"
log: %q
local_names: [%s]
authserv_id: %s
max_sessions: %d
drain_timeout: 2s
dns:
  servers: [%q]
  probes: []
`, "unix:"+sock, decisions, strings.Join(local, ", "), local[0], 4*workers+64, dns)
}

// start runs a child in its own process group (a Ctrl-C reaches the bench,
// which stops it), killed should the bench die, and waits until it accepts
// connections on t.
func (e *benchEnv) start(ctx context.Context, t loadgen.Target, bin string, args ...string) error {
	c := &child{name: t.Name, log: filepath.Join(e.dir, t.Name+".log"), exit: make(chan struct{})}
	out, err := os.Create(c.log)
	if err != nil {
		return err
	}
	defer out.Close()
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cpus.startPinned(c.cmd.Start); err != nil {
		return fmt.Errorf("starting %s: %v", t.Name, err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exit) }()
	e.children = append(e.children, c)
	e.targets = append(e.targets, t)
	for deadline := time.Now().Add(15 * time.Second); ; {
		conn, err := net.DialTimeout(t.Network, t.Address, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-c.exit:
			return fmt.Errorf("%s exited before it listened (%s); its output:\n%s", t.Name, c.cmd.ProcessState, tail(c.log, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after 15s; its output:\n%s", t.Name, t.Spec(), tail(c.log, 20))
		}
	}
}

// pid is the process id of the named child, 0 if there is none.
func (e *benchEnv) pid(name string) int {
	for _, c := range e.children {
		if c.name == name {
			return c.cmd.Process.Pid
		}
	}
	return 0
}

// failed reports a child that has exited, with the end of its output.
func (e *benchEnv) failed() error {
	for _, c := range e.children {
		select {
		case <-c.exit:
			return fmt.Errorf("%s exited during the bench (%s); its output:\n%s", c.name, c.cmd.ProcessState, tail(c.log, 20))
		default:
		}
	}
	return nil
}

// close stops the children (SIGTERM, then SIGKILL after 5s), the DNS server,
// and removes the directory.
func (e *benchEnv) close() {
	for _, c := range e.children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range e.children {
		select {
		case <-c.exit:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exit
		}
	}
	if e.dns != nil {
		e.dns.Close()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
