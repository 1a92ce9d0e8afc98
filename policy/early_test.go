package policy_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/policy"
)

// Tests of JudgeEarly: deciding at connect, from reverse DNS alone.

func TestJudgeEarlyBuiltin(t *testing.T) {
	eng := judgeEngine(t, "")
	ip := netip.MustParseAddr("192.0.2.50")
	tests := []struct {
		name    string
		rev     policy.Reverse
		decided bool
		rule    string
		action  policy.Action
		reply   string
	}{
		{"no PTR", policy.Reverse{IPRev: policy.IPRevPermError}, true, "no-ptr", policy.ActionReject,
			"550 5.7.25 client 192.0.2.50 has no reverse DNS (PTR) record (HELO (none)); ask the owner of the address to set one"},
		{"PTR not confirmed", policy.Reverse{IPRev: policy.IPRevFail, Names: []string{"fake.example"}}, true, "ptr-not-confirmed", policy.ActionReject,
			"550 5.7.25 reverse DNS of 192.0.2.50 names fake.example, which does not resolve back to 192.0.2.50 (HELO (none))"},
		// reverse-dns-temperror would tempfail, but the HELO rules before it
		// (helo-syntax, …) reject: a bare HELO must get its 550, not a 451.
		{"DNS trouble", policy.Reverse{IPRev: policy.IPRevTempError}, false, "", "", ""},
		{"pass", policy.Reverse{IPRev: policy.IPRevPass, Names: []string{"mail.sender.example"}, Confirmed: []string{"mail.sender.example"}}, false, "", "", ""},
		// generic-ptr would refuse, but generic-helo (accepting, HELO-dependent) comes first.
		{"pass, generic PTR", policy.Reverse{IPRev: policy.IPRevPass, Names: []string{"dsl-192-0-2-50.isp.example"}, Confirmed: []string{"dsl-192-0-2-50.isp.example"}}, false, "", "", ""},
	}
	for _, tc := range tests {
		d, ok := eng.JudgeEarly(ip, tc.rev)
		if ok != tc.decided {
			t.Errorf("%s: decided %v (%+v), want %v", tc.name, ok, d, tc.decided)
			continue
		}
		if !ok {
			continue
		}
		if d.Rule != tc.rule || d.Action != tc.action || d.Reply.String() != tc.reply || d.Monitor {
			t.Errorf("%s: %s by %s reply %q, want %s by %s reply %q", tc.name, d.Action, d.Rule, d.Reply.String(), tc.action, tc.rule, tc.reply)
		}
		if d.Evidence.IPRev != tc.rev.IPRev || d.Evidence.HeloForm != policy.HeloEmpty || d.Evidence.SPFHelo != policy.SPFNone {
			t.Errorf("%s: evidence %+v", tc.name, d.Evidence)
		}
	}
}

func TestJudgeEarlyMappedIP(t *testing.T) {
	eng := judgeEngine(t, "")
	d, ok := eng.JudgeEarly(netip.MustParseAddr("::ffff:192.0.2.51"), policy.Reverse{IPRev: policy.IPRevPermError})
	if !ok || d.Rule != "no-ptr" || !strings.HasPrefix(d.Reply.String(), "550 5.7.25 client 192.0.2.51 has") {
		t.Errorf("got %v %+v", ok, d)
	}
}

func TestJudgeEarlyAllowlist(t *testing.T) {
	permerror := policy.Reverse{IPRev: policy.IPRevPermError}
	tests := []struct {
		name    string
		cfg     string
		ip      string
		rev     policy.Reverse
		decided bool
	}{
		// A HELO allowlist might accept once the HELO is known: wait for it.
		{"helo allowlist first", "allowlist: {helo: [legacy.partner.example]}\n", "192.0.2.60", permerror, false},
		{"helo and ip allowlist", "allowlist: {ip: [198.51.100.0/24], helo: [legacy.partner.example]}\n", "192.0.2.60", permerror, false},
		// An IP allowlist is known at connect.
		{"ip allowlist, client listed", "allowlist: {ip: [192.0.2.0/24]}\n", "192.0.2.60", permerror, false},
		{"ip allowlist, client not listed", "allowlist: {ip: [198.51.100.0/24]}\n", "192.0.2.60", permerror, true},
		// A PTR allowlist needs confirmed names, which a client without PTR lacks.
		{"ptr allowlist, no PTR", "allowlist: {ptr: [\"*.partner.example\"]}\n", "192.0.2.60", permerror, true},
		{"ptr allowlist, confirmed", "allowlist: {ptr: [\"*.partner.example\"]}\n", "192.0.2.60",
			policy.Reverse{IPRev: policy.IPRevPass, Names: []string{"mx.partner.example"}, Confirmed: []string{"mx.partner.example"}}, false},
		// Refusing HELO rules in front are passed over: they refuse either way.
		{"refusing helo rule first", "extra_rules:\n  - {name: bad-helo, match: {helo: \"*.bad.example\"}, action: reject}\n", "192.0.2.60", permerror, true},
		// An accepting rule that holds without the HELO: accepting needs the whole evidence.
		{"accepting ip rule first", "extra_rules:\n  - {name: friends, match: {ip: 192.0.2.0/24}, action: accept}\n", "192.0.2.60", permerror, false},
		{"accepting helo rule nested in not", "extra_rules:\n  - {name: odd, match: {not: {any: [{helo_form: fqdn}]}}, action: tag}\n", "192.0.2.60", permerror, false},
	}
	for _, tc := range tests {
		eng := judgeEngine(t, tc.cfg)
		d, ok := eng.JudgeEarly(netip.MustParseAddr(tc.ip), tc.rev)
		if ok != tc.decided {
			t.Errorf("%s: decided %v (%s by %s), want %v", tc.name, ok, d.Action, d.Rule, tc.decided)
		}
		if ok && d.Rule != "no-ptr" {
			t.Errorf("%s: decided by %s", tc.name, d.Rule)
		}
	}
}

