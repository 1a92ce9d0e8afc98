package loadgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Commands the MTA sends (SMFIC_*).
const (
	cmdOptNeg  = 'O'
	cmdMacro   = 'D'
	cmdConnect = 'C'
	cmdHelo    = 'H'
	cmdMail    = 'M'
	cmdRcpt    = 'R'
	cmdData    = 'T'
	cmdHeader  = 'L'
	cmdEOH     = 'N'
	cmdBody    = 'B'
	cmdEOB     = 'E'
	cmdAbort   = 'A'
	cmdQuit    = 'Q'
)

// Replies a milter sends (SMFIR_*), modifications included.
const (
	replyAccept     = 'a'
	replyContinue   = 'c'
	replyDiscard    = 'd'
	replyReject     = 'r'
	replyTempfail   = 't'
	replyCode       = 'y'
	replySkip       = 's'
	replyProgress   = 'p'
	replyShutdown   = '4'
	modAddRcpt      = '+'
	modDelRcpt      = '-'
	modReplBody     = 'b'
	modAddHeader    = 'h'
	modChgHeader    = 'm'
	modInsHeader    = 'i'
	modQuarantine   = 'q'
	modChgFrom      = 'e'
	modAddRcptPar   = '2'
	maxReplyPacket  = 1 << 20 // a milter reply longer than this is an error
	writeBufferSize = 4096    // Postfix's VSTREAM_BUFSIZE: what it sends in one write at most
)

// packet builds one milter packet in a reused buffer: the length is filled in
// by end.
type packet struct{ b []byte }

func (p *packet) begin(cmd byte) {
	p.b = append(p.b[:0], 0, 0, 0, 0, cmd)
}

// str appends a NUL-terminated string.
func (p *packet) str(s string) { p.b = append(append(p.b, s...), 0) }

func (p *packet) bytes(b []byte) { p.b = append(p.b, b...) }

func (p *packet) u16(v uint16) { p.b = binary.BigEndian.AppendUint16(p.b, v) }

func (p *packet) u32(v uint32) { p.b = binary.BigEndian.AppendUint32(p.b, v) }

// end fills in the length and returns the whole packet.
func (p *packet) end() []byte {
	binary.BigEndian.PutUint32(p.b, uint32(len(p.b)-4))
	return p.b
}

// reader reads milter packets through a buffer into a reused slice.
type reader struct {
	r   *bufio.Reader
	buf []byte
}

var errEmptyPacket = errors.New("a packet of length 0")

// next returns the next packet's command and data; data is valid until the
// next call.
func (r *reader) next() (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, errEmptyPacket
	}
	if n > maxReplyPacket {
		return 0, nil, fmt.Errorf("a packet of %d bytes (the limit is %d)", n, maxReplyPacket)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}
