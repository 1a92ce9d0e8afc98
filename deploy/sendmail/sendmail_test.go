// Package sendmail_test is heloguard's end-to-end test through a real Sendmail
// 8.17 (Debian's packages, unpacked by deploy/install-test-deps.sh rather than
// installed, since sendmail-bin conflicts with postfix). The Sendmail
// configuration is built from the shipped heloguard.mc with only the milter
// socket substituted.
//
// Sendmail does not speak the proxy protocol, so clients connect from loopback
// addresses of their own (127.0.0.1, 127.0.0.66, ::1) and heloguard runs with
// no trusted networks; the DNS world gives those addresses PTR, A/AAAA and SPF
// records.
//
// It skips unless Sendmail is unpacked, m4 and swaks are installed and it runs
// as root; with HELOGUARD_E2E=1 those are failures instead.
package sendmail_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy"
)

const (
	goodIP, goodHelo     = "127.0.0.1", "mail.good.example"
	forgerIP, forgerHelo = "127.0.0.66", "NAM02-BL2-obe.outbound.protection.outlook.com"
	good6IP, good6Helo   = "::1", "mail6.good.example"
)

// The loopback clients' DNS, added to the scenario world.
var loopbackWorld = []string{
	"1.0.0.127.in-addr.arpa. 3600 IN PTR mail.good.example.",
	"mail.good.example. 3600 IN A 127.0.0.1",
	"66.0.0.127.in-addr.arpa. 3600 IN PTR vps66.forger.example.",
	"vps66.forger.example. 3600 IN A 127.0.0.66",
	"1." + strings.Repeat("0.", 31) + "ip6.arpa. 3600 IN PTR mail6.good.example.",
	"mail6.good.example. 3600 IN AAAA ::1",
}

type world struct {
	hg    *e2e.Daemon
	unix  *sendmail           // milter over the unix socket, as heloguard.mc ships
	tcp   *sendmail           // the same snippet with an inet socket
	wire  *e2e.MilterRecorder // between unix and heloguard
	swaks string
	runs  []e2e.Run // sessions that heloguard judges
}

func (w *world) client(t *testing.T, name, ip, helo string, rcpts ...string) client {
	if len(rcpts) == 0 {
		rcpts = []string{"user@receiver.example"}
	}
	c := client{name: name, ip: ip, port: freeSourcePort(t, ip), helo: helo, rcpts: rcpts}
	w.runs = append(w.runs, e2e.Run{Name: name, IP: ip, Port: c.port})
	return c
}

func TestSendmail(t *testing.T) {
	in := findSendmail(t)
	w := &world{swaks: e2e.Tool(t, "swaks")}
	e2e.RequireRoot(t, "a throw-away Sendmail instance")

	_, dns := e2e.StartDNS(t, loopbackWorld...)
	bin := e2e.Build(t)
	sockDir := socketDir(t)
	sock := filepath.Join(sockDir, "heloguard.sock")
	w.hg = e2e.StartDaemon(t, bin, e2e.Config{
		DNS:             dns.Addr,
		Listen:          []string{"unix:" + sock},
		TrustedNetworks: []string{}, // every client here is on loopback
	})
	// Sendmail logs the milter protocol only to syslog: the unix instance
	// reaches heloguard through a recorder of the packets (in the same safe
	// directory). The inet one connects directly, for tcp-socket-timing.
	w.wire = e2e.RecordMilter(t, filepath.Join(sockDir, "recorder.sock"), sock)
	w.unix = startSendmail(t, in, "unix", "local:"+w.wire.Path, true)
	w.tcp = startSendmail(t, in, "tcp", "inet:"+fmt.Sprint(w.hg.Port)+"@127.0.0.1", false)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- heloguard stderr:\n%s", w.hg.Stderr())
			w.hg.LogDecisions(t)
		}
	})

	t.Run("accepted", w.accepted)
	t.Run("milter-protocol-v6", w.milterProtocol)
	t.Run("forger-refused", w.forgerRefused)
	t.Run("postmaster-exempt", w.postmasterExempt)
	t.Run("ipv6-client", w.ipv6Client)
	t.Run("tcp-socket-timing", w.tcpTiming)
	t.Run("decision-log", w.decisionLog)
	t.Run("milter-down-tempfails", w.milterDown)
}

