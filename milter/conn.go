package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// conn wraps an MTA's milter socket: a deadline on reads and writes (go-milter
// sets none, so a hung MTA would hold a goroutine forever), delayed ACKs off on TCP,
// and the session's end when the MTA closes it (go-milter has no close callback).
type conn struct {
	net.Conn
	r           *bufio.Reader
	srv         *Server
	sess        *session
	readTimeout time.Duration
	tcp         bool
	once        sync.Once
	pending     []byte    // modification packets held back, see Write
	deadline    time.Time // the read and write deadline now set
}

// refreshDeadline keeps the socket's deadline readTimeout ahead. Setting a
// deadline costs a lock and a timer update in the runtime, so it is moved at
// most once a second rather than on every packet.
func (c *conn) refreshDeadline() error {
	if c.readTimeout <= 0 {
		return nil
	}
	now := time.Now()
	if c.deadline.Sub(now) > c.readTimeout-time.Second {
		return nil
	}
	c.deadline = now.Add(c.readTimeout)
	return c.Conn.SetDeadline(c.deadline)
}

// Write sends a packet. Modification packets (add, insert, change header,
// quarantine, …), which are only sent at end of message and are always followed
// by the EOM reply, are held and sent with that reply in one system call: one
// to three fewer per message. go-milter writes each packet in one Write.
func (c *conn) Write(p []byte) (int, error) {
	if isFinalReply(p) {
		// heloguard never answers accept, reject, tempfail or discard; go-milter
		// does on its own for a malformed CONNECT, and would then build a new
		// backend on this session's goroutine, outside the accept loop that
		// hands each backend its conn. Failing the write ends the session
		// first; the MTA applies its default action.
		c.srv.metrics.protocolError(ProtocolMalformed)
		return 0, errFinalReply
	}
	if isModification(p) {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	if err := c.refreshDeadline(); err != nil {
		return 0, err
	}
	if len(c.pending) == 0 {
		return c.Conn.Write(p)
	}
	buf := append(c.pending, p...)
	c.pending = c.pending[:0]
	if _, err := c.Conn.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

var errFinalReply = errors.New("milter: refusing to send a final reply that would replace the session's backend")

// isFinalReply reports whether p is exactly one packet SMFIR_ACCEPT, REJECT,
// TEMPFAIL or DISCARD.
func isFinalReply(p []byte) bool {
	if len(p) != 5 || binary.BigEndian.Uint32(p) != 1 {
		return false
	}
	switch p[4] {
	case 'a', 'r', 't', 'd':
		return true
	}
	return false
}

// isModification reports whether p is exactly one milter packet carrying a
// message modification (SMFIR_ADDRCPT, DELRCPT, REPLBODY, ADDHEADER, CHGHEADER,
// INSHEADER, QUARANTINE, CHGFROM, ADDRCPT_PAR).
func isModification(p []byte) bool {
	if len(p) < 5 || int(binary.BigEndian.Uint32(p)) != len(p)-4 {
		return false
	}
	switch p[4] {
	case '+', '-', 'b', 'h', 'm', 'i', 'q', 'e', '2':
		return true
	}
	return false
}

// Read reads through a buffer: go-milter reads each packet's 4-byte length and
// its body in two reads, which would be two system calls per packet.
func (c *conn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	if err := c.refreshDeadline(); err != nil {
		return 0, err
	}
	if c.tcp {
		c.quickAck()
	}
	return c.r.Read(p)
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

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
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
