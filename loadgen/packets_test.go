package loadgen

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// What Postfix 3.7 writes in its OPTNEG: every action whatever the version,
// the events of the version (milter8.c).
func TestOptNegAsPostfix(t *testing.T) {
	for _, tc := range []struct {
		version        uint32
		actions, event uint32
	}{{6, 0x1ff, 0x1fffff}, {2, 0x1ff, 0x7f}, {4, 0x1ff, 0x37f}} {
		var p packet
		got := encodeOptNeg(&p, PostfixOffer(tc.version))
		want := pkt(cmdOptNeg, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, tc.version), tc.actions), tc.event)...)
		if !bytes.Equal(got, want) {
			t.Errorf("v%d OPTNEG %x, want %x", tc.version, got, want)
		}
	}
}

func TestParseOptNeg(t *testing.T) {
	v6 := PostfixOffer(6)
	// heloguard's go-milter v0.5.0 server: version 2, its actions, no unknown
	// and no data, and a symbol list.
	n, err := parseOptNeg(v6, optnegData(2, AddHeaders|ChangeHeaders|Quarantine|SetSymList, NoUnknown|NoData,
		"connect", "j {client_addr}", "mail", "i,{mail_addr}", "eom", "i"))
	if err != nil {
		t.Fatal(err)
	}
	if n.Version != 2 || n.Protocol != NoUnknown|NoData || n.Actions != 0x131 {
		t.Errorf("negotiated %s", n)
	}
	if want := noSend &^ postfixV2; n.nonProtocol != want {
		t.Errorf("events a v2 milter is not sent: %s, want %s", n.nonProtocol, want)
	}
	if n.sends(NoData) || n.sends(NoUnknown) || !n.sends(NoHeaders) {
		t.Error("a v2 milter must get headers and neither DATA nor unknown commands")
	}
	if !reflect.DeepEqual(n.Macros[stageConnect], []string{"j", "{client_addr}"}) || !reflect.DeepEqual(n.Macros[stageMail], []string{"i", "{mail_addr}"}) || n.Macros[stageRcpt] != nil {
		t.Errorf("macro lists %q", n.Macros)
	}
	if spec := n.MacroSpec(); spec != "connect=j {client_addr};mail=i {mail_addr};eom=i" {
		t.Errorf("MacroSpec %q", spec)
	} else if m, err := ParseMacroSpec(spec); err != nil || !reflect.DeepEqual(m, n.Macros) {
		t.Errorf("ParseMacroSpec(%q) = %q, %v", spec, m, err)
	}
	for _, bad := range []struct {
		data []byte
		want string
	}{
		{optnegData(6, 0, 0), ""},
		{optnegData(7, 0, 0), "protocol version 7 conflict with MTA protocol version 6"},
		{optnegData(1, 0, 0), "unexpected protocol version 1"},
		{optnegData(6, 0x200, 0), "request mask 0x200"},
		{optnegData(6, 0, 0)[:8], "at least 12"},
		{append(optnegData(6, 0, 0), 0, 0, 0, 0, 'j'), "no NUL"},
	} {
		_, err := parseOptNeg(v6, bad.data)
		if bad.want == "" && err != nil || bad.want != "" && (err == nil || !strings.Contains(err.Error(), bad.want)) {
			t.Errorf("parseOptNeg(%x): %v, want %q", bad.data, err, bad.want)
		}
	}
	if _, err := parseOptNeg(PostfixOffer(2), optnegData(6, 0, 0)); err == nil {
		t.Error("a v6 answer to a v2 offer must be refused")
	}
}

