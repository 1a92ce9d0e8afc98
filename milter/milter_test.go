package milter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/dnscache/dnstest"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
	"github.com/heloguard/heloguard/policy/scenario"
)

// world serves the Office 365 scenario world (the in-repo copy in
// policy/scenario/testdata), plus an IPv6 sender.
func world(t testing.TB) *dnstest.Server {
	t.Helper()
	f, err := scenario.Load("../policy/scenario/testdata/seed-office365.yaml")
	if err != nil {
		t.Fatal(err)
	}
	z, err := f.Zone()
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range []string{
		"5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 3600 IN PTR mail6.one-to-one.example.",
		"mail6.one-to-one.example. 3600 IN AAAA 2001:db8::25",
	} {
		if err := z.AddRR(rr); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := dnstest.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// syncBuffer collects decision log lines from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// decisions returns the decision log lines so far.
func (b *syncBuffer) decisions(t *testing.T) []record.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []record.Record
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		r, err := record.Parse([]byte(line))
		if err != nil {
			t.Fatalf("log line is not a decision record: %v: %q", err, line)
		}
		out = append(out, r)
	}
	return out
}

type harness struct {
	addr string
	log  *syncBuffer
	srv  *milter.Server
	dns  *dnstest.Server
}

// start runs a milter server on loopback TCP with extra config YAML.
func start(t testing.TB, extra string) *harness {
	t.Helper()
	return startOn(t, "inet:127.0.0.1:0", extra)
}

// startOn runs a milter server listening on listen, with the scenario world
// as its DNS and extra config YAML.
func startOn(t testing.TB, listen, extra string) *harness {
	t.Helper()
	dns := world(t)
	yml := fmt.Sprintf("listen: %s\nlocal_names: [mx.receiver.example]\nauthserv_id: mx.receiver.example\ndns: {servers: [%q], timeout: 500ms}\n%s", listen, dns.Addr, extra)
	cfg, err := config.Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	res, err := dnscache.New(cfg.DNS)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := milter.New(&milter.State{Cfg: cfg, Engine: policy.New(cfg.PolicyOptions(res))}, logs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	addr, err := srv.Listen(cfg.Listen[0])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{addr: addr.String(), log: logs, srv: srv, dns: dns}
}

// mta is one MTA connection, in Postfix's order of events.
type mta struct {
	t  *testing.T
	cs *gomilter.ClientSession
}

func (h *harness) dial(t *testing.T) *mta {
	t.Helper()
	c := gomilter.NewClientWithOptions("tcp", h.addr, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	cs, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &mta{t: t, cs: cs}
}

func (m *mta) step(what string) func(*gomilter.Action, error) {
	return func(a *gomilter.Action, err error) { m.check(what, a, err) }
}

func (m *mta) check(what string, a *gomilter.Action, err error) *gomilter.Action {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("%s: %v", what, err)
	}
	return a
}

func (m *mta) connect(ip string) *gomilter.Action {
	m.t.Helper()
	fam := gomilter.FamilyInet
	if strings.Contains(ip, ":") {
		fam = gomilter.FamilyInet6
	}
	a, err := m.cs.Conn("["+ip+"]", fam, 40000, ip)
	return m.check("connect", a, err)
}

func (m *mta) helo(name string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Helo(name)
	return m.check("helo", a, err)
}

func (m *mta) mail(from string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Mail(from, nil)
	return m.check("mail", a, err)
}

func (m *mta) rcpt(to string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Rcpt(to, nil)
	return m.check("rcpt", a, err)
}

// message sends headers and a body and returns the EOM modifications.
func (m *mta) message(headers ...string) ([]gomilter.ModifyAction, *gomilter.Action) {
	m.t.Helper()
	for i := 0; i+1 < len(headers); i += 2 {
		m.step("header")(m.cs.HeaderField(headers[i], headers[i+1]))
	}
	m.step("eoh")(m.cs.HeaderEnd())
	m.step("body")(m.cs.BodyChunk([]byte("hello\r\n")))
	mods, a, err := m.cs.End()
	m.check("eom", a, err)
	if err := m.cs.Abort(); err != nil { // Postfix aborts after every message
		m.t.Fatal(err)
	}
	return mods, a
}

func wantContinue(t *testing.T, what string, a *gomilter.Action) {
	t.Helper()
	if a.Code != gomilter.ActContinue {
		t.Fatalf("%s: got %c %d %q, want continue", what, a.Code, a.SMTPCode, a.SMTPText)
	}
}

func wantReply(t *testing.T, what string, a *gomilter.Action, code int, prefix string, contains ...string) {
	t.Helper()
	if a.Code != gomilter.ActReplyCode || a.SMTPCode != code || !strings.HasPrefix(a.SMTPText, prefix) {
		t.Fatalf("%s: got %c %d %q, want %d %s…", what, a.Code, a.SMTPCode, a.SMTPText, code, prefix)
	}
	for _, s := range contains {
		if !strings.Contains(a.SMTPText, s) {
			t.Errorf("%s: reply %q does not mention %q", what, a.SMTPText, s)
		}
	}
}

func header(mods []gomilter.ModifyAction, name string) (string, bool) {
	for _, m := range mods {
		if (m.Code == gomilter.ActInsertHeader || m.Code == gomilter.ActAddHeader) && strings.EqualFold(m.HeaderName, name) {
			return m.HeaderValue, true
		}
	}
	return "", false
}

const (
	o365IP     = "104.47.38.131"
	o365Helo   = "NAM02-BL2-obe.outbound.protection.outlook.com"
	forgerIP   = "192.0.2.66"
	oneToOneIP = "192.0.2.25"
)

func TestOffice365AcceptedWithAuthResults(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(o365IP))
	wantContinue(t, "helo", m.helo(o365Helo))
	wantContinue(t, "mail", m.mail("<a@contoso.example>"))
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	mods, a := m.message("Subject", "hi")
	wantContinue(t, "eom", a)
	ar, ok := header(mods, "Authentication-Results")
	if !ok {
		t.Fatalf("no Authentication-Results in %+v", mods)
	}
	for _, want := range []string{"mx.receiver.example;", "iprev=pass", "policy.iprev=104.47.38.131", "spf=pass", "smtp.helo=nam02-bl2-obe.outbound.protection.outlook.com"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results %q lacks %q", ar, want)
		}
	}
	logs := h.log.decisions(t)
	if len(logs) != 1 {
		t.Fatalf("want 1 decision line, got %d: %v", len(logs), logs)
	}
	l := logs[0]
	ev := l.Evidence
	if l.Rule != "generic-helo" || l.Action != "accept" || l.ClientIP.String() != o365IP || ev.IPRev != "pass" || ev.SPFHelo != "pass" || !ev.HeloAligned {
		t.Errorf("decision line: %v", l)
	}
}

