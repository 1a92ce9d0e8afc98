package milter_test

import (
	"fmt"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"
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
