package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// conn wraps an MTA's milter socket: deadlines on reads and writes (go-milter
// sets none, so a hung MTA would hold a goroutine forever), packet framing and
// limits (see Read), delayed ACKs off on TCP, and the session's end when the MTA
// closes it (go-milter has no close callback).
//
// Two deadlines: between commands the socket may idle for readTimeout (long:
// it idles while the SMTP client sends DATA); a packet once begun must arrive
// whole within packetTimeout, and so must the first packet after connecting,
// so that a peer that stalls holds its session slot that long only.
type conn struct {
	net.Conn
	r             *bufio.Reader
	srv           *Server
	sess          *session
	readTimeout   time.Duration
	packetTimeout time.Duration
	tcp           bool
	once          sync.Once
	out           []byte               // bytes written and not yet sent, see Write
	held          []byte               // the rest of a packet read whole, for go-milter (holdPacket)
	hold          []byte               // holdPacket's buffer, reused
	protocol      gomilter.OptProtocol // the protocol flags negotiated: which events get no reply
	ended         bool                 // the MTA quit, closed the socket, or the conn dropped it
	deadline      time.Time            // the read and write deadline now set
	left          int                  // bytes of the current packet go-milter has yet to read
	reply         [5]byte              // a continue for a skipped packet
	started       bool                 // a whole packet has arrived
	packetEnd     time.Time            // the deadline of the packet under way; zero between packets
	waiting       wait                 // what the last blocking read waited for
}

// wait is what a read waits for, for the log when it times out.
type wait int

const (
	waitFirst  wait = iota // the first packet after connecting (packetTimeout)
	waitIdle               // the next packet, between commands (readTimeout)
	waitPacket             // the rest of a packet under way (packetTimeout)
)

// refreshDeadline keeps the socket's deadline readTimeout ahead. Setting a
// deadline costs a lock and a timer update in the runtime, so it is moved at
// most once a second rather than on every packet.
func (c *conn) refreshDeadline() error {
	if c.readTimeout <= 0 {
		return c.setDeadline(time.Time{})
	}
	now := time.Now()
	if c.deadline.Sub(now) > c.readTimeout-time.Second {
		return nil
	}
	return c.setDeadline(now.Add(c.readTimeout))
}

// packetDeadline holds the socket's deadline at the end of the packet under
// way: packetTimeout after it began (or after connecting, for the first), or
// readTimeout if that is shorter.
func (c *conn) packetDeadline() error {
	t := c.packetTimeout
	if c.readTimeout > 0 && (t <= 0 || c.readTimeout < t) {
		t = c.readTimeout
	}
	if t <= 0 {
		return c.setDeadline(time.Time{})
	}
	if c.packetEnd.IsZero() {
		c.packetEnd = time.Now().Add(t)
	}
	return c.setDeadline(c.packetEnd)
}

func (c *conn) setDeadline(t time.Time) error {
	if t.Equal(c.deadline) {
		return nil
	}
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

// Write sends what go-milter writes, a packet at a time in two writes (the
// length and command, then the data). Bytes are held until they end a
// packet, and modification packets (add, insert, change header, quarantine,
// …), which are only sent at end of message and are always followed by the
// final reply, until that reply: each reply, with the modifications before
// it, goes out in one system call.
func (c *conn) Write(p []byte) (int, error) {
	c.out = append(c.out, p...)
	end, last := packetsEnd(c.out)
	if end < len(c.out) || isModification(last) {
		return len(p), nil
	}
	if err := c.refreshDeadline(); err != nil {
		return 0, err
	}
	_, err := c.Conn.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		c.ended = true
		return 0, err
	}
	return len(p), nil
}

// packetsEnd returns where the last whole milter packet in b ends, and its
// command (0 if none).
func packetsEnd(b []byte) (end int, last byte) {
	for len(b)-end >= 5 {
		size := int(binary.BigEndian.Uint32(b[end:]))
		if size == 0 || len(b)-end-4 < size {
			break
		}
		last = b[end+4]
		end += 4 + size
	}
	return end, last
}

// isModification reports whether code is that of a packet carrying a message
// modification (SMFIR_ADDRCPT, DELRCPT, REPLBODY, ADDHEADER, CHGHEADER,
// INSHEADER, QUARANTINE, CHGFROM, ADDRCPT_PAR).
func isModification(code byte) bool {
	switch code {
	case '+', '-', 'b', 'h', 'm', 'i', 'q', 'e', '2':
		return true
	}
	return false
}

