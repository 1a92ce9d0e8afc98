package loadgen

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeMilter is a milter for tests that records every packet the client
// sends and answers as scripted: its OPTNEG reply, then continue to every
// event that expects a reply, unless replies names another answer (whole
// packets, length included) for a command.
type fakeMilter struct {
	t        testing.TB
	optneg   []byte            // the OPTNEG reply's data
	replies  map[byte][][]byte // by command: the packets to answer with
	protocol Protocol          // as in optneg, for which events get no reply

	mu       sync.Mutex
	sessions [][]rec
}

// rec is one packet the client sent.
type rec struct {
	cmd  byte
	data []byte
}

func pkt(cmd byte, data ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, cmd), data...)
}

func spkt(cmd byte, data string) []byte { return pkt(cmd, []byte(data)...) }

func optnegData(version uint32, acts Actions, proto Protocol, symlist ...string) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(acts))
	b = binary.BigEndian.AppendUint32(b, uint32(proto))
	for i := 0; i+1 < len(symlist); i += 2 {
		b = binary.BigEndian.AppendUint32(b, uint32(stageByName(symlist[i])))
		b = append(append(b, symlist[i+1]...), 0)
	}
	return b
}

// start serves on a unix socket in a temporary directory.
func (f *fakeMilter) start() Target {
	f.t.Helper()
	sock := filepath.Join(f.t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return Target{Name: "fake", Network: "unix", Address: sock}
}

func (f *fakeMilter) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var got []rec
	defer func() {
		f.mu.Lock()
		f.sessions = append(f.sessions, got)
		f.mu.Unlock()
	}()
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		got = append(got, rec{b[0], b[1:]})
		var out []byte
		switch b[0] {
		case cmdOptNeg:
			out = pkt(cmdOptNeg, f.optneg...)
		case cmdMacro, cmdAbort:
		case cmdQuit:
			return
		default:
			if f.noReply(b[0]) {
				break
			}
			out = f.answer(b[0])
		}
		if out != nil {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// answer is the next scripted answer to cmd: one per packet, the last one
// for the rest; continue when there is none.
func (f *fakeMilter) answer(cmd byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.replies[cmd]
	if len(rs) == 0 {
		return pkt(replyContinue)
	}
	if len(rs) > 1 {
		f.replies[cmd] = rs[1:]
	}
	return rs[0]
}

func (f *fakeMilter) noReply(cmd byte) bool {
	flag := map[byte]Protocol{cmdConnect: NRConn, cmdHelo: NRHelo, cmdMail: NRMail, cmdRcpt: NRRcpt,
		cmdData: NRData, cmdHeader: NRHeader, cmdEOH: NREOH, cmdBody: NRBody}[cmd]
	return f.protocol&flag != 0
}

// all returns the sessions recorded so far, once the server has seen them end.
func (f *fakeMilter) all(n int) [][]rec {
	f.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		f.mu.Lock()
		s := f.sessions
		f.mu.Unlock()
		if len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d sessions recorded, want %d", len(s), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commands is the sequence of commands, a macro packet written as D and the
// command it is for ("DC C DH H ...").
func commands(s []rec) string {
	var out []byte
	for i, r := range s {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, r.cmd)
		if r.cmd == cmdMacro && len(r.data) > 0 {
			out = append(out, r.data[0])
		}
	}
	return string(out)
}

// macros are the name and value pairs of a macro packet.
func macros(t testing.TB, r rec) map[string]string {
	t.Helper()
	m := map[string]string{}
	var strs []string
	for rest := r.data[1:]; len(rest) > 0; {
		i := indexNUL(rest)
		if i < 0 {
			t.Fatalf("macro packet %q: no NUL", r.data)
		}
		strs = append(strs, string(rest[:i]))
		rest = rest[i+1:]
	}
	if len(strs)%2 != 0 {
		t.Fatalf("macro packet %q: odd number of strings", r.data)
	}
	for i := 0; i < len(strs); i += 2 {
		m[strs[i]] = strs[i+1]
	}
	return m
}

// oneSession plays one session of the first identity of the test world and
// returns its outcome.
func oneSession(t *testing.T, target Target, version uint32, headers int, id *Identity) outcome {
	t.Helper()
	pl := newPlayer(target, PostfixOffer(version), 3*time.Second, newMessage(headers))
	var o outcome
	pl.play(id, 1, &o)
	return o
}

var testIDs = []Identity{
	{Name: "office365", Addr: "104.47.38.131", Helo: "NAM02-BL2-obe.outbound.protection.outlook.com",
		PTR: "mail-bl2nam02on0131.outbound.protection.outlook.com", Host: "mail-bl2nam02on0131.outbound.protection.outlook.com"},
	{Name: "v6-no-ptr", Addr: "2001:db8::77", Helo: "helo-only.example", IPv6: true},
}
