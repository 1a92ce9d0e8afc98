package milter_test

import (
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/policy"
)

// Clients the MTA gives no usable address for. Only family L (a unix-socket
// client, local submission) is local; a CONNECT with family U (Postfix sends it
// when smtpd does not know the family, e.g. XCLIENT ADDR=[UNAVAILABLE]) or with
// a family 4 or 6 address that does not parse gets unknown_client_action.

// unknownClient is the rule name of these decisions (policy.RuleUnknownClient).
const unknownClient = "unknown-client"

// connectAs sends CONNECT as an MTA would for a client of family fam.
func (m *mta) connectAs(host string, fam gomilter.ProtoFamily, addr string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Conn(host, fam, 40000, addr)
	return m.check("connect", a, err)
}

func TestUnknownClientRefused(t *testing.T) {
	h := start(t, "")
	for _, tc := range []struct {
		name, host string
		fam        gomilter.ProtoFamily
		addr       string
	}{
		{"family U", "unknown", gomilter.FamilyUnknown, ""},
		{"family 4, garbage address", "[192.0.2.300]", gomilter.FamilyInet, "192.0.2.300"},
		{"family 6, garbage address", "unknown", gomilter.FamilyInet6, "2001:db8::zz"},
		{"family 6, empty address", "unknown", gomilter.FamilyInet6, ""},
		{"family 4, address with zone", "unknown", gomilter.FamilyInet, "192.0.2.1%eth0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.log.decisions(t))
			m := h.dial(t)
			wantContinue(t, "connect", m.connectAs(tc.host, tc.fam, tc.addr))
			// A forged Office 365 HELO: nothing about it may count.
			wantContinue(t, "helo", m.helo(o365Helo))
			wantContinue(t, "mail", m.mail("<ceo@contoso.example>"))
			wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 451, "4.7.1 ", "client address unknown")
			// Exemptions still apply.
			wantContinue(t, "rcpt postmaster", m.rcpt("<postmaster@receiver.example>"))
			m.cs.Close()
			if !waitFor(5*time.Second, func() bool { return len(h.log.decisions(t)) > before }) {
				t.Fatal("no decision line for a client without an address")
			}
			logs := h.log.decisions(t)[before:]
			l := logs[0]
			if len(logs) != 1 || l.Rule != unknownClient || l.Action != policy.ActionTempfail ||
				l.ClientIP.IsValid() || l.Stage != "rcpt" || l.Helo != o365Helo || l.ClientHost != tc.host ||
				l.Reply != "451 4.7.1 client address unknown to the MTA; try again later" {
				t.Errorf("decision lines %+v", logs)
			}
		})
	}
}

// A unix-socket client (family L) is local submission: never judged, never
// logged, whatever it says.
func TestUnixClientIsLocal(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	wantContinue(t, "connect", m.connectAs("localhost", gomilter.FamilyUnix, "/run/submission.sock"))
	wantContinue(t, "helo", m.helo(o365Helo))
	wantContinue(t, "mail", m.mail("<ceo@contoso.example>"))
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	_, a := m.message("Subject", "local")
	wantAccept(t, "eom", a)
	m.cs.Close()
	if !waitFor(5*time.Second, func() bool { return h.srv.Sessions() == 0 }) {
		t.Fatal("session not closed")
	}
	if logs := h.log.decisions(t); len(logs) != 0 {
		t.Errorf("a local client was logged: %+v", logs)
	}
}

// A family 4 CONNECT whose address does not parse is judged by the
// {client_addr} macro when that holds one.
func TestGarbageAddressWithClientAddrMacro(t *testing.T) {
	h := start(t, "")
	m := h.dial(t)
	m.macros.Set("{client_addr}", forgerIP)
	wantContinue(t, "connect", m.connectAs("unknown", gomilter.FamilyInet, "garbage"))
	wantContinue(t, "helo", m.helo(o365Helo))
	wantContinue(t, "mail", m.mail("<ceo@contoso.example>"))
	wantReply(t, "rcpt", m.rcpt("<user@receiver.example>"), 550, "5.7.23 ", forgerIP)
}

// unknown_client_action, delivered at reject_at like any refusal, with
// monitor mode and exemptions.
func TestUnknownClientAction(t *testing.T) {
	t.Run("reject at connect", func(t *testing.T) {
		h := start(t, "unknown_client_action: reject\nreject_at: connect\n")
		m := h.dial(t)
		wantReply(t, "connect", m.connectAs("unknown", gomilter.FamilyUnknown, ""), 550, "5.7.1 ", "client address unknown")
		m.cs.Close()
		waitFor(5*time.Second, func() bool { return len(h.log.decisions(t)) > 0 })
		if logs := h.log.decisions(t); len(logs) != 1 || logs[0].Rule != unknownClient || logs[0].Stage != "connect" || logs[0].Action != policy.ActionReject {
			t.Errorf("decision lines %+v", logs)
		}
	})
	t.Run("accept", func(t *testing.T) {
		h := start(t, "unknown_client_action: accept\n")
		m := h.dial(t)
		wantContinue(t, "connect", m.connectAs("unknown", gomilter.FamilyUnknown, ""))
		wantContinue(t, "helo", m.helo(o365Helo))
		wantContinue(t, "mail", m.mail("<ceo@contoso.example>"))
		wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
		mods, a := m.message("Subject", "hi")
		wantAccept(t, "eom", a)
		if ar, ok := header(mods, "Authentication-Results"); ok {
			t.Errorf("Authentication-Results %q for a client without an address", ar)
		}
		if logs := h.log.decisions(t); len(logs) != 1 || logs[0].Rule != unknownClient || logs[0].Action != policy.ActionAccept || logs[0].Helo != o365Helo {
			t.Errorf("decision lines %+v", logs)
		}
	})
	t.Run("monitor", func(t *testing.T) {
		h := start(t, "mode: monitor\n")
		m := h.dial(t)
		m.connectAs("unknown", gomilter.FamilyUnknown, "")
		m.helo(o365Helo)
		m.mail("<ceo@contoso.example>")
		wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
		mods, _ := m.message()
		if x, ok := header(mods, "X-Heloguard"); !ok || x != "tempfail by rule unknown-client, not enforced (monitor)" {
			t.Errorf("X-Heloguard = %q, %v", x, ok)
		}
	})
	t.Run("authenticated", func(t *testing.T) {
		h := start(t, "")
		m := h.dial(t)
		m.connectAs("unknown", gomilter.FamilyUnknown, "")
		m.helo(o365Helo)
		m.macros.Set("{auth_authen}", "alice")
		wantContinue(t, "mail", m.mail("<alice@receiver.example>"))
		wantContinue(t, "rcpt", m.rcpt("<someone@elsewhere.example>"))
		m.message()
		if logs := h.log.decisions(t); len(logs) != 1 || logs[0].Exemption != "authenticated" {
			t.Errorf("decision lines %+v", logs)
		}
	})
}