func TestForgerRefusedAtRcptAndStateKept(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(forgerIP))
	wantContinue(t, "helo", m.helo(o365Helo))
	wantContinue(t, "mail", m.mail("<ceo@contoso.example>"))
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 550, "5.7.23 ", forgerIP, o365Helo)
	// postmaster@ is always accepted (RFC 5321 4.5.1), even from this client.
	wantContinue(t, "rcpt postmaster", m.rcpt("<Postmaster@receiver.example>"))
	wantContinue(t, "rcpt bare postmaster", m.rcpt("<postmaster>"))
	_, a := m.message("Subject", "to postmaster")
	wantContinue(t, "eom", a)
	// A second message on the same connection: the refusal still holds, so
	// the backend kept its state across the 'y' reply and the abort.
	wantContinue(t, "mail 2", m.mail("<ceo@contoso.example>"))
	wantReply(t, "rcpt 2", m.rcpt("<other@receiver.example>"), 550, "5.7.23 ")
	wantContinue(t, "rcpt abuse", m.rcpt("<abuse@receiver.example>"))
	logs := h.log.decisions(t)
	if len(logs) != 1 || logs[0].Stage != "rcpt" || logs[0].Action != "reject" || logs[0].Rule != "helo-spf-fail" {
		t.Errorf("decision lines: %v", logs)
	}
}

func TestSecondHeloJudgedAgain(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(oneToOneIP))
	wantContinue(t, "helo", m.helo("localhost"))
	wantContinue(t, "mail", m.mail("<a@one-to-one.example>"))
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 550, "5.5.2 ", "localhost")
	if err := m.cs.Abort(); err != nil {
		t.Fatal(err)
	}
	// EHLO again (as after STARTTLS), now with the right name.
	wantContinue(t, "helo 2", m.helo("mail.one-to-one.example"))
	wantContinue(t, "mail 2", m.mail("<a@one-to-one.example>"))
	wantContinue(t, "rcpt 2", m.rcpt("<user@receiver.example>"))
	_, a := m.message()
	wantContinue(t, "eom", a)
	logs := h.log.decisions(t)
	if len(logs) != 2 || logs[0].Rule != "helo-syntax" || logs[1].Rule != "helo-equals-ptr" {
		t.Errorf("want two decisions (helo-syntax, helo-equals-ptr), got %v", logs)
	}
}