// The session Postfix plays against a v6 milter that wants everything: a
// macro packet before every event (the header fields get the end-of-header
// macros), each stage's macros as Postfix's defaults say, ABORT and QUIT at
// the end.
func TestPostfixSessionV6(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(6, AddHeaders, 0)}
	target := f.start()
	o := oneSession(t, target, 6, 2, &testIDs[0])
	if o.err != nil {
		t.Fatal(o.err)
	}
	s := f.all(1)[0]
	want := "O DC C DH H DM M DR R DR R DT T DL L DL L DN N DB B DE E A Q"
	if got := commands(s); got != want {
		t.Fatalf("commands:\n got %s\nwant %s", got, want)
	}
	conn := macros(t, s[1])
	for k, v := range map[string]string{"j": mtaName, "{daemon_name}": mtaName, "{daemon_addr}": mtaAddr, "v": mtaVersion,
		"_": "mail-bl2nam02on0131.outbound.protection.outlook.com [104.47.38.131]"} {
		if conn[k] != v {
			t.Errorf("connect macro %s = %q, want %q (all: %q)", k, conn[k], v, conn)
		}
	}
	if len(conn) != 5 {
		t.Errorf("connect macros %q: Postfix's default list has 5", conn)
	}
	if m := macros(t, s[3]); len(m) != 0 {
		t.Errorf("HELO macros %q: without TLS there are none", m)
	}
	mail := macros(t, s[5])
	if mail["{mail_addr}"] != sender || mail["i"] == "" || len(mail) != 2 {
		t.Errorf("MAIL macros %q", mail)
	}
	if got, want := s[2].data, []byte("mail-bl2nam02on0131.outbound.protection.outlook.com\x004\x04\x01104.47.38.131\x00"); !bytes.Equal(got, want) {
		t.Errorf("CONNECT %q, want %q", got, want)
	}
	if got := string(s[6].data); got != "<billing@contoso.example>\x00SIZE=5336\x00BODY=8BITMIME\x00" {
		t.Errorf("MAIL %q", got)
	}
	if got := string(s[8].data); got != "<alice@receiver.example>\x00" {
		t.Errorf("RCPT %q", got)
	}
	if got := string(s[14].data); got != "From\x00\"Contoso Billing\" <billing@contoso.example>\x00" {
		t.Errorf("first header %q", got)
	}
	if v := o.verdict.String(); v != "accepted" {
		t.Errorf("verdict %s", v)
	}
	for st := range NumStages {
		if !o.reached[st] {
			t.Errorf("stage %s not timed", StageNames[st])
		}
	}
}

// A v2 milter that asked for macros (heloguard with go-milter v0.5.0): no
// DATA event, only the macros it named where it named some, Postfix's
// defaults elsewhere; family 6 and "[address]" for a client without a
// confirmed name; its header added at end of message is counted.
func TestPostfixSessionV2(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(2, AddHeaders|ChangeHeaders|Quarantine|SetSymList, NoUnknown|NoData,
		"connect", "j {client_addr} {client_name} {client_port} {daemon_name}", "rcpt", "i {rcpt_addr}"),
		replies: map[byte][][]byte{cmdEOB: {append(spkt(modAddHeader, "Authentication-Results\x00mx; iprev=pass\x00"), pkt(replyContinue)...)}}}
	o := oneSession(t, f.start(), 6, 1, &testIDs[1])
	if o.err != nil {
		t.Fatal(o.err)
	}
	s := f.all(1)[0]
	if got, want := commands(s), "O DC C DH H DM M DR R DR R DL L DN N DB B DE E A Q"; got != want {
		t.Fatalf("commands:\n got %s\nwant %s", got, want)
	}
	conn := macros(t, s[1])
	want := map[string]string{"j": mtaName, "{client_addr}": "2001:db8::77", "{client_name}": "unknown", "{client_port}": "1025", "{daemon_name}": mtaName}
	if !reflect.DeepEqual(conn, want) {
		t.Errorf("connect macros %q, want %q", conn, want)
	}
	if got := string(s[2].data); got != "[2001:db8::77]\x006\x04\x012001:db8::77\x00" {
		t.Errorf("CONNECT %q", got)
	}
	if rcpt := macros(t, s[7]); rcpt["{rcpt_addr}"] != "alice@receiver.example" || len(rcpt) != 2 {
		t.Errorf("RCPT macros %q", rcpt)
	}
	if o.mods[ModAddHeader] != 1 || o.verdict.String() != "accepted" {
		t.Errorf("mods %v, verdict %s", o.mods, o.verdict)
	}
}

// Refused at RCPT twice: Postfix sends no DATA, header or end of message,
// only ABORT and QUIT.
func TestRefusedAtRcpt(t *testing.T) {
	refuse := spkt(replyCode, "550 5.7.1 HELO rejected\x00")
	f := &fakeMilter{t: t, optneg: optnegData(6, AddHeaders, 0), replies: map[byte][][]byte{cmdRcpt: {refuse}}}
	o := oneSession(t, f.start(), 6, 20, &testIDs[0])
	if o.err != nil {
		t.Fatal(o.err)
	}
	if got, want := commands(f.all(1)[0]), "O DC C DH H DM M DR R DR R A Q"; got != want {
		t.Errorf("commands:\n got %s\nwant %s", got, want)
	}
	if v := o.verdict.String(); v != "refused 550 at rcpt" {
		t.Errorf("verdict %s", v)
	}
	if o.reached[StageHeaders] || o.reached[StageEOM] {
		t.Error("stages after RCPT timed")
	}
}

