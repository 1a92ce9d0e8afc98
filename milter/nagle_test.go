package milter_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// sendmailConn talks the milter protocol the way Sendmail 8.17 does over TCP:
// Nagle's algorithm on, and every packet written in two writes (length, then
// body). Against a peer that delays its ACKs, the second write waits for the
// ACK of the first: ~40 ms per stage on Linux.
type sendmailConn struct{ c *net.TCPConn }

func dialSendmail(b *testing.B, addr string) *sendmailConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	if err := tc.SetNoDelay(false); err != nil { // Nagle on, as in Sendmail
		b.Fatal(err)
	}
	return &sendmailConn{tc}
}

func (s *sendmailConn) stage(b *testing.B, code byte, data []byte) byte {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(data)+1))
	if _, err := s.c.Write(hdr[:]); err != nil {
		b.Fatal(err)
	}
	if _, err := s.c.Write(append([]byte{code}, data...)); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(s.c, hdr[:]); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(s.c, body); err != nil {
		b.Fatal(err)
	}
	return body[0]
}

func cstr(ss ...string) []byte {
	var out []byte
	for _, s := range ss {
		out = append(append(out, s...), 0)
	}
	return out
}

// BenchmarkSendmailTCPStages measures one milter stage (a header) as Sendmail
// sends it over TCP, against a do-nothing go-milter server and against
// heloguard, which turns delayed ACKs off on its sockets. Target: heloguard
// does not pay the ~40 ms.
func BenchmarkSendmailTCPStages(b *testing.B) {
	run := func(b *testing.B, addr string) {
		s := dialSendmail(b, addr)
		defer s.c.Close()
		neg := make([]byte, 12)
		binary.BigEndian.PutUint32(neg[0:], 2)
		binary.BigEndian.PutUint32(neg[4:], uint32(gomilter.OptAddHeader|gomilter.OptChangeHeader|gomilter.OptQuarantine))
		s.stage(b, 'O', neg)
		conn := append(cstr("[104.47.38.131]"), '4', 0x9c, 0x40)
		s.stage(b, 'C', append(conn, cstr("104.47.38.131")...))
		s.stage(b, 'H', cstr("NAM02-BL2-obe.outbound.protection.outlook.com"))
		s.stage(b, 'M', cstr("<a@contoso.example>"))
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if r := s.stage(b, 'L', cstr("X-Header", fmt.Sprint(i))); r != 'c' {
				b.Fatalf("reply %c", r)
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/stage")
	}
	b.Run("noop", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		srv := gomilter.NewServer(gomilter.WithMilter(func() gomilter.Milter { return gomilter.NoOpMilter{} }))
		go srv.Serve(ln)
		run(b, ln.Addr().String())
	})
	b.Run("heloguard", func(b *testing.B) {
		run(b, start(b, "").addr)
	})
}
