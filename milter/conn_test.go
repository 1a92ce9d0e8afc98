package milter_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// What the conn does with packets before go-milter sees them.

// packet is one milter packet: length, command, data.
func packet(code byte, data []byte) []byte {
	p := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(p, code), data...)
}

// optneg is the MTA's option negotiation packet: the version, actions and
// protocol flags it offers.
func optneg(version uint32, actions gomilter.OptAction, protocol gomilter.OptProtocol) []byte {
	d := binary.BigEndian.AppendUint32(nil, version)
	d = binary.BigEndian.AppendUint32(d, uint32(actions))
	d = binary.BigEndian.AppendUint32(d, uint32(protocol))
	return packet('O', d)
}

// readPacket reads one packet the milter sent: its command and data.
func readPacket(c net.Conn) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return 0, nil, err
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
	_, err := io.ReadFull(c, data)
	return hdr[4], data, err
}

// Header fields other than Authentication-Results, and body chunks, are
// answered by the conn and never buffered, whatever their size: Postfix passes
// headers of up to header_size_limit (100 KiB by default) on to milters.
// With protocol version 6 they get no reply (SMFIP_NR_HDR), and the body is
// not sent (SMFIP_NOBODY); with version 2 both are answered.
func TestLongHeaderAndBodyPass(t *testing.T) {
	for _, v := range []uint32{6, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testLongHeaderAndBodyPass(t, v) })
	}
}

func testLongHeaderAndBodyPass(t *testing.T, version uint32) {
	h := start(t, "")
	m := h.dialVersion(t, version)
	m.connect(o365IP)
	m.helo(o365Helo)
	m.mail("<a@contoso.example>")
	m.rcpt("<user@receiver.example>")
	cont := func(what string) func(*gomilter.Action, error) {
		return func(a *gomilter.Action, err error) { wantContinue(t, what, m.check(what, a, err)) }
	}
	cont("data")(m.cs.DataStart())
	cont("long header")(m.cs.HeaderField("References", strings.Repeat("<x@example> ", 200<<10/12), nil))
	cont("header")(m.cs.HeaderField("Authentication-Results", "mx.receiver.example; forged", nil))
	cont("eoh")(m.cs.HeaderEnd())
	for i := 0; i < 3; i++ {
		cont("body")(m.cs.BodyChunk([]byte(strings.Repeat("x", int(gomilter.DataSize64K)))))
	}
	mods, a, err := m.cs.End()
	wantAccept(t, "eom", m.check("eom", a, err))
	if !slices.Equal(deletedAuthResults(mods), []uint32{1}) {
		t.Errorf("the forged Authentication-Results was not deleted: %+v", mods)
	}
	// The session goes on.
	if err := m.cs.Abort(nil); err != nil {
		t.Fatal(err)
	}
	wantContinue(t, "mail 2", m.mail("<a@contoso.example>"))
}

// The MTA counts header positions by name in ASCII case only: a name that
// Unicode case folding would take for Authentication-Results ("Reſults",
// with U+017F) is another header, and must not shift the positions: counted,
// it would make the session delete a second Authentication-Results that the
// MTA does not have, and leave the forged one.
func TestARPositionsCountASCIINamesOnly(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(o365IP)
	m.helo(o365Helo)
	m.mail("<a@contoso.example>")
	m.rcpt("<user@receiver.example>")
	mods, _ := m.message(
		"Authentication-Re\u017fults", "other.example; not an Authentication-Results to Postfix",
		"AUTHENTICATION-RESULTS", "mx.receiver.example; forged",
	)
	if !slices.Equal(deletedAuthResults(mods), []uint32{1}) {
		t.Errorf("want the forged header deleted at position 1: %+v", mods)
	}
}

// An Authentication-Results header longer than the packet limit ends the
// session: it cannot be checked without being read.
func TestOversizedARHeaderEndsSession(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(o365IP)
	m.helo(o365Helo)
	m.mail("<a@contoso.example>")
	m.rcpt("<user@receiver.example>")
	_, err := m.cs.HeaderField("Authentication-Results", "mx.receiver.example; "+strings.Repeat("x", 70<<10), nil)
	if err == nil { // no reply to wait for (SMFIP_NR_HDR): the session ends before end of message
		_, _, err = m.cs.End()
	}
	if err == nil {
		t.Fatal("an Authentication-Results header of 70 KiB was taken")
	}
}