// The conn keeps the socket's deadlines itself (refreshDeadline,
// packetDeadline); go-milter's, set around each packet, would undo them.
func (c *conn) SetDeadline(time.Time) error      { return nil }
func (c *conn) SetReadDeadline(time.Time) error  { return nil }
func (c *conn) SetWriteDeadline(time.Time) error { return nil }

// Limits on the packets an MTA sends.
const (
	// maxPacket bounds a packet go-milter reads into memory (its own limit is
	// 512 MiB, read whole and copied again into strings). The largest packets
	// Postfix and Sendmail send are body chunks (MILTER_CHUNK_SIZE, 65535
	// bytes) and header fields; both are skipped here unless they are
	// Authentication-Results headers (see skippable), so what reaches
	// go-milter is a command with a line of SMTP (2 KiB at most in Postfix and
	// Sendmail), a macro packet, or an Authentication-Results header. A
	// longer packet ends the session before anything of it is allocated.
	maxPacket = 64<<10 + 1<<10
)

// Read hands go-milter the MTA's packets. It looks at each packet's length and
// command before go-milter does: a packet longer than maxPacket ends the
// session (go-milter would allocate it whole), and packets the session has no
// use for, which go-milter would buffer and keep, are answered here and
// discarded as they stream in (skippable). Reads go through a buffer:
// go-milter reads each packet's 4-byte length and its body in two reads,
// which would be two system calls per packet.
func (c *conn) Read(p []byte) (int, error) {
	for c.left == 0 && len(c.held) == 0 {
		if err := c.nextPacket(); err != nil {
			return 0, err
		}
	}
	if len(c.held) > 0 {
		n := copy(p, c.held)
		c.held = c.held[n:]
		return n, nil
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	if c.r.Buffered() == 0 {
		if err := c.awaitMore(); err != nil {
			return 0, err
		}
	}
	n, err := c.r.Read(p)
	c.left -= n
	if err != nil {
		return n, c.readFailed(err, true)
	}
	if c.left == 0 {
		c.packetDone()
	}
	return n, nil
}

// nextPacket waits for the next packet's length and command. It returns with
// c.left set to the packet's size, or having answered and discarded a
// skippable packet (c.left still 0), or with an error that ends the session:
// io.EOF when the session ends between packets, which go-milter takes for the
// MTA's close and does not log again.
func (c *conn) nextPacket() error {
	if c.r.Buffered() == 0 {
		if err := c.awaitPacket(); err != nil {
			return err
		}
		if _, err := c.r.Peek(1); err != nil {
			return c.readFailed(err, false)
		}
	}
	hdr, err := c.peek(4)
	if err != nil {
		return c.readFailed(err, true)
	}
	size := binary.BigEndian.Uint32(hdr)
	if size == 0 {
		return c.drop("a zero-length packet")
	}
	hdr, err = c.peek(5)
	if err != nil {
		return c.readFailed(err, true)
	}
	// The command is copied: hdr points into the buffer, which the next peek
	// may move.
	code := hdr[4]
	skip, err := c.skippable(code, size)
	if err != nil {
		return c.readFailed(err, true)
	}
	if skip {
		return c.skipPacket(code, size)
	}
	if size > maxPacket {
		return c.drop(fmt.Sprintf("a packet (command %q) announced %d bytes; the limit is %d", code, size, maxPacket))
	}
	switch code {
	case 'C', 'M', 'R':
		return c.holdPacket(code, size)
	}
	c.left = 4 + int(size)
	if code == 'Q' {
		c.ended = true // SMFIC_QUIT: the MTA is done with this connection
	}
	return nil
}

// holdPacket reads a CONNECT, MAIL or RCPT packet whole and checks it before
// go-milter sees it. go-milter cuts these packets at their first NUL without
// checking there is one (and a CONNECT's family byte after it): such a packet
// would panic its session's goroutine, and with it the whole daemon (go-milter
// recovers no panic). It ends the session here instead. A CONNECT with an
// address go-milter would refuse is handed on as family U (connectAsUnknown):
// go-milter would end the session (the MTA then applies its
// milter_default_action, a tempfail in Postfix); the session instead judges
// such a client by the {client_addr} macro or the host name, or by
// unknown_client_action (clientIP).
func (c *conn) holdPacket(code byte, size uint32) error {
	c.hold = slices.Grow(c.hold[:0], 4+int(size))[:4+int(size)]
	pkt := c.hold
	for got := 0; got < len(pkt); {
		if c.r.Buffered() == 0 {
			if err := c.awaitMore(); err != nil {
				return err
			}
		}
		n, err := c.r.Read(pkt[got:])
		got += n
		if err != nil && got < len(pkt) {
			return c.readFailed(err, true)
		}
	}
	c.packetDone()
	data := pkt[5:]
	nul := bytes.IndexByte(data, 0)
	if nul < 0 || code == 'C' && nul == len(data)-1 {
		c.srv.metrics.protocolError(ProtocolMalformed)
		return c.drop(fmt.Sprintf("a malformed packet (command %q): no NUL-terminated first string, or a CONNECT without its family", code))
	}
	if code == 'C' {
		pkt = connectAsUnknown(pkt)
	}
	c.held = pkt
	return nil
}

// connectAsUnknown returns a CONNECT packet (length, 'C', host NUL, family,
// port, address NUL) as it is, or, when its family is 4 or 6 and go-milter
// would not take its address, as family U: length, 'C', host NUL, 'U'.
func connectAsUnknown(pkt []byte) []byte {
	data := pkt[5:]
	host, rest, ok := bytes.Cut(data, []byte{0})
	if !ok || len(rest) < 3 || rest[0] != '4' && rest[0] != '6' {
		return pkt // no family to judge, or no port: go-milter's to refuse
	}
	addr, _, _ := bytes.Cut(rest[3:], []byte{0})
	if goMilterTakes(rest[0], string(addr)) {
		return pkt
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+1+len(host)+2), uint32(1+len(host)+2))
	out = append(out, 'C')
	out = append(out, host...)
	return append(out, 0, 'U')
}

