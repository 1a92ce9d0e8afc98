package e2e

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func packet(cmd byte, data ...[]byte) []byte {
	d := bytes.Join(data, nil)
	b := binary.BigEndian.AppendUint32(nil, uint32(len(d)+1))
	return append(append(b, cmd), d...)
}

func words(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

// TestMilterRecorder: the bytes pass unchanged both ways, split anywhere, and
// the packets are recorded in the order they were answered.
func TestMilterRecorder(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "milter.sock")
	ln, err := net.Listen("unix", target)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	optneg := packet('O', words(6, 0x1ff, 0x1fffff))
	connect := packet('C', []byte("client.example\x004"), []byte{0x30, 0x39}, []byte("192.0.2.1\x00"))
	macro := packet('D', []byte("Hj\x00mx.example\x00"))
	helo := packet('H', []byte("client.example\x00"))
	rcpt := packet('R', []byte("<u@example>\x00"))
	quit := packet('Q')
	fromMTA := bytes.Join([][]byte{optneg, connect, macro, helo, rcpt, quit}, nil)
	answer := packet('O', words(6, 0x131, 0x73d0))
	cont := packet('c')

	// The milter answers OPTNEG and RCPT only, as with SMFIP_NR_CONN and NR_HELO.
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var in []byte
		for _, p := range [][]byte{optneg, connect, macro, helo, rcpt} {
			b := make([]byte, len(p))
			if _, err := io.ReadFull(c, b); err != nil {
				break
			}
			in = append(in, b...)
			switch p[4] {
			case 'O':
				c.Write(answer)
			case 'R':
				c.Write(cont)
			}
		}
		rest, _ := io.ReadAll(c)
		got <- append(in, rest...)
	}()

	r := RecordMilter(t, filepath.Join(dir, "recorder.sock"), target)
	mta, err := net.Dial("unix", r.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer mta.Close()
	// One byte at a time up to HELO, then RCPT, and QUIT once it is answered.
	split := len(optneg) + len(connect) + len(macro) + len(helo)
	for i := 0; i < split; i++ {
		if _, err := mta.Write(fromMTA[i : i+1]); err != nil {
			t.Fatal(err)
		}
		if i == len(optneg)-1 {
			b := make([]byte, len(answer))
			if _, err := io.ReadFull(mta, b); err != nil || !bytes.Equal(b, answer) {
				t.Fatalf("the MTA read %x, %v, want the milter's OPTNEG %x", b, err, answer)
			}
		}
	}
	mta.Write(rcpt)
	b := make([]byte, len(cont))
	if _, err := io.ReadFull(mta, b); err != nil || !bytes.Equal(b, cont) {
		t.Fatalf("the MTA read %x, %v, want %x", b, err, cont)
	}
	mta.Write(quit)
	mta.(*net.UnixConn).CloseWrite()
	if rest, _ := io.ReadAll(mta); len(rest) != 0 {
		t.Errorf("the MTA read %x more, want nothing", rest)
	}
	if in := <-got; !bytes.Equal(in, fromMTA) {
		t.Errorf("the milter read\n  %x\nwant\n  %x", in, fromMTA)
	}

	c, ok := r.WaitClient(12345, 5*time.Second)
	if !ok {
		t.Fatalf("no closed connection recorded for client port 12345: %+v", r.Conns())
	}
	if c.Err != nil {
		t.Errorf("recorder error: %v", c.Err)
	}
	t.Logf("recorded: %s", c.Trace())
	want := "mta:O(v6 actions=0x1ff protocol=0x1fffff) milter:O(v6 actions=0x131 protocol=0x73d0) " +
		"mta:C(192.0.2.1 port 12345) mta:D(H) mta:H mta:R milter:c mta:Q"
	if c.Trace() != want {
		t.Errorf("recorded\n  %s\nwant\n  %s", c.Trace(), want)
	}
	if f, w := ProtocolFlags(0x73d0|0x40000000), []string{"SMFIP_NOBODY", "SMFIP_NOEOH", "SMFIP_NR_HDR", "SMFIP_NOUNKNOWN",
		"SMFIP_NODATA", "SMFIP_NR_CONN", "SMFIP_NR_HELO", "SMFIP_NR_MAIL", "0x40000000"}; !slices.Equal(f, w) {
		t.Errorf("ProtocolFlags(0x400073d0) = %q, want %q", f, w)
	}
}