// socketDir makes a directory for heloguard's unix socket under /run, as in
// production: Sendmail refuses a milter socket whose path passes through a
// world-writable directory such as /tmp ("local socket name ... unsafe").
func socketDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/run", "heloguard-e2e-")
	if err != nil {
		t.Fatalf("a socket directory under /run: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o750); err != nil {
		t.Fatal(err)
	}
	return d
}

// sendmailReply is the reply Sendmail gives for a milter's 5xx refusal of rcpt:
// it puts "<rcpt>... " after the enhanced status code. (4xx go out unchanged.)
func sendmailReply(t *testing.T, policyReply, rcpt string) string {
	t.Helper()
	f := strings.SplitN(policyReply, " ", 3)
	if len(f) != 3 || !regexp.MustCompile(`^\d\.\d{1,3}\.\d{1,3}$`).MatchString(f[1]) {
		t.Fatalf("policy reply %q is not CODE X.Y.Z TEXT", policyReply)
	}
	if f[0][0] != '5' {
		return policyReply
	}
	return fmt.Sprintf("%s %s <%s>... %s", f[0], f[1], rcpt, f[2])
}

// checkDecision waits for the session's one decision log line and checks it.
func (w *world) checkDecision(t *testing.T, c client, exp e2e.Expected, stage, queueID string) *e2e.Decision {
	t.Helper()
	ds, raw := w.hg.WaitDecision(t, c.ip, c.port)
	if len(ds) != 1 {
		all, _, _ := w.hg.Decisions()
		t.Errorf("want one decision log line for %s port %d, got %d:\n%s\n(all lines: %d)", c.ip, c.port, len(ds), strings.Join(raw, "\n"), len(all))
		if len(ds) == 0 {
			return nil
		}
	}
	d := ds[0]
	check := func(field, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("decision log %s = %q, want %q\n%s", field, got, want, raw[0])
		}
	}
	check("client_ip", d.ClientIP.String(), c.ip)
	check("helo", d.Helo, c.helo)
	check("rule", d.Rule, exp.Rule)
	check("action", string(d.Action), string(exp.Action))
	check("stage", d.Stage, stage)
	check("mode", d.Mode, "enforce")
	if stage != "" {
		check("reply", d.Reply, exp.Reply)
	}
	if queueID != "" {
		check("queue_id", d.QueueID, queueID)
	}
	if d.Evidence.IPRev == "" {
		t.Errorf("decision log line has no evidence.iprev (is the client trusted?): %s", raw[0])
	}
	return &d
}

// accepted: a forward-confirmed client with a matching HELO gets 250 at RCPT
// and its message carries our Authentication-Results; an incoming one that
// claims our authserv-id is removed, another server's kept.
func (w *world) accepted(t *testing.T) {
	exp := w.hg.Check(t, goodIP, goodHelo)
	if exp.Action != "accept" {
		t.Fatalf("heloguard check %s %s: %+v, want accept", goodIP, goodHelo, exp)
	}
	c := w.client(t, "accepted", goodIP, goodHelo)
	c.headers = []string{
		"Authentication-Results: mx.receiver.example; spf=pass smtp.helo=forged.example",
		"Authentication-Results: other.example; spf=fail smtp.helo=kept.example",
	}
	s := swaks(t, w.swaks, w.unix.port, c)
	t.Logf("RCPT -> %s; end of data -> %s (session %v, unix socket)", s.Reply("RCPT"), s.Reply("."), s.Elapsed.Round(time.Millisecond))
	if r := s.Reply("RCPT"); !strings.HasPrefix(r, "250 2.1.5 ") {
		t.Fatalf("RCPT got %q, want 250 2.1.5\n%s", r, s.Out)
	}
	if s.QueueID(queuedRE) == "" {
		t.Fatalf("end of data got %q, want 250 2.0.0 <queue id> Message accepted\n%s", s.Reply("."), s.Out)
	}
	w.checkDecision(t, c, exp, "", s.QueueID(queuedRE))
	ms := w.unix.waitDelivered(t, c.id(), 1)
	if len(ms) == 0 {
		return
	}
	m := ms[0]
	ours, others := m.AuthResults()
	if len(ours) != 1 {
		t.Fatalf("want exactly one Authentication-Results: %s; ..., got %q\n%s", e2e.AuthservID, ours, m.Raw)
	}
	t.Logf("Authentication-Results: %s", ours[0])
	for _, want := range []string{"iprev=pass", "policy.iprev=127.0.0.1", "smtp.helo=mail.good.example"} {
		if !strings.Contains(ours[0], want) {
			t.Errorf("Authentication-Results %q lacks %q", ours[0], want)
		}
	}
	if strings.Contains(m.Raw, "forged.example") {
		t.Errorf("the forged Authentication-Results: %s header was not removed:\n%s", e2e.AuthservID, m.Raw)
	}
	if len(others) != 1 || !strings.Contains(others[0], "kept.example") {
		t.Errorf("another server's Authentication-Results should be kept, got %q\n%s", others, m.Raw)
	}
}

