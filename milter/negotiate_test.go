package milter_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// optnegReply sends the MTA's option negotiation (version, actions, protocol
// flags offered) on a raw connection and returns heloguard's answer.
func optnegReply(t *testing.T, addr string, version uint32, actions gomilter.OptAction, protocol gomilter.OptProtocol) (uint32, gomilter.OptAction, gomilter.OptProtocol) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(optneg(version, actions, protocol)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	code, body, err := readPacket(c)
	if err != nil {
		t.Fatalf("no answer to OPTNEG: %v", err)
	}
	if code != 'O' || len(body) < 12 {
		t.Fatalf("answer to OPTNEG is %q with %d bytes, want 'O' with 12 or more", code, len(body))
	}
	return binary.BigEndian.Uint32(body), gomilter.OptAction(binary.BigEndian.Uint32(body[4:])),
		gomilter.OptProtocol(binary.BigEndian.Uint32(body[8:]))
}

// What Postfix 3.7 offers (its smtpd -v log: my_actions=0x1ff my_events=0x1fffff).
const (
	postfixActions  = gomilter.OptAction(0x1ff)
	postfixProtocol = gomilter.OptProtocol(0x1fffff)
)

// heloguard asks for version 6, the header fields without replies, no DATA,
// EOH, body or unknown events, and no replies at the stages before reject_at
// (at none but end of message in monitor mode); a version 2 MTA gets version
// 2 and only flags it offered.
func TestNegotiation(t *testing.T) {
	base := gomilter.OptNoHeaderReply | gomilter.OptNoBody | gomilter.OptNoEOH | gomilter.OptNoData | gomilter.OptNoUnknown
	wantActions := gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine | gomilter.OptSetMacros
	for _, tc := range []struct {
		name, config string
		want         gomilter.OptProtocol
	}{
		{"reject_at rcpt", "reject_at: rcpt\n", base | gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply},
		{"reject_at mail", "reject_at: mail\n", base | gomilter.OptNoConnReply | gomilter.OptNoHeloReply},
		{"reject_at helo", "reject_at: helo\n", base | gomilter.OptNoConnReply},
		{"reject_at connect", "reject_at: connect\n", base},
		{"monitor", "mode: monitor\n", base | gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.config)
			v, a, p := optnegReply(t, h.addr, 6, postfixActions, postfixProtocol)
			if v != 6 || a != wantActions || p != tc.want {
				t.Errorf("negotiated version %d actions %v protocol %v\nwant version 6 actions %v protocol %v", v, a, p, wantActions, tc.want)
			}
		})
	}
	t.Run("version 2 MTA", func(t *testing.T) {
		h := start(t, "")
		v2 := gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo |
			gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH
		v, a, p := optnegReply(t, h.addr, 2, gomilter.OptAddHeader|gomilter.OptChangeHeader|gomilter.OptQuarantine, v2)
		if v != 2 || a != gomilter.OptAddHeader|gomilter.OptChangeHeader|gomilter.OptQuarantine || p != gomilter.OptNoBody|gomilter.OptNoEOH {
			t.Errorf("negotiated version %d actions %v protocol %v; want version 2, the actions offered, NOBODY|NOEOH", v, a, p)
		}
	})
	t.Run("version 1 MTA", func(t *testing.T) {
		h := start(t, "")
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(optneg(1, 0, 0))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 64)); err == nil {
			t.Errorf("a version 1 MTA got %d bytes of answer; want the connection closed", n)
		}
	})
}

// With header fields negotiated without replies, nothing at all is sent back
// to them (nor to macro packets, read or discarded), Authentication-Results
// included (which go-milter handles) and others (which the conn discards):
// the MTA's next reply read is end of message's. Each run stops writing for a
// moment after the length and command of one header field, as go-milter's
// client and Sendmail do (two writes a packet): the conn has the start of a
// packet and must wait for more, moving its read buffer (a command byte read
// from the buffer before the move was once taken after it).
func TestHeadersGetNoReply(t *testing.T) {
	h := start(t, "")
	for split := range 22 {
		headersGetNoReply(t, h, split)
	}
}