// Sendmail sends IPv6 clients as "IPv6:…", which go-milter cannot parse; the
// address must come from {client_addr} or the host name.
func TestSendmailIPv6Form(t *testing.T) {
	h := start(t, "")
	for _, tc := range []struct {
		name, macro string
	}{
		{"macro", "IPv6:2001:db8::25"},
		{"hostname only", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := h.dial(t)
			if tc.macro != "" {
				if err := m.cs.Macros(gomilter.CodeConn, "{client_addr}", tc.macro); err != nil {
					t.Fatal(err)
				}
			}
			a, err := m.cs.Conn("[IPv6:2001:db8:0:0:0:0:0:25]", gomilter.FamilyInet6, 40000, "IPv6:2001:db8:0:0:0:0:0:25")
			wantContinue(t, "connect", m.check("connect", a, err))
			wantContinue(t, "helo", m.helo("mail6.one-to-one.example"))
			wantContinue(t, "mail", m.mail("<a@one-to-one.example>"))
			wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
			m2 := h.dial(t)
			a, err = m2.cs.Conn("[IPv6:2001:db8:0:0:0:0:0:25]", gomilter.FamilyInet6, 40000, "IPv6:2001:db8:0:0:0:0:0:25")
			m2.check("connect", a, err)
			m2.helo("forged.one-to-one.example")
			m2.mail("<a@one-to-one.example>")
			wantReply(t, "rcpt forged", m2.rcpt("<user@receiver.example>"), 550, "5.7.1 ", "2001:db8::25")
		})
	}
}

func TestAuthenticatedClientPasses(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	if err := m.cs.Macros(gomilter.CodeMail, "{auth_authen}", "alice"); err != nil {
		t.Fatal(err)
	}
	wantContinue(t, "mail", m.mail("<alice@receiver.example>"))
	wantContinue(t, "rcpt", m.rcpt("<someone@elsewhere.example>"))
	mods, _ := m.message()
	if x, ok := header(mods, "X-Heloguard"); !ok || !strings.Contains(x, "authenticated") {
		t.Errorf("X-Heloguard = %q, %v; want the exemption named", x, ok)
	}
}

func TestRejectAtHelo(t *testing.T) {
	h := start(t, "reject_at: helo\n")
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(forgerIP))
	wantReply(t, "helo", m.helo(o365Helo), 550, "5.7.23 ")
}

func TestRejectAtConnect(t *testing.T) {
	h := start(t, "reject_at: connect\n")
	m := h.dial(t)
	// No PTR: decided from reverse DNS alone, before the HELO.
	wantReply(t, "connect", m.connect("192.0.2.77"), 550, "5.7.25 ", "192.0.2.77")
	m.cs.Close()
	if l := h.log.decisions(t); len(l) != 1 || l[0].DecidedAt != "connect" || l[0].Stage != "connect" || l[0].Rule != "no-ptr" {
		t.Errorf("decision lines: %v", l)
	}
	// The forger's PTR is fine; only its HELO gives it away: refused at HELO.
	m2 := h.dial(t)
	wantContinue(t, "connect forger", m2.connect(forgerIP))
	wantReply(t, "helo forger", m2.helo(o365Helo), 550, "5.7.23 ")
}

func TestTempfailOnServfail(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect("192.0.2.99")
	m.helo("unreachable.example")
	m.mail("<a@unreachable.example>")
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 451, "4.7.25 ")
}

func TestMonitorModeRefusesNothing(t *testing.T) {
	h := start(t, "mode: monitor\n")
	m := h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<ceo@contoso.example>")
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	mods, _ := m.message()
	if x, ok := header(mods, "X-Heloguard"); !ok || !strings.Contains(x, "reject by rule helo-spf-fail") {
		t.Errorf("X-Heloguard = %q, %v", x, ok)
	}
	logs := h.log.decisions(t)
	if len(logs) != 1 || logs[0].Action != "reject" || logs[0].Mode != "monitor" || logs[0].Exemption != "monitor" {
		t.Errorf("decision lines: %v", logs)
	}
}