// milterProtocol: Sendmail and heloguard speak milter protocol version 6, as
// seen on the wire (Sendmail logs it only to syslog): heloguard asks for no
// DATA, unknown-command, end-of-header or body events and for no reply to
// header fields or at the stages before reject_at (rcpt), and Sendmail keeps
// to that: it sends none of those events and goes on without waiting after
// CONNECT, HELO, MAIL and each header field. Only RCPT, where refusals are
// delivered, and end of message, where the headers change, get an answer.
func (w *world) milterProtocol(t *testing.T) {
	exp := w.hg.Check(t, goodIP, goodHelo)
	c := w.client(t, "milter-protocol", goodIP, goodHelo)
	c.headers = []string{"Authentication-Results: mx.receiver.example; spf=pass smtp.helo=forged.example"}
	s := swaks(t, w.swaks, w.unix.port, c)
	if r := s.Reply("RCPT"); !strings.HasPrefix(r, "250 ") || s.QueueID(queuedRE) == "" {
		t.Fatalf("RCPT got %q, end of data %q, want 250s\n%s", r, s.Reply("."), s.Out)
	}
	w.checkDecision(t, c, exp, "", s.QueueID(queuedRE))
	w.unix.waitDelivered(t, c.id(), 1)
	mc, ok := w.wire.WaitClient(c.port, 10*time.Second)
	if !ok {
		t.Fatalf("the recorder has no finished milter connection for client port %d; it has %d:\n%s", c.port, len(w.wire.Conns()), traces(w.wire.Conns()))
	}
	t.Logf("on the wire: %s", mc.Trace())
	if mc.Err != nil {
		t.Errorf("milter recorder: %v", mc.Err)
	}

	p := mc.Packets
	if len(p) < 2 || p[0].Dir != e2e.FromMTA || p[0].Cmd != 'O' || p[1].Dir != e2e.FromMilter || p[1].Cmd != 'O' {
		t.Fatalf("want Sendmail's OPTNEG, then heloguard's, got %s", mc.Trace())
	}
	offer, answer := p[0], p[1]
	t.Logf("Sendmail offers version %d, actions %s, protocol %s", offer.Version, e2e.ActionFlags(offer.Actions), e2e.ProtocolFlags(offer.Protocol))
	t.Logf("heloguard answers version %d, actions %s, protocol %s", answer.Version, e2e.ActionFlags(answer.Actions), e2e.ProtocolFlags(answer.Protocol))
	if offer.Version != 6 {
		t.Errorf("Sendmail offers milter protocol version %d, want 6", offer.Version)
	}
	if answer.Version != 6 {
		t.Errorf("heloguard answers OPTNEG with version %d, want 6", answer.Version)
	}
	wantProto := []string{"SMFIP_NOBODY", "SMFIP_NOEOH", "SMFIP_NR_HDR", "SMFIP_NOUNKNOWN", "SMFIP_NODATA", "SMFIP_NR_CONN", "SMFIP_NR_HELO", "SMFIP_NR_MAIL"}
	if got := e2e.ProtocolFlags(answer.Protocol); !slices.Equal(got, wantProto) {
		t.Errorf("heloguard's OPTNEG protocol flags are %s, want %s", got, wantProto)
	}
	if slices.Contains(e2e.ProtocolFlags(answer.Protocol), "SMFIP_NR_RCPT") {
		t.Errorf("heloguard asks for no reply at RCPT, where its refusals are delivered (reject_at: rcpt)")
	}
	wantActions := []string{"SMFIF_ADDHDRS", "SMFIF_CHGHDRS", "SMFIF_QUARANTINE", "SMFIF_SETSYMLIST"}
	if got := e2e.ActionFlags(answer.Actions); !slices.Equal(got, wantActions) {
		t.Errorf("heloguard's OPTNEG actions are %s, want %s", got, wantActions)
	}

	// Every packet heloguard sent after OPTNEG, with the MTA packet it follows:
	// a reply sent where none is due lands after that command or a later one,
	// so each command is checked for what follows it, not just the first.
	count := map[byte]int{}
	for _, x := range exchanges(p[2:]) {
		cmd, replies := x.cmd.Cmd, e2e.MilterConn{Packets: x.replies}.Trace()
		count[cmd]++
		switch cmd {
		case 'R':
			if len(x.replies) != 1 || x.replies[0].Cmd != 'c' {
				t.Errorf("heloguard answered RCPT with [%s], want one continue (c)", replies)
			} else {
				t.Logf("RCPT -> %s", replies)
			}
		case 'E':
			checkEOM(t, x.replies)
		default:
			if len(x.replies) > 0 {
				t.Errorf("heloguard answered Sendmail's %s with [%s], want no reply (%s)", x.cmd, replies, noReplyWhy[cmd])
			}
		}
	}
	for _, cmd := range "CHMRE" {
		if n := count[byte(cmd)]; n != 1 {
			t.Errorf("Sendmail sent %d %c packets, want 1", n, cmd)
		}
	}
	if count['L'] == 0 {
		t.Errorf("Sendmail sent no header fields (L): heloguard needs them to find forged Authentication-Results")
	} else {
		t.Logf("Sendmail sent %d header fields (L) without waiting for a reply", count['L'])
	}
	for cmd, flag := range map[byte]string{'B': "SMFIP_NOBODY", 'N': "SMFIP_NOEOH", 'T': "SMFIP_NODATA", 'U': "SMFIP_NOUNKNOWN"} {
		if n := count[cmd]; n > 0 {
			t.Errorf("Sendmail sent %d %c packets despite %s", n, cmd, flag)
		}
	}
}

