package milter_test

import (
	"fmt"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-msgauth/authres"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
)

// End of message: Authentication-Results added and forged ones removed,
// quarantine and tag.

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
	deleted := deletedAuthResults(mods)
	if len(deleted) != 1 || deleted[0] != 2 {
		t.Errorf("deleted Authentication-Results %v, want [2] (ours, not other.example's)", deleted)
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
		m.step("data")(m.cs.DataStart())
		m.step("header")(m.cs.HeaderField("Authentication-Results", hdr, nil))
		m.step("eoh")(m.cs.HeaderEnd())
		m.step("body")(m.cs.BodyChunk([]byte("hello\r\n")))
		mods, a, err := m.cs.End()
		m.check("eom", a, err)
		deleted := deletedAuthResults(mods)
		want := map[int][]uint32{0: nil, 1: {1}}[i]
		if fmt.Sprint(deleted) != fmt.Sprint(want) {
			t.Errorf("message %d: deleted %v, want %v", i+1, deleted, want)
		}
	}
}

// quarantine and tag take effect at end of message, and the client is accepted.
func TestQuarantineAndTag(t *testing.T) {
	h := start(t, `extra_rules:
  - {name: hold-forgers, match: {spf_helo: fail}, action: quarantine}
  - {name: mark-o365, match: {helo: "*.outbound.protection.outlook.com", spf_helo: pass}, action: tag}
`)
	for _, tc := range []struct {
		ip, helo string
		code     gomilter.ModifyActionType
		header   string
	}{
		{forgerIP, o365Helo, gomilter.ActionQuarantine, "quarantined by rule hold-forgers"},
		{o365IP, o365Helo, gomilter.ActionAddHeader, "tagged by rule mark-o365"},
	} {
		m := h.dial(t)
		m.connect(tc.ip)
		m.helo(tc.helo)
		m.mail("<a@contoso.example>")
		wantContinue(t, "rcpt "+tc.ip, m.rcpt("<user@receiver.example>"))
		mods, a := m.message()
		wantAccept(t, "eom "+tc.ip, a)
		found := false
		for _, mod := range mods {
			found = found || mod.Type == tc.code
		}
		if !found {
			t.Errorf("%s: no modification of type %d in %+v", tc.ip, tc.code, mods)
		}
		if x, ok := header(mods, "X-Heloguard"); !ok || x != tc.header {
			t.Errorf("%s: X-Heloguard = %q, want %q", tc.ip, x, tc.header)
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
		if mod.Type == gomilter.ActionQuarantine {
			t.Fatal("monitor mode quarantined a message")
		}
	}
	if x, _ := header(mods, "X-Heloguard"); x != "quarantine by rule hold-forgers, not enforced (monitor)" {
		t.Errorf("X-Heloguard = %q", x)
	}
}

// Every spelling RFC 8601 section 2.2 allows for our authserv-id (comments,
// folding, a version, a quoted-string, any case, a trailing dot) is ours, and
// so is a value that does not parse but starts with our name: all are removed,
// each at its own position among the message's Authentication-Results. Names
// that only contain or resemble ours are someone else's and are kept.
func TestForgedAuthResultsSpellings(t *testing.T) {
	for _, tc := range []struct {
		value string
		ours  bool
	}{
		{"mx.receiver.example; spf=pass smtp.mailfrom=bank.example", true},
		{"other.example; spf=pass smtp.mailfrom=contoso.example", false},
		{"mx.receiver.example 1; spf=pass smtp.mailfrom=bank.example", true},
		{"mx.receiver.example\t1; spf=pass smtp.mailfrom=bank.example", true},
		{"mx.receiver.example.evil.com; dkim=pass header.d=bank.example", false},
		{"mx.receiver.example(comment); dkim=pass header.d=bank.example", true},
		{`"mx.receiver.example"; dkim=pass header.d=bank.example`, true},
		{"xmx.receiver.example; dkim=pass header.d=bank.example", false},
		{"MX.Receiver.EXAMPLE; dkim=pass header.d=bank.example", true},
		{"mx.receiver.example.; dkim=pass header.d=bank.example", true},
		{"mx.receiver.examplex; dkim=pass header.d=bank.example", false},
		{`  (a (nested \) comment) here)  mx.receiver.example (v) 1 (x) ; dmarc=pass header.from=bank.example`, true},
		{"mx.receiver.example\r\n\t; spf=pass smtp.mailfrom=bank.example", true},
		{"\r\n mx.receiver.example\r\n (folded\r\n comment)\r\n 1;\r\n dkim=pass header.d=bank.example", true},
		{"(mx.receiver.example) other.example; dkim=pass header.d=bank.example", false},
		{`"mx.receiver\.example"; dkim=pass header.d=bank.example`, true},
		{`" MX.receiver.example. "; dkim=pass header.d=bank.example`, true},
		{`"mx.receiver.example.evil.com"; dkim=pass header.d=bank.example`, false},
		{"mx.receiver.example;none", true},
		{"mx.receiver.example", true},
		{"other.example; spf=pass reason=\"mx.receiver.example\"", false},
		// Not RFC 8601, read loosely: removed.
		{"mx.receiver.example/2; spf=pass smtp.mailfrom=bank.example", true},
		{`"mx.receiver.example; dkim=pass header.d=bank.example`, true},
		{"mx.receiver.example (unterminated; dkim=pass header.d=bank.example", true},
		{"mx.receiver(c).example; dkim=pass header.d=bank.example", true},
		{"mx-receiver.example; dkim=pass header.d=bank.example", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.value), func(t *testing.T) {
			h := start(t, "")
			m := h.dial(t)
			m.connect(o365IP)
			m.helo(o365Helo)
			m.mail("<a@contoso.example>")
			m.rcpt("<user@receiver.example>")
			// The spelling sits between two headers that are someone else's
			// and one that is plainly ours, so its position is the second.
			mods, fin := m.message(
				"Authentication-Results", "other.example; spf=pass smtp.mailfrom=contoso.example",
				"Subject", "not counted: positions are per header name",
				"Authentication-Results", tc.value,
				"Authentication-Results", "other.example; dkim=pass header.d=contoso.example",
				"Authentication-Results", "mx.receiver.example; dkim=pass header.d=bank.example",
			)
			want := []uint32{4} // deleted from the last, so earlier positions stay right
			if tc.ours {
				want = []uint32{4, 2}
			}
			if got := deletedAuthResults(mods); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("deleted Authentication-Results at %v, want %v; mods %+v\nfinal %v", got, want, mods, fin)
			}
		})
	}
}

