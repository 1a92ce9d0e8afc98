package milter_test

import (
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FuzzMilterPackets feeds bytes to a running heloguard milter server over a
// real unix socket, as an MTA would: one connection per input, written whole,
// then read until the server closes it. The first byte picks the server's
// config (reject_at rcpt, or connect in monitor mode with unknown clients
// rejected); the rest is the stream: truncated, oversized and out-of-order
// packets, garbage macros, odd CONNECT families. The server must not panic
// (go-milter recovers none: a panic would end the daemon), must close every
// session, let its goroutines go, and never hang. Seeds:
// testdata/fuzz/FuzzMilterPackets.
func FuzzMilterPackets(f *testing.F) {
	// go-milter reports panics (and its read errors) on the standard logger.
	stdlog := &syncBuffer{}
	out, flags := log.Writer(), log.Flags()
	log.SetOutput(stdlog)
	f.Cleanup(func() { log.SetOutput(out); log.SetFlags(flags) })

	dir, err := os.MkdirTemp("", "hgfuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	limits := "decision_timeout: 1s\npacket_timeout: 2s\nread_timeout: 5s\n"
	servers := []*harness{
		startOn(f, "unix:"+filepath.Join(dir, "rcpt.sock"), limits),
		startOn(f, "unix:"+filepath.Join(dir, "connect.sock"), limits+"reject_at: connect\nmode: monitor\nunknown_client_action: reject\n"),
	}
	// The servers' goroutines start in the background: take the baseline once
	// they have (the count stays the same for a while), not mid-start.
	settled := func() int {
		last := -1
		for i := 0; i < 100; i++ {
			n := runtime.NumGoroutine()
			if n == last {
				return n
			}
			last = n
			time.Sleep(20 * time.Millisecond)
		}
		return last
	}
	baseline := settled()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 1<<20 {
			return
		}
		h := servers[int(data[0])%len(servers)]
		stdlog.reset()
		before := max(runtime.NumGoroutine(), baseline)
		c, err := net.Dial("unix", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			read <- err
		}()
		// The server may close first (a bad packet): a failed write is fine.
		_, _ = c.Write(data[1:])
		_ = c.(*net.UnixConn).CloseWrite()
		var ne net.Error
		if err := <-read; errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server neither closed nor stopped answering within 10s")
		}
		c.Close()
		if !waitFor(10*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
			t.Fatalf("%d sessions still open after the peer closed", h.srv.Sessions())
		}
		if !waitFor(10*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		if s := stdlog.String(); strings.Contains(s, "panic") {
			t.Fatalf("the server panicked:\n%s", s)
		}
	})
}

func (b *syncBuffer) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