// Why heloguard owes no reply to an MTA packet.
var noReplyWhy = map[byte]string{
	'C': "SMFIP_NR_CONN", 'H': "SMFIP_NR_HELO", 'M': "SMFIP_NR_MAIL", 'L': "SMFIP_NR_HDR",
	'D': "macros get none", 'A': "abort gets none", 'Q': "quit gets none",
}

type exchange struct {
	cmd     e2e.MilterPacket   // from the MTA
	replies []e2e.MilterPacket // from heloguard, before the MTA's next packet
}

// exchanges groups packets by the MTA packet that each of heloguard's follows.
func exchanges(ps []e2e.MilterPacket) []exchange {
	var out []exchange
	for _, p := range ps {
		switch {
		case p.Dir == e2e.FromMTA:
			out = append(out, exchange{cmd: p})
		case len(out) == 0:
			out = append(out, exchange{replies: []e2e.MilterPacket{p}}) // a reply before any command
		default:
			out[len(out)-1].replies = append(out[len(out)-1].replies, p)
		}
	}
	return out
}

// checkEOM: at end of message heloguard sends its header changes, among them
// our Authentication-Results inserted (i), then accept (a) last.
func checkEOM(t *testing.T, replies []e2e.MilterPacket) {
	t.Helper()
	trace := e2e.MilterConn{Packets: replies}.Trace()
	if len(replies) == 0 || replies[len(replies)-1].Cmd != 'a' {
		t.Errorf("heloguard answered end of message with [%s], want modifications, then accept (a)", trace)
		return
	}
	inserted := false
	for _, r := range replies[:len(replies)-1] {
		if !strings.ContainsRune("+-2behimpq", rune(r.Cmd)) {
			t.Errorf("heloguard sent %s before its final reply at end of message, want only modifications: [%s]", r, trace)
		}
		inserted = inserted || r.Cmd == 'i' && r.Header == "Authentication-Results"
	}
	if !inserted {
		t.Errorf("heloguard's end-of-message packets [%s] insert no Authentication-Results (i)", trace)
	}
	t.Logf("end of message -> %s", trace)
}

func traces(cs []e2e.MilterConn) string {
	var b strings.Builder
	for _, c := range cs {
		addr, port := c.Client()
		fmt.Fprintf(&b, "  client %s port %d (closed %v, error %v): %s\n", addr, port, c.Closed, c.Err, c.Trace())
	}
	return b.String()
}

