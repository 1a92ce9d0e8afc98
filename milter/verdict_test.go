package milter_test

import (
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// Verdicts through the milter protocol: what each stage answers, exemptions,
// monitor mode, the decision log line.

func TestOffice365AcceptedWithAuthResults(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	wantContinue(t, "connect", m.connect(o365IP))
	wantContinue(t, "helo", m.helo(o365Helo))
	wantContinue(t, "mail", m.mail("<a@contoso.example>"))
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	mods, a := m.message("Subject", "hi")
	wantAccept(t, "eom", a)
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
	wantAccept(t, "eom", a)
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
	if err := m.cs.Abort(nil); err != nil {
		t.Fatal(err)
	}
	// EHLO again (as after STARTTLS), now with the right name.
	wantContinue(t, "helo 2", m.helo("mail.one-to-one.example"))
	wantContinue(t, "mail 2", m.mail("<a@one-to-one.example>"))
	wantContinue(t, "rcpt 2", m.rcpt("<user@receiver.example>"))
	_, a := m.message()
	wantAccept(t, "eom", a)
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
				m.macros.Set("{client_addr}", tc.macro)
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
	m.macros.Set("{auth_authen}", "alice")
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
	if strings.ContainsAny(a.SMTPReply, "\r\n") {
		t.Errorf("reply carries CR/LF: %q", a.SMTPReply)
	}
	if strings.Contains(strings.ReplaceAll(a.SMTPReply, "%%", ""), "%") {
		t.Errorf("reply carries an unescaped %%: %q", a.SMTPReply)
	}
	if !strings.Contains(a.SMTPReply, "evil%%s??250 ok") {
		t.Errorf("reply %q does not show the sanitized HELO", a.SMTPReply)
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

// HELOs the MTA does not wait for (SMFIP_NR_HELO) are judged at once, side by
// side, each within decision_timeout from its own arrival: the RCPT that
// follows two of them (EHLO, STARTTLS, EHLO) on slow DNS waits about one
// decision_timeout, not the two in a row that would pass Sendmail's 10 s reply
// timeout with the default 8 s. Both decisions are logged, the first first.
func TestHeloDecisionsDoNotAddUp(t *testing.T) {
	h := start(t, "decision_timeout: 1s\n")
	h.dns.SetDelay(3 * time.Second)
	m := h.dial(t)
	m.connect("192.0.2.25")
	start := time.Now()
	m.helo("mail.one-to-one.example")
	m.helo("mx.one-to-one.example")
	m.mail("<a@one-to-one.example>")
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 451, "4.")
	if el := time.Since(start); el > 1800*time.Millisecond {
		t.Errorf("RCPT answered %v after the first HELO; two decisions of 1s each ran one after the other", el)
	}
	m.cs.Close()
	if !waitFor(5*time.Second, func() bool { return len(h.log.lines()) == 2 }) {
		t.Fatalf("decision lines: %q", h.log.lines())
	}
	l := h.log.decisions(t)
	// Each a tempfail: the resolver's own timeout or the decision's, which
	// ever comes first.
	if l[0].Helo != "mail.one-to-one.example" || l[1].Helo != "mx.one-to-one.example" || l[0].Action != "tempfail" || l[1].Action != "tempfail" {
		t.Errorf("decisions: %+v", l)
	}
}
