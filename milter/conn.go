package milter

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// conn wraps an MTA's milter socket: a deadline on every read (go-milter sets
// none, so a hung MTA would hold a goroutine forever), delayed ACKs off on TCP,
// and the session's end when the MTA closes it (go-milter has no close callback).
type conn struct {
	net.Conn
	srv         *Server
	sess        *session
	readTimeout time.Duration
	tcp         bool
	once        sync.Once
}

func (c *conn) Read(p []byte) (int, error) {
	if c.readTimeout > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.readTimeout)); err != nil {
			return 0, err
		}
	}
	if c.tcp {
		c.quickAck()
	}
	return c.Conn.Read(p)
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