// goMilterTakes mirrors go-milter's check of a CONNECT address (session.go,
// processMsg).
func goMilterTakes(family byte, addr string) bool {
	if family == '4' {
		ip := net.ParseIP(addr)
		return ip != nil && ip.To4() != nil
	}
	addr = strings.TrimPrefix(addr, "IPv6:")
	if len(addr) > 2 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		addr = addr[1 : len(addr)-1]
	}
	return net.ParseIP(addr) != nil
}

// peek returns the next n bytes (n at most the buffer's size) without
// consuming them, waiting for them if they are not there yet.
func (c *conn) peek(n int) ([]byte, error) {
	if c.r.Buffered() < n {
		if err := c.awaitMore(); err != nil {
			return nil, err
		}
	}
	return c.r.Peek(n)
}

// arName is the header field the session wants to see: every other header
// field, and every body chunk, is skipped.
const arName = "Authentication-Results"

// skippable reports whether a packet is one the session has no use for, which
// the conn discards itself (skipPacket answers it if its event was negotiated
// with a reply): body chunks (the session ignores the body; not asked for),
// macros of stages the session does not read (unusedMacros), and header
// fields other than Authentication-Results (the only one the session looks
// at). Such packets are discarded as they arrive, whatever their size, where
// go-milter would read each whole: Postfix passes a header of up to
// header_size_limit (100 KiB by default) on to milters.
//
// The MTA counts header positions by name without regard to ASCII case, so a
// header packet is passed on unless its first byte is not NUL and its name, up
// to the first NUL or the end, is not Authentication-Results in any ASCII
// case (go-milter ends the session on a packet that is not name NUL value NUL).
func (c *conn) skippable(code byte, size uint32) (bool, error) {
	switch code {
	case 'B':
		return true, nil
	case 'D':
		return c.unusedMacros(size)
	case 'L':
	default:
		return false, nil
	}
	n := min(int(size)-1, len(arName)+1) // the data bytes that decide
	b, err := c.peek(5 + n)
	if err != nil {
		return false, err
	}
	data := b[5:]
	switch {
	case len(data) == 0 || data[0] == 0:
		return false, nil // let go-milter make of it what it does
	case len(data) < len(arName) || !asciiEqualFold(data[:len(arName)], arName):
		return true, nil
	case len(data) == len(arName) || data[len(arName)] == 0:
		return false, nil // Authentication-Results
	}
	return true, nil // a longer name
}

