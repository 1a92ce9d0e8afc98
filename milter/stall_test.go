package milter_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// Peers that stall: read_timeout is long (the socket idles while the client
// sends DATA), so a peer that sends part of a packet, or nothing at all after
// connecting, is held to packet_timeout instead. The bounds here are generous:
// they check what happens, not when.

const stallConfig = "max_sessions: 1\nread_timeout: 1h\npacket_timeout: 200ms\n"

// stalls dials the server and sends prefix, then nothing more.
func stall(t *testing.T, h *harness, prefix []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(prefix) > 0 {
		if _, err := c.Write(prefix); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// wantClosed waits (at most 10 s) for the server to close c.
func wantClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the server did not close a stalled peer's connection: %v", err)
	}
}

// wantSlotFree checks that a new MTA connection is served, at max_sessions 1.
func wantSlotFree(t *testing.T, h *harness) {
	t.Helper()
	c := gomilter.NewClient("tcp", h.addr)
	s, err := c.Session(nil)
	if err != nil {
		t.Fatalf("the stalled peer's slot was not freed: %v", err)
	}
	defer s.Close()
	a, err := s.Conn("["+o365IP+"]", gomilter.FamilyInet, 40000, o365IP)
	if err != nil || a.Type != gomilter.ActionContinue {
		t.Fatalf("connect on the freed slot: %v %v", a, err)
	}
}

func TestStalledPeerDropped(t *testing.T) {
	opt := optneg(2, 0x3f, 0)
	helo := packet('H', []byte(o365Helo+"\x00"))
	conn := packet('C', append([]byte("["+o365IP+"]\x004\x9c\x40"), o365IP+"\x00"...))
	for _, tc := range []struct {
		name   string
		prefix []byte
	}{
		{"nothing after connecting", nil},
		{"half a length", opt[:2]},
		{"half the first packet", opt[:8]},
		{"half a HELO", append(append(append([]byte{}, opt...), conn...), helo[:10]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, stallConfig)
			c := stall(t, h, tc.prefix)
			wantClosed(t, c)
			wantSlotFree(t, h)
			var logged bool
			for _, l := range h.ops.lines() {
				logged = logged || strings.Contains(l, "packet_timeout")
			}
			if !logged {
				t.Errorf("no log line names packet_timeout: %q", h.ops.lines())
			}
		})
	}
}

// Between commands, only read_timeout applies: an MTA whose client takes its
// time is not dropped after packet_timeout.
func TestIdleBetweenCommandsKept(t *testing.T) {
	h := start(t, stallConfig)
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(o365IP))
	time.Sleep(600 * time.Millisecond) // three times packet_timeout
	wantContinue(t, "helo", m.helo(o365Helo))
	time.Sleep(600 * time.Millisecond)
	wantContinue(t, "mail", m.mail("<a@contoso.example>"))
}
