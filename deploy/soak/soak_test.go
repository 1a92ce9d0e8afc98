// Package soak_test is heloguard's soak and lifecycle test: a daemon built from
// this tree, under many concurrent milter sessions of mixed scenario clients
// for a while, reloaded (now and then with a broken config) during the load,
// then stopped under load. It checks every verdict, that nothing grows, and
// that a stop drains, removes the socket and lets a restart bind at once.
//
// It runs only with HELOGUARD_SOAK=1 (`make soak`); SOAK_DURATION (default
// 60s), SOAK_CONCURRENCY (200) and SOAK_RELOADS (50) set its size. All traffic
// is on a unix socket and 127.0.0.1; every loop ends with the duration.
package soak_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// identity is one scenario client and the verdict it must get at RCPT.
type identity struct {
	name, ip, helo string
	want           policy.Action
}

func identities(sc *scenario.File) []identity {
	var out []identity
	for _, c := range sc.Cases {
		out = append(out, identity{c.Name, c.IP, c.Helo, c.Expect})
	}
	return out
}

// counters are what the workers report.
type counters struct {
	sessions, accepted, refused atomic.Int64
	wrong, errors               atomic.Int64
	drained, refusedConnects    atomic.Int64
	mu                          sync.Mutex
	firstErrors                 []string
	latencies                   []time.Duration
}

func (c *counters) fail(format string, args ...any) {
	c.errors.Add(1)
	c.mu.Lock()
	if len(c.firstErrors) < 10 {
		c.firstErrors = append(c.firstErrors, fmt.Sprintf(format, args...))
	}
	c.mu.Unlock()
}

// session plays one Postfix-shaped session for id over the unix socket.
// stopped tells whether SIGTERM has been sent: a refused connection is then
// expected, not an error.
// It returns false when the daemon no longer takes connections.
func session(sock string, id identity, port uint16, c *counters, stopped *atomic.Bool) bool {
	start := time.Now()
	wasStopped := stopped.Load()
	var cs *gomilter.ClientSession
	if id.helo != "" { // without: noHeloSession, below
		var err error
		cs, err = gomilter.NewClient("unix", sock).Session(nil)
		if err != nil {
			if wasStopped || stopped.Load() {
				c.refusedConnects.Add(1)
				return false
			}
			c.fail("%s: connect: %v", id.name, err)
			return true
		}
		defer cs.Close()
	}
	fam := gomilter.FamilyInet
	if strings.Contains(id.ip, ":") {
		fam = gomilter.FamilyInet6
	}
	step := func(what string, a *gomilter.Action, err error) bool {
		if err != nil {
			if stopped.Load() {
				c.refusedConnects.Add(1) // cut by the drain deadline
				return false
			}
			c.fail("%s: %s: %v", id.name, what, err)
			return false
		}
		if what != "rcpt" && a.Type != gomilter.ActionContinue && !(what == "eom" && a.Type == gomilter.ActionAccept) {
			c.fail("%s: %s answered %v %d %q", id.name, what, a, a.SMTPCode, a.SMTPReply)
			return false
		}
		return true
	}
	var a *gomilter.Action
	var err error
	if id.helo == "" {
		// go-milter's client sends no MAIL before a HELO; Postfix does, for a
		// client that sends none (smtpd_helo_required = no).
		a, err = noHeloSession(sock, id.ip, port)
	} else {
		if a, err := cs.Conn("["+id.ip+"]", fam, port, id.ip); !step("connect", a, err) {
			return true
		}
		if a, err := cs.Helo(id.helo); !step("helo", a, err) {
			return true
		}
		if a, err := cs.Mail("<soak@sender.example>", ""); !step("mail", a, err) {
			return true
		}
		a, err = cs.Rcpt("<user@receiver.example>", "")
	}
	if !step("rcpt", a, err) {
		return true
	}
	got := policy.ActionAccept
	switch {
	case a.Type == gomilter.ActionRejectWithCode && a.SMTPCode/100 == 5:
		got = policy.ActionReject
	case a.Type == gomilter.ActionRejectWithCode && a.SMTPCode/100 == 4:
		got = policy.ActionTempfail
	case a.Type != gomilter.ActionContinue:
		c.fail("%s: rcpt answered %v", id.name, a)
		return true
	}
	if got != id.want {
		c.wrong.Add(1)
		c.fail("%s (%s HELO %q): %s at RCPT, want %s (%d %s)", id.name, id.ip, id.helo, got, id.want, a.SMTPCode, a.SMTPReply)
		return true
	}
	if got == policy.ActionAccept && id.helo == "" {
		c.fail("%s: accepted without a HELO; the soak sends no message on its raw session", id.name)
		return true
	}
	if got == policy.ActionAccept {
		if a, err := cs.DataStart(); !step("data", a, err) {
			return true
		}
		for _, h := range [][2]string{{"From", "<a@sender.example>"}, {"To", "<user@receiver.example>"}, {"Subject", "soak"}} {
			if a, err := cs.HeaderField(h[0], h[1], nil); !step("header", a, err) {
				return true
			}
		}
		if a, err := cs.HeaderEnd(); !step("eoh", a, err) {
			return true
		}
		if a, err := cs.BodyChunk([]byte("soak\r\n")); !step("body", a, err) {
			return true
		}
		if _, a, err := cs.End(); !step("eom", a, err) {
			return true
		}
		c.accepted.Add(1)
	} else {
		c.refused.Add(1)
	}
	if cs == nil {
		// noHeloSession has closed its connection.
	} else if err := cs.Abort(nil); err != nil && !stopped.Load() {
		c.fail("%s: abort: %v", id.name, err)
		return true
	}
	c.sessions.Add(1)
	if !wasStopped && stopped.Load() {
		c.drained.Add(1) // in flight at SIGTERM, finished by the drain
	}
	c.mu.Lock()
	c.latencies = append(c.latencies, time.Since(start))
	c.mu.Unlock()
	return true
}