func headersGetNoReply(t *testing.T, h *harness, split int) {
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var in []byte
	in = append(in, optneg(6, postfixActions, postfixProtocol)...)
	conn := append(cstr("[104.47.38.131]"), '4', 0x9c, 0x40)
	in = append(in, packet('C', append(conn, cstr("104.47.38.131")...))...)
	// Macros of a stage the session does not read: discarded by the conn, no reply.
	in = append(in, packet('D', append([]byte{'H'}, cstr("{tls_version}", "TLSv1.3")...))...)
	in = append(in, packet('H', cstr("NAM02-BL2-obe.outbound.protection.outlook.com"))...)
	in = append(in, packet('M', cstr("<a@contoso.example>"))...)
	in = append(in, packet('R', cstr("<user@receiver.example>"))...)
	at := 0 // where the writing pauses
	in = append(in, packet('L', cstr("X-Long", strings.Repeat("x", 3000)))...)
	for i := range 20 {
		if i == split {
			at = len(in) + 5
		}
		in = append(in, packet('L', cstr(fmt.Sprintf("X-Header-%d", i), strings.Repeat("v", i)))...)
	}
	if at == 0 {
		at = len(in) + 5
	}
	in = append(in, packet('L', cstr("Authentication-Results", "mx.receiver.example; spf=pass"))...)
	in = append(in, packet('D', append([]byte{'E'}, cstr("i", "4XQ1")...))...)
	in = append(in, packet('E', nil)...)
	// Three writes: up to the last 3 bytes of the packet before, those and
	// the 5, the rest. The conn then holds the 5 bytes just past the start of
	// its buffer, and reading the rest moves them there.
	for _, part := range [][]byte{in[:at-8], in[at-8 : at], in[at:]} {
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	for {
		code, _, err := readPacket(c)
		if err != nil {
			t.Fatalf("pause in header field %d: after %q: %v", split, got, err)
		}
		got = append(got, code)
		if code == 'a' || len(got) > 10 {
			break
		}
	}
	// OPTNEG, RCPT's continue, then end of message: the forged header deleted,
	// ours inserted, accept.
	if string(got) != "Ocmia" {
		t.Errorf("pause in header field %d: answers %q, want \"Ocmia\" (OPTNEG, RCPT continue, change header, insert header, accept)", split, got)
	}
}

// SMFIC_QUIT_NC: the MTA reuses the milter connection for a new SMTP session
// (Postfix and Sendmail do not, libmilter allows it). The first session's
// decision is logged, and the next CONNECT is judged afresh.
func TestQuitNewConnection(t *testing.T) {
	h := start(t, "")
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connect := func(ip string) []byte {
		return packet('C', append(append(cstr("["+ip+"]"), '4', 0x9c, 0x40), cstr(ip)...))
	}
	var in []byte
	in = append(in, optneg(6, postfixActions, postfixProtocol)...)
	in = append(in, connect(forgerIP)...)
	in = append(in, packet('H', cstr(o365Helo))...)
	in = append(in, packet('M', cstr("<a@contoso.example>"))...)
	in = append(in, packet('R', cstr("<user@receiver.example>"))...)
	in = append(in, packet('K', nil)...)
	in = append(in, connect(o365IP)...)
	in = append(in, packet('H', cstr(o365Helo))...)
	in = append(in, packet('M', cstr("<a@contoso.example>"))...)
	in = append(in, packet('R', cstr("<user@receiver.example>"))...)
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	for len(got) < 3 {
		code, _, err := readPacket(c)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, code)
	}
	// OPTNEG; the forger refused at RCPT; the next client continued.
	if string(got) != "Oyc" {
		t.Errorf("answers %q, want \"Oyc\"", got)
	}
	if !waitFor(5*time.Second, func() bool { return len(h.log.lines()) >= 1 }) {
		t.Fatal("no decision line for the first session")
	}
	if l := h.log.decisions(t); l[0].ClientIP.String() != forgerIP || l[0].Action != "reject" {
		t.Errorf("first decision line: %+v", l[0])
	}
}