func TestPerRuleMonitor(t *testing.T) {
	h := start(t, "overrides: {helo-spf-fail: {monitor: true}}\n")
	m := h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<ceo@contoso.example>")
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	// Other rules still enforce.
	m2 := h.dial(t)
	m2.connect("192.0.2.77")
	m2.helo("helo-only.example")
	m2.mail("<a@helo-only.example>")
	wantReply(t, "rcpt", m2.rcpt("<user@receiver.example>"), 550, "5.7.25 ")
}

// A client's HELO must not put CR, LF or a bare % into the reply: Postfix
// would take a % as a format directive, a CRLF as a new reply line.
func TestReplySanitized(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(oneToOneIP)
	m.helo("evil%s\r\n250 ok")
	m.mail("<a@one-to-one.example>")
	a := m.rcpt("<user@receiver.example>")
	wantReply(t, "rcpt", a, 550, "5.5.2 ")
	if strings.ContainsAny(a.SMTPText, "\r\n") {
		t.Errorf("reply carries CR/LF: %q", a.SMTPText)
	}
	if strings.Contains(strings.ReplaceAll(a.SMTPText, "%%", ""), "%") {
		t.Errorf("reply carries an unescaped %%: %q", a.SMTPText)
	}
	if !strings.Contains(a.SMTPText, "evil%%s??250 ok") {
		t.Errorf("reply %q does not show the sanitized HELO", a.SMTPText)
	}
}

func TestForgedAuthResultsRemoved(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(o365IP)
	m.helo(o365Helo)
	m.mail("<a@contoso.example>")
	m.rcpt("<user@receiver.example>")
	mods, _ := m.message(
		"Authentication-Results", "other.example; spf=pass smtp.mailfrom=contoso.example",
		"Authentication-Results", "mx.receiver.example; spf=pass smtp.mailfrom=contoso.example",
	)
	var deleted []uint32
	for _, mod := range mods {
		if mod.Code == gomilter.ActChangeHeader && strings.EqualFold(mod.HeaderName, "Authentication-Results") && mod.HeaderValue == "" {
			deleted = append(deleted, mod.HeaderIndex)
		}
	}
	if len(deleted) != 1 || deleted[0] != 2 {
		t.Errorf("deleted Authentication-Results %v, want [2] (ours, not other.example's)", deleted)
	}
}

func TestTrustedNeedsNoDNS(t *testing.T) {
	h := start(t, "")
	before := h.dns.Queries()
	m := h.dial(t)
	wantContinue(t, "connect", m.connect("127.0.0.1"))
	wantContinue(t, "helo", m.helo("localhost"))
	m.mail("<a@b.example>")
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	if n := h.dns.Queries() - before; n != 0 {
		t.Errorf("trusted client caused %d DNS queries", n)
	}
}

func TestDecisionTimeout(t *testing.T) {
	h := start(t, "decision_timeout: 300ms\n")
	h.dns.SetDelay(time.Second)
	m := h.dial(t)
	m.connect("192.0.2.25")
	start := time.Now()
	m.helo("mail.one-to-one.example")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("HELO answered after %v; the decision budget is 300ms", el)
	}
	m.mail("<a@one-to-one.example>")
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 451, "4.4.3 ")
	if l := h.log.decisions(t); len(l) != 1 || l[0].Rule != "decision-timeout" {
		t.Errorf("decision lines: %v", l)
	}
}

// SIGTERM's drain: a session in flight finishes; new connections are refused.
func TestShutdownDrains(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(o365IP)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond) // let Shutdown close the listener
	wantContinue(t, "helo during drain", m.helo(o365Helo))
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a session open", err)
	default:
	}
	m.cs.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := gomilter.NewClientWithOptions("tcp", h.addr, gomilter.ClientOptions{ActionMask: gomilter.OptAddHeader}).Session(); err == nil {
		t.Error("a new connection was accepted after Shutdown")
	}
}