// forgerRefused: a HELO whose SPF fails for the client is refused at RCPT
// with the policy's code, the recipient inserted by Sendmail.
func (w *world) forgerRefused(t *testing.T) {
	exp := w.hg.Check(t, forgerIP, forgerHelo)
	if exp.Action != "reject" {
		t.Fatalf("heloguard check %s %s: %+v, want reject", forgerIP, forgerHelo, exp)
	}
	c := w.client(t, "forger", forgerIP, forgerHelo)
	s := swaks(t, w.swaks, w.unix.port, c)
	want := sendmailReply(t, exp.Reply, "user@receiver.example")
	t.Logf("RCPT -> %s", s.Reply("RCPT"))
	if r := s.Reply("MAIL"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("MAIL got %q, want 250 (refusals are due at RCPT)\n%s", r, s.Out)
	}
	if r := s.Reply("RCPT"); r != want {
		t.Errorf("RCPT got\n  %q\nwant\n  %q\n%s", r, want, s.Out)
	}
	if r := s.Reply("DATA"); strings.HasPrefix(r, "354") {
		t.Errorf("DATA was accepted (%q) after the only recipient was refused", r)
	}
	d := w.checkDecision(t, c, exp, "rcpt", "")
	if d != nil && d.Evidence.SPFHelo != policy.SPFFail {
		t.Errorf("decision log evidence.spf_helo = %q, want fail", d.Evidence.SPFHelo)
	}
}

// postmasterExempt: the forger is refused for user@ but postmaster@ gets through
// in the same transaction. Sendmail's {rcpt_addr} is only "postmaster", so
// heloguard must go by the RCPT argument.
func (w *world) postmasterExempt(t *testing.T) {
	exp := w.hg.Check(t, forgerIP, forgerHelo)
	c := w.client(t, "postmaster", forgerIP, forgerHelo, "postmaster@receiver.example", "user@receiver.example")
	s := swaks(t, w.swaks, w.unix.port, c)
	r := s.Replies("RCPT")
	want := sendmailReply(t, exp.Reply, "user@receiver.example")
	t.Logf("RCPT replies: %q", r)
	if len(r) != 2 || !strings.HasPrefix(r[0], "250 ") || r[1] != want {
		t.Fatalf("RCPT replies %q, want [250 ..., %q]\n%s", r, want, s.Out)
	}
	if s.QueueID(queuedRE) == "" {
		t.Fatalf("end of data got %q, want 250\n%s", s.Reply("."), s.Out)
	}
	d := w.checkDecision(t, c, exp, "rcpt", s.QueueID(queuedRE))
	if d != nil && !strings.Contains(d.Exemption, "postmaster") {
		t.Errorf("decision log exemption = %q, want it to name postmaster", d.Exemption)
	}
	ms := w.unix.waitDelivered(t, c.id(), 1)
	if len(ms) == 0 {
		return
	}
	if to := ms[0].Get("X-Test-Rcpt"); len(to) != 1 || to[0] != "postmaster" {
		t.Errorf("delivered to %q, want only postmaster", to)
	}
	ours, _ := ms[0].AuthResults()
	if len(ours) != 1 || !strings.Contains(ours[0], "spf=fail") {
		t.Errorf("want our Authentication-Results with spf=fail on the postmaster message, got %q", ours)
	}
}

// ipv6Client: Sendmail sends the client as "IPv6:0:0:0:0:0:0:0:1"; heloguard
// must judge ::1 (FCrDNS through ip6.arpa) and log it as "::1".
func (w *world) ipv6Client(t *testing.T) {
	exp := w.hg.Check(t, good6IP, good6Helo)
	if exp.Action != "accept" {
		t.Fatalf("heloguard check %s %s: %+v, want accept", good6IP, good6Helo, exp)
	}
	c := w.client(t, "ipv6", good6IP, good6Helo)
	s := swaks(t, w.swaks, w.unix.port, c)
	t.Logf("RCPT -> %s", s.Reply("RCPT"))
	if r := s.Reply("RCPT"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("RCPT got %q, want 250\n%s", r, s.Out)
	}
	if s.QueueID(queuedRE) == "" {
		t.Fatalf("end of data got %q, want 250\n%s", s.Reply("."), s.Out)
	}
	d := w.checkDecision(t, c, exp, "", s.QueueID(queuedRE))
	if d != nil && d.Evidence.IPRev != policy.IPRevPass {
		t.Errorf("decision log evidence.iprev = %q, want pass", d.Evidence.IPRev)
	}
	if ms := w.unix.waitDelivered(t, c.id(), 1); len(ms) > 0 {
		ours, _ := ms[0].AuthResults()
		// An IPv6 address is quoted: ':' may not appear in an RFC 2045 token.
		if len(ours) != 1 || !strings.Contains(ours[0], "iprev=pass") || !strings.Contains(ours[0], `policy.iprev="::1"`) {
			t.Errorf(`want our Authentication-Results with iprev=pass policy.iprev="::1", got %q`, ours)
		} else {
			t.Logf("Authentication-Results: %s", ours[0])
		}
	}
}