// A PTR name is whatever the owner of a reverse zone puts there, quotes and
// semicolons included, and it is forward-confirmed when the owner also serves
// its A record. Such a name must not reach our header: written into the
// reason's quoted-string it would close it early and add results of its own.
// A name we cannot prove safe (LDH) is left out of the reason; the iprev
// result, policy.iprev and the spf result stay.
func TestAuthResultsUnsafePTRName(t *testing.T) {
	for _, tc := range []struct {
		ptr    string // as in a zone file
		reason string // "" for none
	}{
		{`evil\"\;dkim=pass.attacker.example.`, ""},
		{`evil\"\ dkim=pass\ header.d=bank.example.attacker.example.`, ""}, // "\ " rather than "\032": dnsworld keys names by their text
		{`back\\slash.attacker.example.`, ""},
		{`semi\;colon.attacker.example.`, ""},
		{`under_score.attacker.example.`, ""},
		{`-leading-hyphen.attacker.example.`, ""},
		{`mail.one-to-one.example.`, "ptr mail.one-to-one.example"},
	} {
		t.Run(tc.ptr, func(t *testing.T) {
			h := start(t, "")
			z := dnsworld.NewZone()
			for _, rr := range []string{
				"34.2.0.192.in-addr.arpa. 3600 IN PTR " + tc.ptr,
				tc.ptr + " 3600 IN A 192.0.2.34",
				"mail.sender.example. 3600 IN A 192.0.2.34",
				`mail.sender.example. 3600 IN TXT "v=spf1 ip4:192.0.2.34 -all"`,
			} {
				if err := z.AddRR(rr); err != nil {
					t.Fatalf("%s: %v", rr, err)
				}
			}
			h.dns.SetZone(z)
			m := h.dial(t)
			m.connect("192.0.2.34")
			m.helo("mail.sender.example")
			m.mail("<a@sender.example>")
			wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
			mods, _ := m.message("Subject", "hi")
			ar, ok := header(mods, "Authentication-Results")
			if !ok {
				t.Fatalf("no Authentication-Results in %+v", mods)
			}
			logs := h.log.decisions(t)
			if len(logs) != 1 || len(logs[0].Evidence.PTRConfirmed) != 1 {
				t.Fatalf("want one decision with one confirmed PTR name, got %v", logs)
			}
			got, err := milter.ParseAR(ar)
			if err != nil {
				t.Fatalf("our header does not parse (PTR %q): %v", logs[0].Evidence.PTRConfirmed[0], err)
			}
			iprev := milter.ARResult{Method: "iprev", Value: "pass", Reason: tc.reason, HasReason: tc.reason != "",
				Props: []milter.ARProp{{Type: "policy", Property: "iprev", Value: "192.0.2.34"}}}
			spf := milter.ARResult{Method: "spf", Value: "pass", Props: []milter.ARProp{{Type: "smtp", Property: "helo", Value: "mail.sender.example"}}}
			if got.ID != "mx.receiver.example" || got.Version != "" || fmt.Sprint(got.Results) != fmt.Sprint([]milter.ARResult{iprev, spf}) {
				t.Errorf("%q reads as %+v, want mx.receiver.example; %v; %v", ar, got, iprev, spf)
			}
			// What a careless reader makes of it: go-msgauth splits on ";".
			id, results, err := authres.Parse(ar)
			if err != nil || id != "mx.receiver.example" || len(results) != 2 {
				t.Fatalf("authres.Parse(%q) = %q, %d results, %v; want mx.receiver.example, 2 results", ar, id, len(results), err)
			}
			if r, ok := results[0].(*authres.IPRevResult); !ok || r.Value != authres.ResultPass || r.IP != "192.0.2.34" || (r.Reason != "") != (tc.reason != "") {
				t.Errorf("authres.Parse: first result %+v, want iprev=pass policy.iprev=192.0.2.34, reason %v", results[0], tc.reason != "")
			}
			if r, ok := results[1].(*authres.SPFResult); !ok || r.Value != authres.ResultPass || r.Helo != "mail.sender.example" {
				t.Errorf("authres.Parse: second result %+v, want spf=pass smtp.helo=mail.sender.example", results[1])
			}
		})
	}
}

