package milter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// State is what a session is judged by: the config and the engine built from
// it. A reload swaps in a new State; sessions keep the one they started with.
type State struct {
	Cfg    *config.Config
	Engine *policy.Engine
}

// Server serves the milter protocol on one or more listeners.
type Server struct {
	state     atomic.Pointer[State]
	decisions io.Writer    // the decision log: one record per Write
	ops       *slog.Logger // operational messages
	metrics   *Metrics     // nil: nothing counted (Instrument)

	slots chan struct{} // bounds concurrent sessions (max_sessions)

	private privateRanges // ranges of unroutable clients warned about

	mu        sync.Mutex
	listeners []*listener
	conns     map[*conn]struct{}
	sessions  sync.WaitGroup
	closing   bool
	done      chan struct{} // closed by Shutdown
}

// New returns a Server judging by st, writing decision records to decisions
// (one line per Write, so the writer must not interleave concurrent writes)
// and operational messages to ops.
func New(st *State, decisions io.Writer, ops *slog.Logger) *Server {
	s := &Server{decisions: decisions, ops: ops, conns: map[*conn]struct{}{}, done: make(chan struct{}), slots: make(chan struct{}, st.Cfg.MaxSessions)}
	s.state.Store(st)
	return s
}

// SetState swaps the config and engine for new sessions (SIGHUP reload).
func (s *Server) SetState(st *State) { s.state.Store(st) }

// State returns the current config and engine.
func (s *Server) State() *State { return s.state.Load() }

// Listen opens a listener for spec ("unix:/path" or "inet:host:port"). A unix
// socket is created with the configured mode and group, so that Postfix can
// connect, and replaces only a stale socket (listenUnix).
func (s *Server) Listen(spec string) (net.Addr, error) {
	network, addr, err := config.SplitListen(spec)
	if err != nil {
		return nil, err
	}
	cfg := s.State().Cfg
	var ln net.Listener
	if network == "unix" {
		ln, err = listenUnix(addr, cfg.SocketMode, cfg.SocketGroup)
	} else {
		ln, err = net.Listen(network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", spec, err)
	}
	l := &listener{Listener: ln, srv: s, tcp: network == "tcp"}
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	return ln.Addr(), nil
}

// Serve runs every listener until Shutdown; it returns nil after a clean
// shutdown.
func (s *Server) Serve() error {
	s.mu.Lock()
	lns := append([]*listener(nil), s.listeners...)
	s.mu.Unlock()
	if len(lns) == 0 {
		return errors.New("milter: no listeners")
	}
	errc := make(chan error, len(lns))
	for _, l := range lns {
		go func() { errc <- l.serve() }()
	}
	var first error
	for range lns {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops accepting, waits for sessions in flight until ctx ends, then
// closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.done)
	}
	s.closing = true
	for _, l := range s.listeners {
		l.Listener.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.sessions.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.Conn.Close()
	}
	s.mu.Unlock()
	<-done
	return fmt.Errorf("closed %d sessions still open after the drain deadline", n)
}

// Sessions is the number of sessions open now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// listener accepts MTA connections and starts a session on each.
type listener struct {
	net.Listener
	srv *Server
	tcp bool
}

// serve accepts until the listener is closed.
func (l *listener) serve() error {
	for {
		c, err := l.acceptConn()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		l.srv.start(c)
	}
}

func (l *listener) acceptConn() (*conn, error) {
	// At max_sessions, wait for a session to end before accepting: the MTA's
	// connect waits, then applies its default action if it waits too long.
	select {
	case l.srv.slots <- struct{}{}:
	case <-l.srv.done:
		return nil, net.ErrClosed
	}
	nc, err := l.accept()
	if err != nil {
		<-l.srv.slots
		return nil, err
	}
	cfg := l.srv.State().Cfg
	c := &conn{Conn: nc, r: bufio.NewReaderSize(nc, 4096), srv: l.srv, readTimeout: cfg.ReadTimeout, packetTimeout: cfg.PacketTimeout, tcp: l.tcp}
	l.srv.mu.Lock()
	if l.srv.closing {
		l.srv.mu.Unlock()
		nc.Close()
		<-l.srv.slots
		return nil, net.ErrClosed
	}
	l.srv.conns[c] = struct{}{}
	l.srv.sessions.Add(1)
	l.srv.mu.Unlock()
	l.srv.metrics.opened(c)
	return c, nil
}

// accept retries temporary failures (out of file descriptors, say) with a
// growing pause, as net/http does, instead of letting go-milter's Serve end.
func (l *listener) accept() (net.Conn, error) {
	pause := 5 * time.Millisecond
	for {
		nc, err := l.Listener.Accept()
		if err == nil || errors.Is(err, net.ErrClosed) {
			return nc, err
		}
		var ne net.Error
		if !errors.As(err, &ne) && !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return nil, err
		}
		l.srv.ops.Warn("accept failed; retrying", "err", err.Error(), "pause", pause.String())
		select {
		case <-time.After(pause):
		case <-l.srv.done:
			return nil, net.ErrClosed
		}
		pause = min(2*pause, time.Second)
	}
}

// start runs the milter protocol on c with a new session, on a goroutine of
// its own.
//
// go-milter's Server has no hook that tells a backend which connection it
// serves, and the conn and the session need each other (the conn ends the
// session when the socket closes and names its client when it drops it). So
// each connection gets a go-milter Server of its own, built around that
// session and served on a listener that yields just that one connection:
// Serve starts the session's goroutine and returns at once.
func (s *Server) start(c *conn) {
	st := s.State()
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{srv: s, st: st, ctx: ctx, cancel: cancel}
	c.sess = sess
	opts := append(negotiation(st.Cfg),
		gomilter.WithMilter(func() gomilter.Milter { return sess }),
		gomilter.WithNegotiationCallback(c.negotiated),
	)
	_ = gomilter.NewServer(opts...).Serve(&oneConn{c: c})
}

// oneConn is a listener that yields one connection, then errOneConn.
type oneConn struct{ c net.Conn }

var errOneConn = errors.New("milter: one connection only")

func (o *oneConn) Accept() (net.Conn, error) {
	c := o.c
	if c == nil {
		return nil, errOneConn
	}
	o.c = nil
	return c, nil
}
func (o *oneConn) Close() error   { return nil }
func (o *oneConn) Addr() net.Addr { return nil }