// proc is what /proc says of the daemon.
type proc struct {
	rssKB, threads, fds int
}

func sample(pid int) proc {
	var p proc
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			p.rssKB, _ = strconv.Atoi(f[1])
		case "Threads:":
			p.threads, _ = strconv.Atoi(f[1])
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	p.fds = len(ents)
	return p
}

func TestSoak(t *testing.T) {
	if os.Getenv("HELOGUARD_SOAK") != "1" {
		t.Skip("the soak test runs with HELOGUARD_SOAK=1 (make soak)")
	}
	duration := time.Duration(envInt("SOAK_DURATION_SECONDS", 60)) * time.Second
	if d, err := time.ParseDuration(os.Getenv("SOAK_DURATION")); err == nil && d > 0 {
		duration = d
	}
	workers := envInt("SOAK_CONCURRENCY", 200)
	reloads := envInt("SOAK_RELOADS", 50)

	sc, dns := e2e.StartDNS(t)
	ids := identities(sc)
	bin := e2e.Build(t)
	dir := e2e.WorldDir(t)
	sock := filepath.Join(dir, "heloguard.sock")
	cfg := e2e.Config{
		DNS:    dns.Addr,
		Listen: []string{"unix:" + sock},
		Extra:  fmt.Sprintf("max_sessions: %d\ndrain_timeout: 10s\n", workers+50),
	}
	hg := e2e.StartDaemon(t, bin, cfg)
	pid := hg.PID()
	good, err := os.ReadFile(hg.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}

	c := &counters{}
	var stopped atomic.Bool
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	var port atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				if !session(sock, ids[i%len(ids)], uint16(1024+port.Add(1)%60000), c, &stopped) {
					return
				}
			}
		}(w)
	}

	// Reloads during the load; every tenth with a broken config, which the
	// daemon must refuse and keep running on the old one.
	var applied, broken int
	samples := map[string]proc{}
	loadStart := time.Now()
	for i := 1; i <= reloads; i++ {
		at := loadStart.Add(duration * time.Duration(i) / time.Duration(reloads+1))
		time.Sleep(time.Until(at))
		if i == reloads/10 && samples["start"].rssKB == 0 {
			samples["start"] = sample(pid)
		}
		if i == reloads/2 {
			samples["middle"] = sample(pid)
		}
		if i%10 == 0 {
			if err := os.WriteFile(hg.ConfigPath, []byte("mode: [unclosed\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			hg.Signal(t, syscall.SIGHUP)
			broken++
			time.Sleep(50 * time.Millisecond) // let it read the broken file
			if err := os.WriteFile(hg.ConfigPath, good, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		hg.Signal(t, syscall.SIGHUP)
		applied++
	}
	if samples["start"].rssKB == 0 {
		samples["start"] = sample(pid)
	}
	if samples["middle"].rssKB == 0 {
		samples["middle"] = sample(pid)
	}
	time.Sleep(time.Until(deadline.Add(-time.Second)))
	samples["end"] = sample(pid)
	// Stop under load: the workers still run for a second.
	deadline = time.Now().Add(time.Second) // the workers' loops end by it
	stopped.Store(true)
	stopAt := time.Now()
	hg.Signal(t, syscall.SIGTERM)
	select {
	case <-hg.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("heloguard did not exit within 30s of SIGTERM")
	}
	stopTook := time.Since(stopAt)
	wg.Wait()
	elapsed := time.Since(loadStart)

	// Reloads: count what the daemon says it did.
	okReloads := strings.Count(hg.Stderr(), `"msg":"config reloaded"`)
	failedReloads := strings.Count(hg.Stderr(), `"msg":"reload failed; the previous config keeps running"`)
	if okReloads != applied || failedReloads != broken {
		t.Errorf("reloads: the daemon applied %d and refused %d; sent %d good and %d broken", okReloads, failedReloads, applied, broken)
	}
	if err := hg.ExitErr(); err != nil {
		t.Errorf("heloguard exited with %v after SIGTERM, want status 0", err)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("the socket %s is still there after a clean stop", sock)
	}
	// Every decision line is a record whose verdict is the scenario's.
	type key struct {
		ip   netip.Addr
		helo string
	}
	want := map[key]policy.Action{}
	for _, id := range ids {
		want[key{netip.MustParseAddr(id.ip).Unmap(), id.helo}] = id.want
	}
	decisions, _, bad := hg.Decisions()
	wrongLogged := 0
	for _, d := range decisions {
		if w, ok := want[key{d.ClientIP, d.Helo}]; !ok || d.Action != w {
			wrongLogged++
		}
	}
	if len(bad) > 0 || wrongLogged > 0 {
		t.Errorf("decision log: %d lines that are not records, %d with another verdict than the scenario's", len(bad), wrongLogged)
	}
	// Nothing grows: after warm-up, memory, threads and descriptors stay level.
	s, m, e := samples["start"], samples["middle"], samples["end"]
	if e.rssKB > 2*m.rssKB+50*1024 || e.fds > s.fds+workers || e.threads > 2*s.threads+20 {
		t.Errorf("growth under load: start %+v, middle %+v, end %+v", s, m, e)
	}
	if n := c.errors.Load(); n > 0 {
		t.Errorf("%d errors; the first: %s", n, strings.Join(c.firstErrors, "\n  "))
	}
	// A restart binds the same socket at once.
	restartAt := time.Now()
	hg2 := e2e.StartDaemon(t, bin, cfg)
	restart := time.Since(restartAt)
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the restarted daemon has no socket at %s: %v", sock, err)
	}
	hg2.Stop(t)

	c.mu.Lock()
	sort.Slice(c.latencies, func(i, j int) bool { return c.latencies[i] < c.latencies[j] })
	pct := func(p float64) time.Duration {
		if len(c.latencies) == 0 {
			return 0
		}
		return c.latencies[int(p*float64(len(c.latencies)-1))]
	}
	c.mu.Unlock()
	t.Logf("soak: %s, %d workers, %d scenario identities", duration, workers, len(ids))
	t.Logf("sessions: %d completed (%d accepted with a message, %d refused at RCPT), %.0f/s; latency p50 %v p99 %v max %v",
		c.sessions.Load(), c.accepted.Load(), c.refused.Load(), float64(c.sessions.Load())/elapsed.Seconds(), pct(0.5), pct(0.99), pct(1))
	t.Logf("errors: %d, wrong verdicts: %d (at RCPT), %d (in the log); decision lines: %d", c.errors.Load(), c.wrong.Load(), wrongLogged, len(decisions))
	t.Logf("reloads: %d applied, %d refused (broken config), as sent", okReloads, failedReloads)
	t.Logf("daemon (/proc): start %+v, middle %+v, end %+v", s, m, e)
	t.Logf("stop under load: exited %v after SIGTERM; %d sessions in flight drained, %d connections refused or cut; socket removed; restart listening after %v",
		stopTook.Round(time.Millisecond), c.drained.Load(), c.refusedConnects.Load(), restart.Round(time.Millisecond))
}

// noHeloSession plays a session without HELO as Postfix sends it (protocol 6,
// every action and event offered): CONNECT, MAIL, RCPT, and returns the reply
// to RCPT; CONNECT and MAIL get none from heloguard (SMFIP_NR_CONN,
// NR_MAIL), which it must have negotiated.
func noHeloSession(sock, ip string, port uint16) (*gomilter.Action, error) {
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	packet := func(code byte, data ...[]byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(1+len(bytes.Join(data, nil))))
		return append(append(b, code), bytes.Join(data, nil)...)
	}
	cstr := func(s string) []byte { return append([]byte(s), 0) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	fam := byte('4')
	if strings.Contains(ip, ":") {
		fam = '6'
	}
	if _, err := c.Write(packet('O', u32(6), u32(0x1ff), u32(0x1fffff))); err != nil {
		return nil, err
	}
	read := func() (byte, []byte, error) {
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return 0, nil, err
		}
		data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
		_, err := io.ReadFull(c, data)
		return hdr[4], data, err
	}
	code, data, err := read()
	if err != nil || code != 'O' || len(data) < 12 {
		return nil, fmt.Errorf("negotiation: %c %v", code, err)
	}
	if p := binary.BigEndian.Uint32(data[8:]); p&uint32(gomilter.OptNoConnReply|gomilter.OptNoMailReply) != uint32(gomilter.OptNoConnReply|gomilter.OptNoMailReply) {
		return nil, fmt.Errorf("heloguard negotiated protocol %#x, without NR_CONN and NR_MAIL", p)
	}
	var out []byte
	out = append(out, packet('C', cstr("["+ip+"]"), []byte{fam}, binary.BigEndian.AppendUint16(nil, port), cstr(ip))...)
	out = append(out, packet('M', cstr("<soak@sender.example>"))...)
	out = append(out, packet('R', cstr("<user@receiver.example>"))...)
	if _, err := c.Write(out); err != nil {
		return nil, err
	}
	code, data, err = read()
	if err != nil {
		return nil, fmt.Errorf("rcpt: %w", err)
	}
	switch code {
	case 'c':
		return &gomilter.Action{Type: gomilter.ActionContinue}, nil
	case 'y':
		reply := strings.TrimRight(string(data), "\x00")
		n, _ := strconv.Atoi(reply[:min(3, len(reply))])
		return &gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: uint16(n), SMTPReply: reply}, nil
	}
	return nil, fmt.Errorf("rcpt: reply %q", code)
}