// One recipient refused: the message goes on for the other.
func TestOneRecipientRefused(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(6, 0, 0), replies: map[byte][][]byte{cmdRcpt: {pkt(replyTempfail), pkt(replyContinue)}}}
	o := oneSession(t, f.start(), 6, 1, &testIDs[0])
	if o.err != nil || o.verdict.String() != "accepted, 1 rcpt refused" {
		t.Errorf("verdict %s, err %v", o.verdict, o.err)
	}
}

// A decision at HELO ends the milter connection: Postfix closes it without
// ABORT or QUIT.
func TestRefusedAtHelo(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(6, 0, 0), replies: map[byte][][]byte{cmdHelo: {pkt(replyReject)}}}
	o := oneSession(t, f.start(), 6, 4, &testIDs[0])
	if o.err != nil {
		t.Fatal(o.err)
	}
	if got := commands(f.all(1)[0]); got != "O DC C DH H" {
		t.Errorf("commands %s", got)
	}
	if v := o.verdict.String(); v != "refused 550 at helo" {
		t.Errorf("verdict %s", v)
	}
}

// Events a milter does not want are not sent; the macros of the envelope
// stages still are (milter8_event sends them first), those of the header,
// body and end of header not. Replies it will not send are not awaited.
func TestNoEventsNoReplies(t *testing.T) {
	proto := NoHelo | NoHeaders | NoBody | NRConn | NRMail | NRRcpt | NREOH | NRData
	f := &fakeMilter{t: t, optneg: optnegData(6, 0, proto), protocol: proto}
	o := oneSession(t, f.start(), 6, 20, &testIDs[0])
	if o.err != nil {
		t.Fatal(o.err)
	}
	if got, want := commands(f.all(1)[0]), "O DC C DH DM M DR R DR R DT T DN N DE E A Q"; got != want {
		t.Errorf("commands:\n got %s\nwant %s", got, want)
	}
}

// SMFIR_SKIP after a header field: no more header fields, end of header
// next.
func TestSkipHeaders(t *testing.T) {
	f := &fakeMilter{t: t, optneg: optnegData(6, 0, Skip), replies: map[byte][][]byte{cmdHeader: {pkt(replySkip)}}}
	o := oneSession(t, f.start(), 6, 20, &testIDs[0])
	if o.err != nil {
		t.Fatal(o.err)
	}
	if got, want := commands(f.all(1)[0]), "O DC C DH H DM M DR R DR R DT T DL L DN N DB B DE E A Q"; got != want {
		t.Errorf("commands:\n got %s\nwant %s", got, want)
	}
}

// Answers Postfix would not take are errors, with what was wrong.
func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		acts    Actions
		proto   Protocol
		replies map[byte][][]byte
		want    string
	}{
		{"malformed reply", 0, 0, map[byte][][]byte{cmdMail: {spkt(replyCode, "250 ok\x00")}}, `mail: malformed reply "250 ok"`},
		{"enhanced class", 0, 0, map[byte][][]byte{cmdMail: {spkt(replyCode, "550 4.7.1 no\x00")}}, "malformed reply"},
		{"header without ADDHDRS", 0, 0, map[byte][][]byte{cmdEOB: {spkt(modAddHeader, "X\x00y\x00")}}, "without ADDHDRS negotiated"},
		{"modification before EOM", AddHeaders, 0, map[byte][][]byte{cmdRcpt: {spkt(modAddHeader, "X\x00y\x00")}}, `unexpected filter response 'h' after event SMFIC_RCPT`},
		{"skip not negotiated", 0, 0, map[byte][][]byte{cmdHeader: {pkt(replySkip)}}, "unexpected filter response SKIP"},
		{"bad header packet", AddHeaders, 0, map[byte][][]byte{cmdEOB: {spkt(modAddHeader, "X\x00")}}, "1 strings, want 2"},
		{"data after continue", 0, 0, map[byte][][]byte{cmdHelo: {pkt(replyContinue, 'x')}}, "followed by 1 data bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeMilter{t: t, optneg: optnegData(6, tc.acts, tc.proto), replies: tc.replies}
			o := oneSession(t, f.start(), 6, 2, &testIDs[0])
			if o.err == nil || !strings.Contains(o.err.Error(), tc.want) {
				t.Errorf("error %v, want %q", o.err, tc.want)
			}
		})
	}
}