// tcpTiming: the same accepted session through the Sendmail instance whose
// milter socket is inet:. Sendmail writes each milter packet in two writes
// with Nagle on; without heloguard's TCP_QUICKACK each stage waits ~40 ms for
// a delayed ACK. The bound is generous; the times are logged.
func (w *world) tcpTiming(t *testing.T) {
	exp := w.hg.Check(t, goodIP, goodHelo)
	var unixT, tcpT []time.Duration
	for i := 0; i < 3; i++ {
		for _, sm := range []*sendmail{w.unix, w.tcp} {
			c := w.client(t, "timing-"+sm.name, goodIP, goodHelo)
			s := swaks(t, w.swaks, sm.port, c)
			if r := s.Reply("RCPT"); !strings.HasPrefix(r, "250 ") || s.QueueID(queuedRE) == "" {
				t.Fatalf("%s: RCPT got %q, end of data %q, want 250s\n%s", sm.name, r, s.Reply("."), s.Out)
			}
			d := w.checkDecision(t, c, exp, "", s.QueueID(queuedRE))
			if sm == w.tcp {
				tcpT = append(tcpT, s.Elapsed)
			} else {
				unixT = append(unixT, s.Elapsed)
			}
			if d != nil {
				t.Logf("%s socket: session %v, heloguard decision %v ms", sm.name, s.Elapsed.Round(time.Millisecond), d.DurationMS)
			}
			if s.Elapsed > 2*time.Second {
				t.Errorf("%s socket: a full SMTP session took %v, want < 2s (Nagle and delayed ACKs?)", sm.name, s.Elapsed)
			}
			sm.waitDelivered(t, c.id(), 1)
		}
	}
	t.Logf("session times: unix socket %v, inet socket %v", unixT, tcpT)
	// A full session passes about ten milter stages: with Nagle against
	// delayed ACKs the inet socket would add ~400 ms to each session.
	if len(unixT) == 3 && len(tcpT) == 3 {
		if d := minDur(tcpT) - minDur(unixT); d > 250*time.Millisecond {
			t.Errorf("sessions over the inet socket take %v longer than over the unix socket (best of 3), want about the same", d)
		}
	}
}

func minDur(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds[1:] {
		m = min(m, d)
	}
	return m
}

// decisionLog: exactly one JSON decision line per session, nothing else.
func (w *world) decisionLog(t *testing.T) {
	all, raw := w.hg.CheckOnePerRun(t, w.runs, "%s port %d")
	for i, d := range all {
		if d.ClientIP.String() == "::1" {
			t.Logf("IPv6 decision line: %s", raw[i])
		}
	}
}

// milterDown: with heloguard stopped, the snippet's F=T makes Sendmail refuse
// temporarily instead of passing mail unjudged. (Through the recorder the
// milter connection opens and is closed at once, rather than refused.)
func (w *world) milterDown(t *testing.T) {
	w.hg.Stop(t)
	c := client{name: "milter-down", ip: goodIP, port: freeSourcePort(t, goodIP), helo: goodHelo, rcpts: []string{"user@receiver.example"}}
	s := swaks(t, w.swaks, w.unix.port, c)
	var refused string
	for _, cmd := range []string{"", "EHLO", "MAIL", "RCPT", "DATA", "."} {
		if r := s.Reply(cmd); r != "" && !strings.HasPrefix(r, "2") && !strings.HasPrefix(r, "354") {
			refused = r
			break
		}
	}
	t.Logf("heloguard down: first refusal %q", refused)
	if !strings.HasPrefix(refused, "4") {
		t.Errorf("with the milter down, want a 4xx (F=T), got %q\n%s", refused, s.Out)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(w.unix.find(c.id())); n > 0 {
		t.Errorf("a message was delivered while the milter was down")
	}
}
