package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heloguard/heloguard/loadgen"
)

// A milter wire recorder: a proxy between an MTA and heloguard on unix
// sockets that copies the bytes both ways unchanged and parses the milter
// packets as they pass (4-byte big-endian length, command byte, data), so a
// test can show what was negotiated and sent on the wire, for an MTA such as
// Sendmail that logs neither.

// MilterDir is which way a packet went.
type MilterDir int

const (
	FromMTA    MilterDir = iota // a command (SMFIC_*)
	FromMilter                  // a reply or modification (SMFIR_*)
)

func (d MilterDir) String() string {
	if d == FromMTA {
		return "mta"
	}
	return "milter"
}

// MilterPacket is one packet as it crossed the recorder.
type MilterPacket struct {
	Dir MilterDir
	Cmd byte
	Len int // of the data after the command byte
	// OPTNEG ('O', both ways): version, actions (SMFIF_*) and protocol
	// flags (SMFIP_*).
	Version, Actions, Protocol uint32
	// Macro is the command a macro packet ('D') is for.
	Macro byte
	// ClientAddr and ClientPort are a CONNECT packet's ('C') client, as the
	// MTA writes them, to tell the sessions apart.
	ClientAddr string
	ClientPort int
	// Header is the field name of a header change ('h', 'i', 'm').
	Header string

	seq uint64 // when its last byte was read, on its connection's clock
}

func (p MilterPacket) String() string {
	s := fmt.Sprintf("%s:%c", p.Dir, p.Cmd)
	switch {
	case p.Cmd == 'O':
		s += fmt.Sprintf("(v%d actions=%#x protocol=%#x)", p.Version, p.Actions, p.Protocol)
	case p.Cmd == 'D' && p.Dir == FromMTA:
		s += fmt.Sprintf("(%c)", p.Macro)
	case p.Cmd == 'C' && p.Dir == FromMTA:
		s += fmt.Sprintf("(%s port %d)", p.ClientAddr, p.ClientPort)
	case p.Header != "":
		s += "(" + p.Header + ")"
	}
	return s
}

// MilterConn is what one connection carried: its packets in the order their
// last bytes were read (so a reply always comes after what it answers).
type MilterConn struct {
	Packets []MilterPacket
	Closed  bool  // both ways ended: the sequence is complete
	Err     error // dialing the milter, or a stream that is not milter packets
}

// Client is the client address and port of the connection's CONNECT packet
// ("" and 0 before it).
func (c MilterConn) Client() (addr string, port int) {
	for _, p := range c.Packets {
		if p.Dir == FromMTA && p.Cmd == 'C' {
			return p.ClientAddr, p.ClientPort
		}
	}
	return "", 0
}

// Trace is the packets on one line, for a test log.
func (c MilterConn) Trace() string {
	s := make([]string, len(c.Packets))
	for i, p := range c.Packets {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// MilterRecorder is the proxy. It listens on Path until the test ends.
type MilterRecorder struct {
	Path   string
	target string
	ln     *net.UnixListener

	mu    sync.Mutex
	conns []*recordedConn
	wg    sync.WaitGroup
}

// RecordMilter listens on the unix socket path and forwards each connection
// to the milter's unix socket target.
func RecordMilter(t testing.TB, path, target string) *MilterRecorder {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("milter recorder: %v", err)
	}
	r := &MilterRecorder{Path: path, target: target, ln: ln}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.close)
	return r
}

func (r *MilterRecorder) serve() {
	defer r.wg.Done()
	for {
		mta, err := r.ln.AcceptUnix()
		if err != nil {
			return
		}
		c := &recordedConn{mta: mta}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			c.run(r.target)
		}()
	}
}

// close stops listening, ends the connections still open and waits for them.
func (r *MilterRecorder) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.shut()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Conns is a snapshot of every connection so far, in the order accepted.
func (r *MilterRecorder) Conns() []MilterConn {
	r.mu.Lock()
	cs := append([]*recordedConn(nil), r.conns...)
	r.mu.Unlock()
	out := make([]MilterConn, len(cs))
	for i, c := range cs {
		out[i] = c.snapshot()
	}
	return out
}

// WaitClient waits (up to d) until the connection for the SMTP client on
// port is closed, and returns it; ok is false if there is none by then.
func (r *MilterRecorder) WaitClient(port int, d time.Duration) (c MilterConn, ok bool) {
	WaitFor(d, func() bool {
		for _, x := range r.Conns() {
			if _, p := x.Client(); p == port && x.Closed {
				c, ok = x, true
				return true
			}
		}
		return false
	})
	return c, ok
}

type recordedConn struct {
	mta *net.UnixConn
	seq atomic.Uint64

	mu       sync.Mutex
	milter   *net.UnixConn
	shutDown bool // by the test's end
	packets  []MilterPacket
	closed   bool
	err      error
}

func (c *recordedConn) run(target string) {
	defer c.mta.Close()
	m, err := net.DialTimeout("unix", target, 5*time.Second)
	if err != nil {
		// As if the milter were down: the MTA sees the connection end.
		c.finish(fmt.Errorf("dialing the milter: %w", err))
		return
	}
	milter := m.(*net.UnixConn)
	defer milter.Close()
	c.mu.Lock()
	c.milter = milter
	if c.shutDown {
		milter.Close()
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(milter, c.mta, FromMTA) }()
	go func() { defer wg.Done(); c.pipe(c.mta, milter, FromMilter) }()
	wg.Wait()
	c.finish(nil)
}