// A packet longer than any an MTA sends ends the session, with a bounded log
// line, before go-milter would read it: a 1 MiB HELO (go-milter itself takes
// up to 512 MiB) is refused here.
func TestHugeHeloEndsSession(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(oneToOneIP)
	helo := longName(1<<20 - 2) // with the command byte and NUL: go-milter's maximum
	a, err := m.cs.Helo(helo)
	if err == nil {
		// The write fits in the socket buffers; the session must be gone. HELO
		// and MAIL get no reply (SMFIP_NR_HELO, NR_MAIL): RCPT waits for one.
		_, err = m.cs.Mail("<a@one-to-one.example>", "")
	}
	if err == nil {
		_, err = m.cs.Rcpt("<user@receiver.example>", "")
	}
	if err == nil {
		t.Fatalf("a %d-byte HELO packet was taken (helo answered %v)", len(helo)+2, a)
	}
	if !waitFor(5*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
		t.Fatal("session not closed")
	}
	var found bool
	for _, line := range h.ops.lines() {
		if len(line) > 1024 {
			t.Errorf("operational line of %d bytes", len(line))
		}
		found = found || strings.Contains(line, "1048576")
	}
	if !found {
		t.Errorf("no operational line names the packet's length: %q", h.ops.lines())
	}
	for _, line := range h.log.lines() {
		if len(line) > 2048 {
			t.Errorf("decision line of %d bytes", len(line))
		}
	}
}

// A packet that announces more than the limit is never allocated: the bytes
// allocated while the server reads its length and closes the session are far
// below the announced size (go-milter alone would allocate all of it, up to
// 512 MiB, before reading the data).
func TestOversizedPacketNotAllocated(t *testing.T) {
	h := start(t, "")
	const announced = 1 << 20 // within go-milter's own limit, so that it would take it
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := binary.BigEndian.AppendUint32(nil, announced)
	if _, err := c.Write(append(hdr, 'H', 'x')); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite() // the rest never comes
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the server did not close the session: %v", err)
	}
	if !waitFor(5*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
		t.Fatal("session not closed")
	}
	runtime.ReadMemStats(&after)
	t.Logf("%d bytes allocated while a %d-byte packet was announced and refused", after.TotalAlloc-before.TotalAlloc, announced)
	if got := after.TotalAlloc - before.TotalAlloc; got > announced/4 {
		t.Errorf("%d bytes allocated for a packet announcing %d", got, announced)
	}
}

// CONNECT, MAIL and RCPT packets that go-milter would slice past their end (no
// NUL after the first string; a CONNECT without its family byte) end their
// own session, counted as malformed; go-milter recovers no panic, so one such
// packet used to be able to end the daemon. The server goes on serving.
func TestMalformedPacketsEndOnlyTheirSession(t *testing.T) {
	h := start(t, "")
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"MAIL without NUL", packet('M', []byte("<a@b.example>"))},
		{"RCPT without NUL", packet('R', []byte("<u@receiver.example>"))},
		{"CONNECT without NUL", packet('C', []byte("host"))},
		{"CONNECT without family", packet('C', []byte("host\x00"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			in := optneg(6, postfixActions, postfixProtocol)
			if tc.pkt[4] != 'C' {
				in = append(in, packet('C', append(cstr("[192.0.2.25]"), '4', 0x9c, 0x40, '1', '9', '2', '.', '0', '.', '2', '.', '2', '5', 0))...)
			}
			if _, err := c.Write(append(in, tc.pkt...)); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("the session was not closed: %v", err)
			}
		})
	}
	// Still serving.
	m := h.dial(t)
	m.connect(oneToOneIP)
	m.helo("mail.one-to-one.example")
	m.mail("<a@one-to-one.example>")
	wantContinue(t, "rcpt after the malformed sessions", m.rcpt("<user@receiver.example>"))
	found := 0
	for _, line := range h.ops.lines() {
		if strings.Contains(line, "a malformed packet") {
			found++
		}
	}
	if found != 4 {
		t.Errorf("%d 'malformed packet' log lines, want 4:\n%s", found, strings.Join(h.ops.lines(), "\n"))
	}
}
