package dnsworld

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server serves a Zone on 127.0.0.1, UDP and TCP on the same port.
type Server struct {
	Addr string // "127.0.0.1:port", same port for UDP and TCP

	zone  atomic.Pointer[Zone]
	delay atomic.Int64 // time.Duration
	total atomic.Int64

	mu     sync.Mutex
	counts map[key]int64

	udp, tcp  *dns.Server
	closing   chan struct{} // closed by Close: late answers give up
	closeOnce sync.Once
	closeErr  error
}

// Start serves z on a free port of 127.0.0.1, UDP and TCP.
func Start(z *Zone) (*Server, error) {
	if z == nil {
		z = NewZone()
	}
	s := &Server{counts: make(map[key]int64), closing: make(chan struct{})}
	s.zone.Store(z)

	pc, ln, err := listen()
	if err != nil {
		return nil, err
	}
	s.Addr = ln.Addr().String()
	h := dns.HandlerFunc(s.serve)
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: started.Done}
	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
		return s, nil
	case err := <-errc:
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("dnsworld: serve: %w", err)
	}
}

// listen binds TCP on a free port, then UDP on the same port, retrying when
// the UDP port happens to be taken.
func listen() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("dnsworld: listen tcp: %w", err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln, nil
		}
		ln.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dnsworld: listen udp: %w", lastErr)
}

// SetZone swaps the served world atomically.
func (s *Server) SetZone(z *Zone) {
	if z == nil {
		z = NewZone()
	}
	s.zone.Store(z)
}

// SetDelay makes the server sleep d before each answer.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Queries returns the number of questions received, UDP and TCP.
func (s *Server) Queries() int64 { return s.total.Load() }

// QueriesFor returns the number of questions received for name (case
// insensitive, absolute or not) and qtype, UDP and TCP.
func (s *Server) QueriesFor(name string, qtype uint16) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[keyOf(name, qtype)]
}

// ResetQueries sets the query counters to zero.
func (s *Server) ResetQueries() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total.Store(0)
	clear(s.counts)
}

// garbage is FaultGarbage's reply to a query with the given ID: a header
// (response, NOERROR, one question and one answer announced) followed by
// bytes that are not a question.
func garbage(id uint16) []byte {
	return append([]byte{byte(id >> 8), byte(id), 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0},
		0x3f, 'n', 'o', 't', 0xc0, 0xff, 0xff, '\x00', 0xde, 0xad)
}

// Close stops both listeners. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.closeErr = errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	})
	return s.closeErr
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	var nth int64 // this question's number, for its name and type
	if len(req.Question) == 1 {
		q := req.Question[0]
		s.mu.Lock()
		k := keyOf(q.Name, q.Qtype)
		s.counts[k]++
		nth = s.counts[k]
		s.total.Add(1)
		s.mu.Unlock()
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)

	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Authoritative = false
	opt := req.IsEdns0()
	size := dns.MinMsgSize
	if opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	var late time.Duration // FaultLate
	var wrongID bool       // FaultWrongID
	defer func() {
		if m == nil {
			return // FaultTimeout: no answer at all
		}
		if opt != nil {
			m.SetEdns0(1232, false)
		}
		if isUDP {
			m.Truncate(size)
		}
		if wrongID {
			m.Id ^= 0x5a5a
		}
		if late > 0 {
			select {
			case <-time.After(late):
			case <-s.closing:
				return
			}
		}
		_ = w.WriteMsg(m)
	}()

	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || req.Response {
		m.Rcode = dns.RcodeFormatError
		return
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeNotImplemented
		return
	}
	z := s.zone.Load()
	switch z.fault(q.Name, q.Qtype) {
	case FaultServfail:
		m.Rcode = dns.RcodeServerFailure
		return
	case FaultRefused:
		m.Rcode = dns.RcodeRefused
		return
	case FaultTimeout:
		m = nil
		return
	case FaultTruncate:
		if isUDP {
			m.Truncated = true
			return
		}
	case FaultTruncateNoTCP:
		if isUDP {
			m.Truncated = true
			return
		}
		m = nil
		_ = w.Close()
		return
	case FaultGarbage:
		m = nil
		_, _ = w.Write(garbage(req.Id))
		return
	case FaultFlap:
		if nth%2 == 1 {
			m.Rcode = dns.RcodeServerFailure
			return
		}
	case FaultLate:
		late = z.lateDelay()
	case FaultWrongID:
		wrongID = true
	}
	m.Rcode = z.resolve(m, q.Name, q.Qtype)
}