// TestJudgeEarlyAgreesWithJudge: whatever JudgeEarly refuses at connect, Judge
// must refuse too (enforced, not monitor) once the HELO is known, whatever the
// HELO turns out to be. Otherwise a client that would be let through at HELO is
// turned away at connect.
func TestJudgeEarlyAgreesWithJudge(t *testing.T) {
	configs := map[string]string{
		"built-in":            "",
		"helo allowlist":      "allowlist: {helo: [\"*.partner.example\"]}\n",
		"ip allowlist":        "allowlist: {ip: [203.0.113.0/24]}\n",
		"generic-ptr off":     "overrides: {generic-ptr: {disabled: true}}\n",
		"no-ptr monitor":      "overrides: {no-ptr: {monitor: true}}\n",
		"helo-syntax monitor": "overrides: {helo-syntax: {monitor: true}}\n",
		"strict":              "overrides: {helo-spf-pass: {action: reject}}\n",
		"tempfail no-ptr":     "overrides: {no-ptr: {action: tempfail}}\n",
	}
	ip := netip.MustParseAddr("192.0.2.70")
	revs := []policy.Reverse{
		{IPRev: policy.IPRevPermError},
		{IPRev: policy.IPRevTempError},
		{IPRev: policy.IPRevFail, Names: []string{"x.example"}},
		{IPRev: policy.IPRevPass, Names: []string{"mx.partner.example"}, Confirmed: []string{"mx.partner.example"}},
		{IPRev: policy.IPRevPass, Names: []string{"dsl-192-0-2-70.isp.example"}, Confirmed: []string{"dsl-192-0-2-70.isp.example"}},
	}
	// HELOs and the evidence they could bring.
	var helos []heloCase
	for _, h := range []string{"mx.partner.example", "localhost", "", "[192.0.2.70]", "[192.0.2.1]", "mx.receiver.example"} {
		for _, spf := range []policy.SPFResult{policy.SPFNone, policy.SPFPass, policy.SPFFail, policy.SPFTempError} {
			for _, aligned := range []bool{false, true} {
				h, spf, aligned := h, spf, aligned
				helos = append(helos, heloCase{h, func(e *policy.Evidence) {
					hp := policy.ParseHelo(h)
					e.HeloForm = hp.Form
					e.HeloLiteralMatchesIP = hp.Literal == ip
					e.HeloIsLocal = h == "mx.receiver.example"
					if hp.Form == policy.HeloFQDN {
						e.SPFHelo, e.HeloAligned, e.HeloAMatchesIP = spf, aligned, aligned
						for _, n := range e.PTRConfirmed {
							e.HeloMatchesPTR = e.HeloMatchesPTR || n == hp.Name
						}
					}
				}})
			}
		}
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			judgeEarlyAgrees(t, name, judgeEngine(t, cfg), ip, revs, helos)
		})
	}
}

type heloCase struct {
	helo string
	ev   func(*policy.Evidence)
}

func judgeEarlyAgrees(t *testing.T, name string, eng *policy.Engine, ip netip.Addr, revs []policy.Reverse, helos []heloCase) {
	for _, rev := range revs {
		early, ok := eng.JudgeEarly(ip, rev)
		if !ok || early.Monitor {
			continue
		}
		for _, hc := range helos {
			ev := policy.Evidence{IPRev: rev.IPRev, PTR: rev.Names, PTRConfirmed: rev.Confirmed, SPFHelo: policy.SPFNone,
				PTRGeneric: early.Evidence.PTRGeneric}
			hc.ev(&ev)
			d := eng.Judge(ip, policy.ParseHelo(hc.helo), ev)
			if !d.Action.Refuses() || d.Monitor {
				msg := fmt.Sprintf("%s: iprev %s: JudgeEarly refuses (%s by %s) but with HELO %q Judge says %s by %s (monitor %v)",
					name, rev.IPRev, early.Action, early.Rule, hc.helo, d.Action, d.Rule, d.Monitor)
				t.Error(msg)
				break
			}
		}
	}
}