func TestReplyCodes(t *testing.T) {
	for text, want := range map[string]uint16{"550 5.7.1 no": 550, "451 4.7.1 later": 451, "421-4.3.2 a\r\n421 4.3.2 b": 421, "550 no enhanced code": 550} {
		r, err := parseReplyCode(append([]byte(text), 0))
		if err != nil || r.smtp != want {
			t.Errorf("%q: %v %v", text, r, err)
		}
	}
	for _, bad := range []string{"", "5", "550", "550x", "650 no", "55a no", "451 5.7.1 mixed"} {
		if _, err := parseReplyCode([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHeaders(t *testing.T) {
	var names []string
	for _, h := range Headers(4) {
		names = append(names, h.Name)
	}
	if strings.Join(names, " ") != "From To Subject Date" {
		t.Errorf("4 fields: %v", names)
	}
	h20 := Headers(20)
	size := 0
	for _, h := range h20 {
		size += len(h.Name) + len(h.Value) + 4
	}
	if len(h20) != 20 || h20[0].Name != "Received" || size < 3500 || size > 8000 {
		t.Errorf("20 fields: %d, first %s, %d bytes", len(h20), h20[0].Name, size)
	}
	if n := len(Headers(40)); n != 40 {
		t.Errorf("40 fields: %d", n)
	}
	if n := len(Headers(0)); n != 0 {
		t.Errorf("0 fields: %d", n)
	}
}

func TestParseTarget(t *testing.T) {
	for spec, want := range map[string]Target{
		"hg=unix:/run/hg.sock":            {"hg", "unix", "/run/hg.sock"},
		"hg=local:/run/hg.sock":           {"hg", "unix", "/run/hg.sock"},
		"hg=inet:127.0.0.1:8894":          {"hg", "tcp", "127.0.0.1:8894"},
		"hg=inet:127.9.8.7:1":             {"hg", "tcp", "127.9.8.7:1"},
		"hg=inet:[::1]:8894":              {"hg", "tcp", "[::1]:8894"},
		"hg=inet:[::ffff:127.0.0.1]:8894": {"hg", "tcp", "[::ffff:127.0.0.1]:8894"},
	} {
		got, err := ParseTarget(spec)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v", spec, got, err)
		}
	}
	for spec, want := range map[string]string{
		"hg=inet:192.0.2.1:8894":   "192.0.2.1 is not a loopback address",
		"hg=inet:[2001:db8::1]:25": "not a loopback address",
		"hg=inet:0.0.0.0:25":       "not a loopback address",
		"hg=inet:localhost:25":     "want inet:IP:PORT",
		"hg=tcp:127.0.0.1:25":      "want unix:/path or inet:IP:PORT",
		"unix:/x":                  "want NAME=",
		"=unix:/x":                 "want NAME=",
	} {
		if _, err := ParseTarget(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTarget(%q): %v, want %q", spec, err, want)
		}
	}
}

func TestMaskNames(t *testing.T) {
	p := NRHeader | NoBody | NoData
	if s := p.String(); s != "NOBODY|NR_HDR|NODATA" {
		t.Errorf("String %q", s)
	}
	for _, s := range []string{"NOBODY|NR_HDR|NODATA", "0x290", "656"} {
		if v, err := ParseMask(s, ProtocolFlag); err != nil || Protocol(v) != p {
			t.Errorf("ParseMask(%q) = %x, %v", s, v, err)
		}
	}
	if s := (AddHeaders | SetSymList | 1<<12).String(); s != "ADDHDRS|SETSYMLIST|0x1000" {
		t.Errorf("String %q", s)
	}
	if _, err := ParseMask("NOPE", ActionFlag); err == nil {
		t.Error("an unknown name is accepted")
	}
	if s := Protocol(0).String(); s != "none" {
		t.Errorf("String %q", s)
	}
}
