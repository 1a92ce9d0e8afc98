package milter_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/policy"
)

// Bounds on what a peer can make a session keep, log or allocate.

// longName is a dotted name of n bytes: labels of eight letters.
func longName(n int) string {
	return strings.Repeat("abcdefgh.", n/9+1)[:n-1] + "x"
}

// A HELO longer than RFC 5321 allows a domain (255 octets) is judged as
// invalid and kept (and logged) as its first 255 bytes and a marker.
func TestLongHeloClipped(t *testing.T) {
	h := start(t, "")
	const n = 60000 // close to the largest packet the server takes
	helo := longName(n)
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(oneToOneIP))
	wantContinue(t, "helo", m.helo(helo))
	wantContinue(t, "mail", m.mail("<a@one-to-one.example>"))
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 550, "5.5.2 ")
	m.cs.Close()
	if !waitFor(5*time.Second, func() bool { return len(h.log.lines()) > 0 }) {
		t.Fatal("no decision line")
	}
	for _, line := range h.log.lines() {
		if len(line) > 2048 {
			t.Errorf("decision line of %d bytes for a HELO of %d", len(line), n)
		}
	}
	logs := h.log.decisions(t)
	if len(logs) != 1 {
		t.Fatalf("decision lines %+v", logs)
	}
	l := logs[0]
	want := helo[:255] + "…[cut 59745 bytes]"
	if l.Helo != want || l.Rule != "helo-syntax" || l.Evidence.HeloForm != policy.HeloInvalid {
		t.Errorf("helo %q rule %s helo_form %s; want helo %q, helo-syntax, invalid", l.Helo, l.Rule, l.Evidence.HeloForm, want)
	}
}

// A HELO of 255 bytes or less is kept as it is, however odd.
func TestShortHeloKept(t *testing.T) {
	h := start(t, "")
	helo := longName(255)
	m := h.dial(t)
	m.connect(oneToOneIP)
	m.helo(helo)
	m.mail("<a@one-to-one.example>")
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 550, "5.5.2 ")
	if logs := h.log.decisions(t); len(logs) != 1 || logs[0].Helo != helo {
		t.Errorf("decision lines %+v", logs)
	}
}

// Client-controlled strings the session keeps are cut too: the host name, the
// queue id, the authenticated user; an over-long recipient is never exempt.
func TestClientTextClipped(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	host := "[" + longName(3000) + "]"
	a, err := m.cs.Conn(host, '4', 40000, forgerIP)
	wantContinue(t, "connect", m.check("connect", a, err))
	m.helo(o365Helo)
	m.macros.Set("i", strings.Repeat("Q", 5000))
	m.macros.Set("{auth_authen}", "")
	m.mail("<ceo@contoso.example>")
	// RFC 5321 4.5.3.1.3: a path is at most 256 octets; this one's local
	// part would be exempt if the address were cut before its last @.
	wantReply(t, "rcpt long", m.rcpt("<postmaster@"+longName(300)+"@receiver.example>"), 550, "5.7.23 ")
	m.cs.Close()
	if !waitFor(5*time.Second, func() bool { return len(h.log.lines()) > 0 }) {
		t.Fatal("no decision line")
	}
	for _, line := range h.log.lines() {
		if len(line) > 2048 {
			t.Errorf("decision line of %d bytes", len(line))
		}
	}
	l := h.log.decisions(t)[0]
	if want := host[:255] + "…[cut 2747 bytes]"; l.ClientHost != want {
		t.Errorf("client_host %q, want %q", l.ClientHost, want)
	}
	if want := strings.Repeat("Q", 64) + "…[cut 4936 bytes]"; l.QueueID != want {
		t.Errorf("queue_id %q, want %q", l.QueueID, want)
	}
}

// What a session keeps of a peer's text is bounded: sessions that sent a
// 30 KB HELO and a 3 KB host name each hold a few KiB once the packets are
// handled, not the text.
func TestSessionMemoryBound(t *testing.T) {
	h := start(t, "")
	const sessions = 100
	helo, host := longName(30000), "["+longName(3000)+"]"
	open := func() {
		m := h.dial(t)
		a, err := m.cs.Conn(host, '4', 40000, oneToOneIP)
		m.check("connect", a, err)
		m.helo(helo)
	}
	open() // warm up: caches, pools
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < sessions; i++ {
		open()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := h.srv.Sessions(); n != sessions+1 {
		t.Fatalf("%d sessions open, want %d", n, sessions+1)
	}
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / sessions
	t.Logf("%d bytes of heap per session (%d -> %d)", per, before.HeapAlloc, after.HeapAlloc)
	if per > 16<<10 {
		t.Errorf("each session holds %d bytes of heap after a %d-byte HELO", per, len(helo))
	}
}