// An MTA that lets heloguard add headers but not change them or quarantine:
// the message goes on without those modifications (a forged header stays, and
// that is logged), rather than the session ending and the MTA applying its
// default action.
func TestActionsNotOffered(t *testing.T) {
	h := start(t, `extra_rules:
  - {name: hold-forgers, match: {spf_helo: fail}, action: quarantine}
`)
	m := h.dialWith(t, gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptSetMacros))
	m.connect(forgerIP)
	m.helo(o365Helo)
	m.mail("<a@contoso.example>")
	wantContinue(t, "rcpt", m.rcpt("<user@receiver.example>"))
	mods, a := m.message("Authentication-Results", "mx.receiver.example; spf=pass")
	wantAccept(t, "eom", a)
	for _, mod := range mods {
		if mod.Type == gomilter.ActionChangeHeader || mod.Type == gomilter.ActionQuarantine {
			t.Errorf("a modification the MTA did not allow: %+v", mod)
		}
	}
	if x, _ := header(mods, "X-Heloguard"); !strings.Contains(x, "not possible") {
		t.Errorf("X-Heloguard = %q, want it to say the quarantine was not possible", x)
	}
	if _, ok := header(mods, "Authentication-Results"); !ok {
		t.Errorf("no Authentication-Results added: %+v", mods)
	}
	if !strings.Contains(strings.Join(h.ops.lines(), "\n"), "stays in the message") {
		t.Errorf("the forged header that stays is not logged:\n%s", strings.Join(h.ops.lines(), "\n"))
	}
}
