package milter_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// The server's life: drain on shutdown, read timeouts, max_sessions, bad
// packets.

// SIGTERM's drain: a session in flight finishes; new connections are refused.
func TestShutdownDrains(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(o365IP)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond) // let Shutdown close the listener
	wantContinue(t, "helo during drain", m.helo(o365Helo))
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a session open", err)
	default:
	}
	m.cs.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := gomilter.NewClient("tcp", h.addr).Session(nil); err == nil {
		t.Error("a new connection was accepted after Shutdown")
	}
}

// An MTA that stops talking is dropped after read_timeout, and its session
// slot is freed: go-milter itself would wait forever.
func TestReadTimeoutDropsHungMTA(t *testing.T) {
	h := start(t, "read_timeout: 300ms\n")
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server sent data to a client that said nothing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent MTA's socket open for 5s with read_timeout 300ms")
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("dropped after %v, before read_timeout", el)
	}
	if !waitFor(2*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
		t.Errorf("%d sessions still counted", h.srv.Sessions())
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// max_sessions bounds concurrent sessions: the next MTA connection waits
// until one ends.
func TestMaxSessions(t *testing.T) {
	h := start(t, "max_sessions: 1\n")
	first := h.dial(t)
	first.connect(o365IP)
	got := make(chan error, 1)
	go func() {
		c := gomilter.NewClient("tcp", h.addr)
		s, err := c.Session(nil) // negotiation needs the server to accept
		if err == nil {
			s.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a second session was served while max_sessions is 1 (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	first.cs.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second session after the first ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second session was not served after the first ended")
	}
}

// A CONNECT without its port makes go-milter answer tempfail by itself and
// build a new backend on the session's goroutine; the session is ended
// instead, and later sessions are unaffected (run with -race).
func TestMalformedConnect(t *testing.T) {
	h := start(t, "")
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(append(optneg(2, 0x31, 0), packet('C', []byte("host\x004"))...)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("the server did not close the session: %v", err)
		}
		c.Close()
		m := h.dial(t)
		wantContinue(t, "connect after a malformed one", m.connect(o365IP))
		wantContinue(t, "helo", m.helo(o365Helo))
	}
}