// shut ends the connection both ways, at the end of the test.
func (c *recordedConn) shut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shutDown = true
	c.mta.Close()
	if c.milter != nil {
		c.milter.Close()
	}
}

// pipe copies src to dst. Each chunk read takes its place on the connection's
// clock before it is written on, so whatever it makes the other side send is
// read later; it is parsed after the write, which it does not hold up.
func (c *recordedConn) pipe(dst, src *net.UnixConn, dir MilterDir) {
	var p packetParser
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			seq := c.seq.Add(1)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
			pkts, perr := p.feed(dir, seq, buf[:n])
			c.record(pkts, perr)
		}
		if err != nil {
			break
		}
	}
	// Pass the end on, and let the other way finish (the MTA's QUIT, the
	// milter's last reply).
	_ = dst.CloseWrite()
	_ = src.CloseRead()
}

func (c *recordedConn) record(pkts []MilterPacket, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packets = append(c.packets, pkts...)
	if err != nil && c.err == nil {
		c.err = err
	}
}

func (c *recordedConn) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if err != nil && c.err == nil {
		c.err = err
	}
}

func (c *recordedConn) snapshot() MilterConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	pkts := append([]MilterPacket(nil), c.packets...)
	// Each way appended in its own order; merge the two by clock.
	sort.SliceStable(pkts, func(i, j int) bool { return pkts[i].seq < pkts[j].seq })
	return MilterConn{Packets: pkts, Closed: c.closed, Err: c.err}
}

// packetParser splits one way's bytes into packets, keeping the first bytes
// of each packet's data: enough for what MilterPacket holds.
type packetParser struct {
	hdr  [5]byte // length and command
	nhdr int
	left int // data bytes still to come
	data []byte
	bad  bool
}

const keepData = 1024

func (p *packetParser) feed(dir MilterDir, seq uint64, b []byte) ([]MilterPacket, error) {
	var out []MilterPacket
	for len(b) > 0 && !p.bad {
		if p.nhdr < len(p.hdr) {
			n := copy(p.hdr[p.nhdr:], b)
			p.nhdr += n
			b = b[n:]
			if p.nhdr < len(p.hdr) {
				break
			}
			size := binary.BigEndian.Uint32(p.hdr[:4])
			if size == 0 || size > 1<<30 {
				p.bad = true
				return out, fmt.Errorf("%s sent a packet length of %d, not a milter packet", dir, size)
			}
			p.left, p.data = int(size)-1, p.data[:0]
		}
		n := min(p.left, len(b))
		if keep := min(n, keepData-len(p.data)); keep > 0 {
			p.data = append(p.data, b[:keep]...)
		}
		p.left -= n
		b = b[n:]
		if p.left == 0 {
			size := int(binary.BigEndian.Uint32(p.hdr[:4]))
			out = append(out, parsePacket(dir, seq, p.hdr[4], size-1, p.data))
			p.nhdr = 0
		}
	}
	return out, nil
}

func parsePacket(dir MilterDir, seq uint64, cmd byte, size int, data []byte) MilterPacket {
	pk := MilterPacket{Dir: dir, Cmd: cmd, Len: size, seq: seq}
	switch {
	case cmd == 'O' && len(data) >= 12:
		pk.Version = binary.BigEndian.Uint32(data[0:])
		pk.Actions = binary.BigEndian.Uint32(data[4:])
		pk.Protocol = binary.BigEndian.Uint32(data[8:])
	case cmd == 'D' && dir == FromMTA && len(data) > 0:
		pk.Macro = data[0]
	case cmd == 'C' && dir == FromMTA:
		// hostname NUL, family, then for '4' and '6' port and address NUL.
		if i := strings.IndexByte(string(data), 0); i >= 0 && len(data) >= i+4 && (data[i+1] == '4' || data[i+1] == '6') {
			pk.ClientPort = int(binary.BigEndian.Uint16(data[i+2:]))
			pk.ClientAddr, _, _ = strings.Cut(string(data[i+4:]), "\x00")
		}
	case cmd == 'h' && dir == FromMilter:
		pk.Header, _, _ = strings.Cut(string(data), "\x00")
	case (cmd == 'i' || cmd == 'm') && dir == FromMilter && len(data) > 4:
		pk.Header, _, _ = strings.Cut(string(data[4:]), "\x00")
	}
	return pk
}

// ProtocolFlags names the SMFIP_* bits of an OPTNEG protocol field, in bit
// order; an unknown bit is written in hex. The names are loadgen's (the load
// generator's own table of libmilter's mfapi.h), not the milter library's, so
// the test does not read the wire with the code under test.
func ProtocolFlags(v uint32) []string { return prefixed("SMFIP_", loadgen.Protocol(v).Names()) }

// ActionFlags names the SMFIF_* bits of an OPTNEG actions field.
func ActionFlags(v uint32) []string { return prefixed("SMFIF_", loadgen.Actions(v).Names()) }

func prefixed(prefix string, names []string) []string {
	for i, n := range names {
		if !strings.HasPrefix(n, "0x") {
			names[i] = prefix + n
		}
	}
	return names
}
