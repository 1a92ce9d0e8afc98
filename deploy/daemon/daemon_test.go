// Package daemon_test drives the heloguard daemon as an operator does: signals
// for reload, log rotation and shutdown, and bad configs, as a real process.
package daemon_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

const (
	forgerIP = "192.0.2.66"
	o365Helo = "NAM02-BL2-obe.outbound.protection.outlook.com"
)

// forgerAtRcpt runs one milter session for the forger and returns the RCPT reply.
func forgerAtRcpt(t *testing.T, addr string) *gomilter.Action {
	t.Helper()
	s := session(t, addr)
	defer s.Close()
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return s.Conn("["+forgerIP+"]", gomilter.FamilyInet, 40000, forgerIP)
		},
		func() (*gomilter.Action, error) { return s.Helo(o365Helo) },
		func() (*gomilter.Action, error) { return s.Mail("<ceo@contoso.example>", "") },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Rcpt("<user@receiver.example>", "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func session(t *testing.T, addr string) *gomilter.ClientSession {
	t.Helper()
	c := gomilter.NewClient("tcp", addr)
	s, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// t-13-reload: a bad config on SIGHUP is reported with its position and the
// old config keeps serving; a good one takes effect for new sessions.
func TestReload(t *testing.T) {
	_, dns := e2e.StartDNS(t)
	d := e2e.StartDaemon(t, e2e.Build(t), e2e.Config{DNS: dns.Addr})
	if a := forgerAtRcpt(t, d.Addr); a.SMTPCode != 550 {
		t.Fatalf("before reload: %+v", a)
	}
	good, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	bad := string(good) + "max_sessions: lots\n"
	if err := os.WriteFile(d.ConfigPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGHUP)
	if !e2e.WaitFor(10*time.Second, func() bool { return strings.Contains(d.Stderr(), "reload failed") }) {
		t.Fatalf("no 'reload failed' after a bad config; stderr:\n%s", d.Stderr())
	}
	line := strings.Count(bad, "\n")
	if want := filepath.Base(d.ConfigPath) + ":" + strconv.Itoa(line) + ":15"; !strings.Contains(d.Stderr(), want) {
		t.Errorf("the reload error does not name %s; stderr:\n%s", want, d.Stderr())
	}
	if !d.Alive() {
		t.Fatal("the daemon died on a bad config")
	}
	if a := forgerAtRcpt(t, d.Addr); a.SMTPCode != 550 {
		t.Errorf("after a failed reload the old config should still refuse: %+v", a)
	}
	d.Reload(t, e2e.Config{DNS: dns.Addr, Mode: "monitor"})
	if a := forgerAtRcpt(t, d.Addr); a.Type != gomilter.ActionContinue {
		t.Errorf("after reload to monitor mode: %+v, want continue", a)
	}
}

// SIGUSR1 reopens the decision log, as logrotate's postrotate needs.
func TestLogReopen(t *testing.T) {
	_, dns := e2e.StartDNS(t)
	d := e2e.StartDaemon(t, e2e.Build(t), e2e.Config{DNS: dns.Addr})
	forgerAtRcpt(t, d.Addr)
	rotated := d.LogPath + ".1"
	if err := os.Rename(d.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGUSR1)
	if !e2e.WaitFor(10*time.Second, func() bool { return strings.Contains(d.Stderr(), "log reopened") }) {
		t.Fatalf("no reopen reported; stderr:\n%s", d.Stderr())
	}
	forgerAtRcpt(t, d.Addr)
	if !e2e.WaitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(d.LogPath)
		return strings.Contains(string(b), `"msg":"decision"`)
	}) {
		t.Fatal("the new log file did not get the next decision")
	}
	old, _ := os.ReadFile(rotated)
	if n := strings.Count(string(old), `"msg":"decision"`); n != 1 {
		t.Errorf("the rotated log has %d decisions, want 1", n)
	}
}

// SIGTERM drains: a session in flight finishes, then the daemon exits 0.
func TestTermDrains(t *testing.T) {
	_, dns := e2e.StartDNS(t)
	d := e2e.StartDaemon(t, e2e.Build(t), e2e.Config{DNS: dns.Addr})
	s := session(t, d.Addr)
	if _, err := s.Conn("["+forgerIP+"]", gomilter.FamilyInet, 40000, forgerIP); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGTERM)
	if !e2e.WaitFor(10*time.Second, func() bool { return strings.Contains(d.Stderr(), "draining") }) {
		t.Fatalf("no drain reported; stderr:\n%s", d.Stderr())
	}
	if _, err := s.Helo(o365Helo); err != nil {
		t.Fatalf("the session in flight was cut: %v", err)
	}
	if _, err := s.Mail("<a@b.example>", ""); err != nil {
		t.Fatal(err)
	}
	a, err := s.Rcpt("<user@receiver.example>", "")
	if err != nil || a.SMTPCode != 550 {
		t.Fatalf("rcpt during drain: %+v %v", a, err)
	}
	select {
	case <-d.Exited():
		t.Fatal("exited with a session still open")
	default:
	}
	s.Close()
	select {
	case <-d.Exited():
		if err := d.ExitErr(); err != nil {
			t.Errorf("exit status %v, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after the last session closed")
	}
}