// unusedMacros reports whether a macro packet is for a stage whose macros the
// session never reads: only those of CONNECT, MAIL, RCPT and end of message
// are (negotiation asks for no others). go-milter would keep the last of each
// stage for the whole connection.
func (c *conn) unusedMacros(size uint32) (bool, error) {
	if size < 2 {
		return false, nil // let go-milter make of it what it does
	}
	b, err := c.peek(6)
	if err != nil {
		return false, err
	}
	switch b[5] {
	case 'C', 'M', 'R', 'E':
		return false, nil
	}
	return true, nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// skipPacket discards a packet of size bytes (after its length) as it
// arrives, and answers it with continue unless the event was negotiated
// without a reply.
func (c *conn) skipPacket(code byte, size uint32) error {
	for left := 4 + int64(size); left > 0; {
		if c.r.Buffered() == 0 {
			if err := c.awaitMore(); err != nil {
				return err
			}
			if _, err := c.r.Peek(1); err != nil {
				return c.readFailed(err, true)
			}
		}
		n, _ := c.r.Discard(int(min(left, int64(c.r.Buffered())))) // no error: what it discards is buffered
		left -= int64(n)
	}
	c.packetDone()
	if code == 'D' || code == 'L' && c.protocol&gomilter.OptNoHeaderReply != 0 || code == 'B' && c.protocol&gomilter.OptNoBodyReply != 0 {
		return nil // macros get no reply; the others were negotiated without one
	}
	// SMFIR_CONTINUE, what go-milter would have answered.
	c.reply = [5]byte{0, 0, 0, 1, 'c'}
	_, err := c.Write(c.reply[:])
	return err
}

// awaitPacket prepares a read that waits for a packet to begin: for
// readTimeout between commands, for packetTimeout after connecting.
func (c *conn) awaitPacket() error {
	var err error
	if c.started {
		c.waiting = waitIdle
		err = c.refreshDeadline()
	} else {
		c.waiting = waitFirst
		err = c.packetDeadline()
	}
	if err != nil {
		return err
	}
	if c.tcp {
		c.quickAck()
	}
	return nil
}

// awaitMore prepares a read that waits for the rest of a packet.
func (c *conn) awaitMore() error {
	c.waiting = waitPacket
	if err := c.packetDeadline(); err != nil {
		return err
	}
	if c.tcp {
		c.quickAck()
	}
	return nil
}

// packetDone is called when a packet has been read whole.
func (c *conn) packetDone() {
	c.started = true
	c.packetEnd = time.Time{}
}

// readFailed logs why a read ended the session and returns the error to give
// go-milter: io.EOF between packets (go-milter does not log it), the error
// itself within one.
func (c *conn) readFailed(err error, inPacket bool) error {
	c.ended = true
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		switch c.waiting {
		case waitFirst:
			c.logDrop(fmt.Sprintf("no whole packet within packet_timeout (%s) of connecting", c.packetTimeout))
		case waitIdle:
			c.logDrop(fmt.Sprintf("no packet for read_timeout (%s)", c.readTimeout))
		default:
			c.logDrop(fmt.Sprintf("a packet incomplete after packet_timeout (%s)", c.packetTimeout))
		}
	case errors.Is(err, io.EOF) && !inPacket:
		return io.EOF // the MTA closed the connection
	case errors.Is(err, io.EOF):
		c.logDrop("the MTA closed the connection within a packet")
		return io.ErrUnexpectedEOF
	case errors.Is(err, net.ErrClosed):
		return err // we closed it (shutdown)
	default:
		c.logDrop(err.Error())
	}
	if inPacket {
		return err
	}
	return io.EOF
}

// drop ends the session for a reason of the packet stream's: logged, and
// io.EOF to go-milter, which then closes the connection without a word.
func (c *conn) drop(reason string) error {
	c.ended = true
	c.logDrop(reason)
	return io.EOF
}

func (c *conn) logDrop(reason string) {
	attrs := []any{"reason", reason}
	if s := c.sess; s != nil && s.ip.IsValid() {
		attrs = append(attrs, "client_ip", s.ip.String())
	}
	c.srv.ops.Warn("closing the milter connection", attrs...)
}

// quickAck turns off delayed ACKs before each read. Sendmail writes each milter
// packet in two writes with Nagle's algorithm on: its second write waits for our
// ACK of the first, which Linux delays by up to 40 ms — per stage. TCP_QUICKACK is
// not sticky, so it is set again before every read.
func (c *conn) quickAck() {
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}

// Close is called by go-milter when the session ends. If neither the MTA nor
// the conn ended it, go-milter did, on a command it could not take (a CONNECT
// with an address that does not parse, an unknown command, …; it logs which):
// counted as a malformed packet stream.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if !c.ended {
			c.srv.metrics.protocolError(ProtocolMalformed)
		}
		if c.sess != nil {
			c.sess.closed()
		}
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
		<-c.srv.slots
		c.srv.sessions.Done()
	})
	return err
}