// An MTA that stops talking is dropped after read_timeout, and its session
// slot is freed: go-milter itself would wait forever.
func TestReadTimeoutDropsHungMTA(t *testing.T) {
	h := start(t, "read_timeout: 300ms\n")
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server sent data to a client that said nothing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent MTA's socket open for 5s with read_timeout 300ms")
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("dropped after %v, before read_timeout", el)
	}
	if !waitFor(2*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
		t.Errorf("%d sessions still counted", h.srv.Sessions())
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// quarantine and tag take effect at end of message, and the client is accepted.
func TestQuarantineAndTag(t *testing.T) {
	h := start(t, `extra_rules:
  - {name: hold-forgers, match: {spf_helo: fail}, action: quarantine}
  - {name: mark-o365, match: {helo: "*.outbound.protection.outlook.com", spf_helo: pass}, action: tag}
`)
	for _, tc := range []struct {
		ip, helo string
		code     gomilter.ModifyActCode
		header   string
	}{
		{forgerIP, o365Helo, gomilter.ActQuarantine, "quarantined by rule hold-forgers"},
		{o365IP, o365Helo, gomilter.ActAddHeader, "tagged by rule mark-o365"},
	} {
		m := h.dial(t)
		m.connect(tc.ip)
		m.helo(tc.helo)
		m.mail("<a@contoso.example>")
		wantContinue(t, "rcpt "+tc.ip, m.rcpt("<user@receiver.example>"))
		mods, a := m.message()
		wantContinue(t, "eom "+tc.ip, a)
		found := false
		for _, mod := range mods {
			found = found || mod.Code == tc.code
		}
		if !found {
			t.Errorf("%s: no %c modification in %+v", tc.ip, tc.code, mods)
		}
		if x, ok := header(mods, "X-Heloguard"); !ok || x != tc.header {
			t.Errorf("%s: X-Heloguard = %q, want %q", tc.ip, x, tc.header)
		}
	}
}

// max_sessions bounds concurrent sessions: the next MTA connection waits
// until one ends.
func TestMaxSessions(t *testing.T) {
	h := start(t, "max_sessions: 1\n")
	first := h.dial(t)
	first.connect(o365IP)
	got := make(chan error, 1)
	go func() {
		c := gomilter.NewClientWithOptions("tcp", h.addr, gomilter.ClientOptions{
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ActionMask: gomilter.OptAddHeader,
		})
		s, err := c.Session() // negotiation needs the server to accept
		if err == nil {
			s.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a second session was served while max_sessions is 1 (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	first.cs.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second session after the first ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second session was not served after the first ended")
	}
}

// Sendmail sends no abort after a message: the next message's header
// positions must not be counted on from the previous one.
func TestForgedAuthResultsWithoutAbort(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.connect(o365IP)
	m.helo(o365Helo)
	for i, hdr := range []string{"other.example; spf=pass", "mx.receiver.example; spf=pass smtp.mailfrom=contoso.example"} {
		m.mail("<a@contoso.example>")
		m.rcpt("<user@receiver.example>")
		m.step("header")(m.cs.HeaderField("Authentication-Results", hdr))
		m.step("eoh")(m.cs.HeaderEnd())
		mods, a, err := m.cs.End()
		m.check("eom", a, err)
		var deleted []uint32
		for _, mod := range mods {
			if mod.Code == gomilter.ActChangeHeader && mod.HeaderValue == "" {
				deleted = append(deleted, mod.HeaderIndex)
			}
		}
		want := map[int][]uint32{0: nil, 1: {1}}[i]
		if fmt.Sprint(deleted) != fmt.Sprint(want) {
			t.Errorf("message %d: deleted %v, want %v", i+1, deleted, want)
		}
	}
}

// Monitor mode holds nothing: a quarantine rule is only reported.
func TestMonitorModeDoesNotQuarantine(t *testing.T) {
	h := start(t, "mode: monitor\nextra_rules:\n  - {name: hold-forgers, match: {spf_helo: fail}, action: quarantine}\n")
	m := h.dial(t)
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<a@contoso.example>")
	m.rcpt("<user@receiver.example>")
	mods, _ := m.message()
	for _, mod := range mods {
		if mod.Code == gomilter.ActQuarantine {
			t.Fatal("monitor mode quarantined a message")
		}
	}
	if x, _ := header(mods, "X-Heloguard"); x != "quarantine by rule hold-forgers, not enforced (monitor)" {
		t.Errorf("X-Heloguard = %q", x)
	}
}

// A CONNECT without its port makes go-milter answer tempfail by itself and
// build a new backend on the session's goroutine; the session is ended
// instead, and later sessions are unaffected (run with -race).
func TestMalformedConnect(t *testing.T) {
	h := start(t, "")
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		send := func(code byte, data []byte) {
			pkt := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
			if _, err := c.Write(append(append(pkt, code), data...)); err != nil {
				t.Fatal(err)
			}
		}
		send('O', binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2), 0x31), 0))
		send('C', []byte("host\x004"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("the server did not close the session: %v", err)
		}
		c.Close()
		m := h.dial(t)
		wantContinue(t, "connect after a malformed one", m.connect(o365IP))
		wantContinue(t, "helo", m.helo(o365Helo))
	}
}
