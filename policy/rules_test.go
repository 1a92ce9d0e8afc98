package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// Tests of rule matching and Judge: evidence is built by hand, no DNS.

// is is the condition name in values, for tests.
func is(name string, values ...string) policy.Match {
	c, ok := policy.NewCond(name, values...)
	if !ok {
		panic("bad condition " + name)
	}
	return policy.Match{Is: []policy.Cond{c}}
}

func ptrp(m policy.Match) *policy.Match { return &m }

// and joins the conditions of matches into one match.
func and(ms ...policy.Match) policy.Match {
	var out policy.Match
	for _, m := range ms {
		out.Is = append(out.Is, m.Is...)
		out.IP = append(out.IP, m.IP...)
		out.PTR = append(out.PTR, m.PTR...)
		out.All, out.Any = append(out.All, m.All...), append(out.Any, m.Any...)
		if m.Not != nil {
			out.Not = m.Not
		}
	}
	return out
}

// judgeEngine is an engine over the built-in rules (or cfgText's), with no
// resolver: Judge needs none.
func judgeEngine(t *testing.T, cfgText string) *policy.Engine {
	t.Helper()
	cfg := config.Default()
	if cfgText != "" {
		var err error
		if cfg, err = config.Parse("test.yaml", []byte(cfgText)); err != nil {
			t.Fatalf("config: %v", err)
		}
	}
	opt := cfg.PolicyOptions(nil)
	opt.LocalNames = []string{"mx.receiver.example"}
	return policy.New(opt)
}

// passEv is the evidence of a client with forward-confirmed reverse DNS and
// nothing else going for it.
func passEv(form policy.HeloForm) policy.Evidence {
	return policy.Evidence{
		IPRev:        policy.IPRevPass,
		PTR:          []string{"mail.sender.example"},
		PTRConfirmed: []string{"mail.sender.example"},
		HeloForm:     form,
		SPFHelo:      policy.SPFNone,
		PTRSPF:       policy.SPFNone,
	}
}

// TestBuiltinRulesFire gives each built-in rule evidence designed for it. The
// evidence also satisfies later rules (mostly accepting ones), so the test
// shows the order too: the first match wins.
func TestBuiltinRulesFire(t *testing.T) {
	type tc struct {
		rule     string
		ip, helo string
		ev       func(*policy.Evidence)
		action   policy.Action
		reply    string // prefix of the expanded reply: code and enhanced code
	}
	tests := []tc{
		{"helo-impersonates-us", "192.0.2.25", "mx.receiver.example", func(e *policy.Evidence) {
			e.HeloIsLocal, e.HeloMatchesPTR, e.SPFHelo, e.HeloAligned = true, true, policy.SPFPass, true
		}, policy.ActionReject, "550 5.7.1 "},
		{"helo-impersonates-us", "192.0.2.25", "[192.0.2.1]", func(e *policy.Evidence) {
			e.HeloForm, e.HeloIsLocal = policy.HeloAddressLiteral, true
		}, policy.ActionReject, "550 5.7.1 "},
		{"helo-syntax", "192.0.2.25", "localhost", func(e *policy.Evidence) {
			e.HeloForm, e.HeloAMatchesIP = policy.HeloBare, true
		}, policy.ActionReject, "550 5.5.2 "},
		{"helo-syntax", "192.0.2.25", "192.0.2.25", func(e *policy.Evidence) { e.HeloForm = policy.HeloInvalid }, policy.ActionReject, "550 5.5.2 "},
		{"helo-syntax", "192.0.2.25", "", func(e *policy.Evidence) { e.HeloForm = policy.HeloEmpty }, policy.ActionReject, "550 5.5.2 "},
		{"helo-literal-mismatch", "192.0.2.25", "[192.0.2.99]", func(e *policy.Evidence) {
			e.HeloForm, e.IPRev = policy.HeloAddressLiteral, policy.IPRevPermError
		}, policy.ActionReject, "550 5.7.1 "},
		{"reverse-dns-temperror", "192.0.2.25", "mail.sender.example", func(e *policy.Evidence) {
			e.IPRev, e.PTRConfirmed, e.SPFHelo, e.HeloAligned = policy.IPRevTempError, nil, policy.SPFPass, true
		}, policy.ActionTempfail, "451 4.7.25 "},
		{"no-ptr", "192.0.2.25", "mail.sender.example", func(e *policy.Evidence) {
			e.IPRev, e.PTR, e.PTRConfirmed, e.SPFHelo, e.HeloAMatchesIP = policy.IPRevPermError, nil, nil, policy.SPFPass, true
		}, policy.ActionReject, "550 5.7.25 "},
		{"ptr-not-confirmed", "192.0.2.25", "mail.sender.example", func(e *policy.Evidence) {
			e.IPRev, e.PTRConfirmed, e.SPFHelo, e.HeloAMatchesIP = policy.IPRevFail, nil, policy.SPFPass, true
		}, policy.ActionReject, "550 5.7.25 "},
		{"generic-helo", "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com", func(e *policy.Evidence) {
			e.PTR = []string{"mail-bl2nam02on0131.outbound.protection.outlook.com"}
			e.PTRConfirmed = e.PTR
			e.SPFHelo, e.HeloAligned, e.PTRGeneric = policy.SPFPass, true, true
		}, policy.ActionAccept, ""},
		{"helo-spf-pass", "192.0.2.25", "relay.other.example", func(e *policy.Evidence) {
			e.SPFHelo, e.PTRGeneric = policy.SPFPass, true
		}, policy.ActionAccept, ""},
		{"generic-ptr", "198.0.10.20", "c-198-0-10-20.cable.example", func(e *policy.Evidence) {
			e.PTR = []string{"c-198-0-10-20.cable.example"}
			e.PTRConfirmed = e.PTR
			e.PTRGeneric, e.HeloMatchesPTR, e.HeloAMatchesIP = true, true, true
		}, policy.ActionReject, "550 5.7.25 "},
		{"generic-ptr", "198.0.10.21", "c-198-0-10-21.cable.example", func(e *policy.Evidence) {
			e.PTR = []string{"c-198-0-10-21.cable.example"}
			e.PTRConfirmed = e.PTR
			e.PTRGeneric, e.HeloMatchesPTR, e.PTRSPF = true, true, policy.SPFNeutral // the ISP's +all
		}, policy.ActionReject, "550 5.7.25 "},
		{"generic-ptr-temperror", "198.0.10.22", "c-198-0-10-22.cable.example", func(e *policy.Evidence) {
			e.PTR = []string{"c-198-0-10-22.cable.example"}
			e.PTRConfirmed = e.PTR
			e.PTRGeneric, e.HeloMatchesPTR, e.PTRSPF = true, true, policy.SPFTempError
		}, policy.ActionTempfail, "451 4.7.24 "},
		// An IP-shaped name whose domain's SPF authorizes the address (SparkPost).
		{"helo-equals-ptr", "156.70.34.223", "mta-70-34-223.sparkpostmail.com", func(e *policy.Evidence) {
			e.PTR = []string{"mta-70-34-223.sparkpostmail.com"}
			e.PTRConfirmed = e.PTR
			e.PTRGeneric, e.HeloMatchesPTR, e.PTRSPF = true, true, policy.SPFPass
		}, policy.ActionAccept, ""},
		{"helo-equals-ptr", "192.0.2.25", "mail.sender.example", func(e *policy.Evidence) {
			e.HeloMatchesPTR, e.HeloAMatchesIP, e.SPFHelo = true, true, policy.SPFFail
		}, policy.ActionAccept, ""},
		{"helo-a-matches", "192.0.2.25", "smtp.sender.example", func(e *policy.Evidence) {
			e.HeloAMatchesIP, e.SPFHelo = true, policy.SPFFail
		}, policy.ActionAccept, ""},
		// DNS trouble on the HELO's A/AAAA: helo-a-matches might have
		// accepted, so the SPF fail and the default reject below must not.
		{"helo-a-temperror", "192.0.2.25", "flaky.example", func(e *policy.Evidence) {
			e.HeloATempError, e.SPFHelo = true, policy.SPFFail
		}, policy.ActionTempfail, "451 4.4.3 "},
		{"helo-a-temperror", "192.0.2.25", "flaky.example", func(e *policy.Evidence) { e.HeloATempError = true }, policy.ActionTempfail, "451 4.4.3 "},
		{"helo-literal", "192.0.2.25", "[192.0.2.25]", func(e *policy.Evidence) {
			e.HeloForm, e.HeloLiteralMatchesIP = policy.HeloAddressLiteral, true
		}, policy.ActionAccept, ""},
		{"helo-literal", "2001:db8::25", "[IPv6:2001:db8::25]", func(e *policy.Evidence) {
			e.HeloForm, e.HeloLiteralMatchesIP = policy.HeloAddressLiteral, true
		}, policy.ActionAccept, ""},
		{"helo-spf-fail", "192.0.2.25", "forged.example", func(e *policy.Evidence) { e.SPFHelo = policy.SPFFail }, policy.ActionReject, "550 5.7.23 "},
		{"helo-spf-temperror", "192.0.2.25", "slow.example", func(e *policy.Evidence) { e.SPFHelo = policy.SPFTempError }, policy.ActionTempfail, "451 4.7.24 "},
	}
	for _, spf := range []policy.SPFResult{policy.SPFNone, policy.SPFSoftFail, policy.SPFNeutral, policy.SPFPermError} {
		tests = append(tests, tc{"default", "192.0.2.25", "other.example", func(e *policy.Evidence) { e.SPFHelo = spf }, policy.ActionReject, "550 5.7.1 "})
	}
	// Aligned alone never accepts (shared hosting).
	tests = append(tests, tc{"default", "192.0.2.66", "NAM02-BL2-obe.outbound.protection.outlook.com", func(e *policy.Evidence) {
		e.PTR = []string{"vps66.outlook.com"}
		e.PTRConfirmed = e.PTR
		e.HeloAligned = true
	}, policy.ActionReject, "550 5.7.1 "})

	eng := judgeEngine(t, "")
	fired := map[string]bool{}
	for _, tc := range tests {
		ev := passEv(policy.HeloFQDN)
		tc.ev(&ev)
		ip := netip.MustParseAddr(tc.ip)
		d := eng.Judge(ip, policy.ParseHelo(tc.helo), ev)
		fired[d.Rule] = true
		if d.Rule != tc.rule || d.Action != tc.action {
			t.Errorf("%s %q: %s by %s, want %s by %s", tc.ip, tc.helo, d.Action, d.Rule, tc.action, tc.rule)
			continue
		}
		reply := d.Reply.String()
		if tc.reply == "" {
			if reply != "" {
				t.Errorf("%s: accepting rule has reply %q", tc.rule, reply)
			}
			continue
		}
		if !strings.HasPrefix(reply, tc.reply) {
			t.Errorf("%s: reply %q, want %s...", tc.rule, reply, tc.reply)
		}
		if strings.ContainsAny(reply, "{}") {
			t.Errorf("%s: placeholder left in %q", tc.rule, reply)
		}
		if !strings.Contains(reply, tc.ip) {
			t.Errorf("%s: reply %q does not name the IP", tc.rule, reply)
		}
		wantHelo := tc.helo
		if wantHelo == "" {
			wantHelo = "(none)"
		}
		if !strings.Contains(reply, wantHelo) {
			t.Errorf("%s: reply %q does not name the HELO %q", tc.rule, reply, wantHelo)
		}
		if d.Monitor || d.Trusted {
			t.Errorf("%s: monitor %v trusted %v", tc.rule, d.Monitor, d.Trusted)
		}
		if !equalEvidence(d.Evidence, ev) {
			t.Errorf("%s: decision evidence %+v, want %+v", tc.rule, d.Evidence, ev)
		}
	}
	for _, r := range eng.Rules() {
		if !fired[r.Name] {
			t.Errorf("built-in rule %s never fired", r.Name)
		}
	}
}

func equalEvidence(a, b policy.Evidence) bool {
	return a.IPRev == b.IPRev && strings.Join(a.PTR, ",") == strings.Join(b.PTR, ",") &&
		strings.Join(a.PTRConfirmed, ",") == strings.Join(b.PTRConfirmed, ",") &&
		a.PTRGeneric == b.PTRGeneric && a.HeloForm == b.HeloForm && a.HeloMatchesPTR == b.HeloMatchesPTR &&
		a.HeloAMatchesIP == b.HeloAMatchesIP && a.HeloLiteralMatchesIP == b.HeloLiteralMatchesIP &&
		a.HeloAligned == b.HeloAligned && a.SPFHelo == b.SPFHelo && a.HeloIsLocal == b.HeloIsLocal
}

func TestJudgeNoRuleMatches(t *testing.T) {
	eng := judgeEngine(t, "rules:\n  - {name: only-fail, match: {iprev: fail}, action: reject}\n")
	d := eng.Judge(netip.MustParseAddr("192.0.2.1"), policy.ParseHelo("a.example"), passEv(policy.HeloFQDN))
	if d.Action != policy.ActionAccept || d.Rule != policy.RuleNoMatch || d.Reply.String() != "" {
		t.Errorf("got %+v", d)
	}
}

func TestJudgeMonitorAndDefaultReplies(t *testing.T) {
	eng := judgeEngine(t, `
rules:
  - {name: quiet-reject, match: {iprev: fail}, action: reject, monitor: true}
  - {name: plain-reject, match: {iprev: permerror}, action: reject}
  - {name: plain-tempfail, match: {iprev: temperror}, action: tempfail}
  - {name: q, match: {spf_helo: softfail}, action: quarantine}
  - {name: t, action: tag}
`)
	ip := netip.MustParseAddr("192.0.2.1")
	helo := policy.ParseHelo("a.example")
	ev := passEv(policy.HeloFQDN)

	ev.IPRev = policy.IPRevFail
	d := eng.Judge(ip, helo, ev)
	if d.Rule != "quiet-reject" || !d.Monitor || d.Action != policy.ActionReject ||
		d.Reply.String() != "550 5.7.1 rejected by policy rule quiet-reject: client 192.0.2.1, HELO a.example" {
		t.Errorf("monitor rule: %+v, reply %q", d, d.Reply.String())
	}
	ev.IPRev = policy.IPRevPermError
	if d := eng.Judge(ip, helo, ev); d.Monitor || d.Reply.String() != "550 5.7.1 rejected by policy rule plain-reject: client 192.0.2.1, HELO a.example" {
		t.Errorf("default reject reply: %q", d.Reply.String())
	}
	ev.IPRev = policy.IPRevTempError
	if d := eng.Judge(ip, helo, ev); d.Reply.String() != "451 4.7.1 temporarily refused by policy rule plain-tempfail: client 192.0.2.1, HELO a.example" {
		t.Errorf("default tempfail reply: %q", d.Reply.String())
	}
	ev.IPRev, ev.SPFHelo = policy.IPRevPass, policy.SPFSoftFail
	if d := eng.Judge(ip, helo, ev); d.Action != policy.ActionQuarantine || d.Reply.Code != 0 {
		t.Errorf("quarantine: %+v", d)
	}
	ev.SPFHelo = policy.SPFNone
	if d := eng.Judge(ip, helo, ev); d.Action != policy.ActionTag || d.Reply.Code != 0 {
		t.Errorf("tag: %+v", d)
	}
}

// TestMatchLogic: fields and, lists or, all/any/not.
func TestMatchLogic(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	ev := passEv(policy.HeloFQDN)
	ev.SPFHelo = policy.SPFSoftFail
	f := &policy.Facts{IP: ip, Helo: policy.ParseHelo("mail.sender.example"), Evidence: ev}
	pfx := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	pass := is("iprev", "pass")
	fail := is("iprev", "fail")
	tests := []struct {
		name string
		m    policy.Match
		want bool
	}{
		{"zero match holds", policy.Match{}, true},
		{"one field", pass, true},
		{"one field not holding", fail, false},
		{"list is or", is("iprev", "fail", "pass"), true},
		{"fields are and", and(policy.Match{IP: pfx("192.0.2.0/24")}, is("spf_helo", "fail")), false},
		{"fields are and, both hold", and(policy.Match{IP: pfx("192.0.2.0/24")}, is("spf_helo", "softfail")), true},
		{"ip outside", policy.Match{IP: pfx("198.51.100.0/24")}, false},
		{"ipv6 prefix does not hold an ipv4 client", policy.Match{IP: pfx("::/0")}, false},
		{"bool true", is("helo_aligned", "true"), false},
		{"bool false", is("helo_aligned", "false"), true},
		{"all holds", policy.Match{All: []policy.Match{pass, is("helo_form", "fqdn")}}, true},
		{"all fails on one", policy.Match{All: []policy.Match{pass, fail}}, false},
		{"any holds on one", policy.Match{Any: []policy.Match{fail, pass}}, true},
		{"any fails on none", policy.Match{Any: []policy.Match{fail, is("ptr_generic", "true")}}, false},
		{"not", policy.Match{Not: &fail}, true},
		{"not not", policy.Match{Not: &policy.Match{Not: &fail}}, false},
		{"not of zero never holds", policy.Match{Not: &policy.Match{}}, false},
		{"field and any", and(is("spf_helo", "softfail"), policy.Match{Any: []policy.Match{fail}}), false},
		{"all and any and not", policy.Match{
			All: []policy.Match{pass},
			Any: []policy.Match{fail, is("helo_matches_ptr", "false")},
			Not: ptrp(is("ptr_generic", "true")),
		}, true},
		{"nested", policy.Match{Any: []policy.Match{{All: []policy.Match{pass, {Not: &pass}}}, {All: []policy.Match{{Not: &fail}}}}}, true},
	}
	for _, tc := range tests {
		if got := tc.m.Holds(f); got != tc.want {
			t.Errorf("%s: Holds = %v, want %v (%s)", tc.name, got, tc.want, tc.m.Describe())
		}
	}
}

// TestMatchFromConfig: the same logic written in the config language.
func TestMatchFromConfig(t *testing.T) {
	eng := judgeEngine(t, `
rules:
  - name: strict-softfail
    match:
      all:
        - spf_helo: softfail
        - not: {helo_aligned: true}
      any:
        - iprev: fail
        - ptr_generic: true
    action: reject
  - {name: rest, action: accept}
`)
	ip := netip.MustParseAddr("192.0.2.7")
	helo := policy.ParseHelo("mail.sender.example")
	for _, tc := range []struct {
		ev   func(*policy.Evidence)
		rule string
	}{
		{func(e *policy.Evidence) { e.SPFHelo, e.PTRGeneric = policy.SPFSoftFail, true }, "strict-softfail"},
		{func(e *policy.Evidence) { e.SPFHelo, e.IPRev = policy.SPFSoftFail, policy.IPRevFail }, "strict-softfail"},
		{func(e *policy.Evidence) { e.SPFHelo = policy.SPFSoftFail }, "rest"},
		{func(e *policy.Evidence) { e.SPFHelo, e.PTRGeneric, e.HeloAligned = policy.SPFSoftFail, true, true }, "rest"},
		{func(e *policy.Evidence) { e.SPFHelo, e.PTRGeneric = policy.SPFFail, true }, "rest"},
	} {
		ev := passEv(policy.HeloFQDN)
		tc.ev(&ev)
		if d := eng.Judge(ip, helo, ev); d.Rule != tc.rule {
			t.Errorf("%+v: rule %s, want %s", ev, d.Rule, tc.rule)
		}
	}
}

// TestPTRPatternsConfirmedOnly: a PTR name that does not resolve back to the
// client is the client's own say-so and must not satisfy a ptr pattern.
func TestPTRPatternsConfirmedOnly(t *testing.T) {
	eng := judgeEngine(t, "allowlist:\n  ptr: [\"*.partner.example\", \"/^mx[0-9]+\\\\.friend\\\\.example$/\"]\n")
	ip := netip.MustParseAddr("192.0.2.8")
	helo := policy.ParseHelo("whatever.example")
	for _, tc := range []struct {
		ptr, confirmed []string
		iprev          policy.IPRevResult
		allowed        bool
	}{
		{[]string{"mx1.partner.example"}, []string{"mx1.partner.example"}, policy.IPRevPass, true},
		{[]string{"mx1.partner.example"}, nil, policy.IPRevFail, false},
		{[]string{"other.example", "mx1.partner.example"}, []string{"other.example"}, policy.IPRevPass, false},
		{[]string{"other.example", "MX7.Friend.Example"}, []string{"other.example", "MX7.Friend.Example"}, policy.IPRevPass, true},
		{[]string{"mx7.friend.example.evil.example"}, []string{"mx7.friend.example.evil.example"}, policy.IPRevPass, false},
		{[]string{"partner.example"}, []string{"partner.example"}, policy.IPRevPass, false},
	} {
		ev := passEv(policy.HeloFQDN)
		ev.PTR, ev.PTRConfirmed, ev.IPRev = tc.ptr, tc.confirmed, tc.iprev
		d := eng.Judge(ip, helo, ev)
		if (d.Rule == "allowlist") != tc.allowed {
			t.Errorf("ptr %v confirmed %v: rule %s, allowlisted should be %v", tc.ptr, tc.confirmed, d.Rule, tc.allowed)
		}
	}
}

func TestHeloPatterns(t *testing.T) {
	tests := []struct {
		pattern, helo string
		want          bool
	}{
		{"*.partner.example", "mx1.partner.example", true},
		{"*.partner.example", "MX1.PARTNER.EXAMPLE", true},
		{"*.partner.example", "mx1.partner.example.", true},
		{"*.Partner.Example.", "mx1.partner.example", true},
		{"*.partner.example", "a.b.partner.example", true}, // * crosses dots
		{"*.partner.example", "partner.example", false},
		{"*.partner.example", "mx1.partner.example.evil.example", false},
		{"mx?.partner.example", "mx2.partner.example", true},
		{"mx[0-4].partner.example", "mx5.partner.example", false},
		{"/^mx[0-9]+\\.partner\\.example$/", "MX12.Partner.Example", true},
		{"/^mx[0-9]+\\.partner\\.example$/", "mx12.partner.example.", true},
		{"/^mx[0-9]+\\.partner\\.example$/", "smtp.partner.example", false},
		{"/partner/", "mx.PARTNER.example", true}, // unanchored
		{"*", "[192.0.2.1]", false},               // literals have no name
		{"*", "", false},                          // nor has an empty HELO
		{"*", "localhost", true},                  // bare names do
		{"/.*/", "", false},
	}
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tc := range tests {
		p, err := policy.ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tc.pattern, err)
		}
		ev := passEv(policy.ParseHelo(tc.helo).Form)
		m := policy.Match{Helo: []policy.Pattern{p}}
		if got := m.Holds(&policy.Facts{IP: ip, Helo: policy.ParseHelo(tc.helo), Evidence: ev}); got != tc.want {
			t.Errorf("helo %q against %q: %v, want %v", tc.helo, tc.pattern, got, tc.want)
		}
	}
	for _, bad := range []string{"/[/", "/(?P<x/", "mx[.example", "mx\\"} {
		if _, err := policy.ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q): no error", bad)
		}
	}
	// A lone slash is a glob, not an empty regular expression.
	if p, err := policy.ParsePattern("/"); err != nil || p.Match("a.example") {
		t.Errorf("ParsePattern(\"/\") = %v, %v", p, err)
	}
}

// TestReplyPlaceholders: every placeholder is filled; what the client
// controls cannot break the reply line or inject bytes.
func TestReplyPlaceholders(t *testing.T) {
	eng := judgeEngine(t, `
rules:
  - name: all-of-them
    action: reject
    reply: "550 5.7.1 ip={ip} helo={helo} ptr={ptr} rule={rule} iprev={iprev} spf={spf} twice={ip}"
`)
	ip := netip.MustParseAddr("::ffff:192.0.2.9")
	ev := passEv(policy.HeloFQDN)
	ev.PTR = []string{"unconfirmed.example", "mail.sender.example"}
	ev.SPFHelo = policy.SPFSoftFail
	d := eng.Judge(ip, policy.ParseHelo("Mail.Sender.Example"), ev)
	want := "550 5.7.1 ip=192.0.2.9 helo=Mail.Sender.Example ptr=mail.sender.example rule=all-of-them iprev=pass spf=softfail twice=192.0.2.9"
	if got := d.Reply.String(); got != want {
		t.Errorf("reply\n got %q\nwant %q", got, want)
	}

	// No confirmed name: the first PTR name; no PTR at all: (none). No HELO: (none).
	ev.PTRConfirmed, ev.IPRev = nil, policy.IPRevFail
	if got := eng.Judge(ip, policy.ParseHelo("a.example"), ev).Reply.Text; !strings.Contains(got, "ptr=unconfirmed.example ") {
		t.Errorf("unconfirmed ptr: %q", got)
	}
	ev.PTR, ev.IPRev = nil, policy.IPRevPermError
	if got := eng.Judge(ip, policy.ParseHelo(""), ev).Reply.Text; !strings.Contains(got, "helo=(none) ptr=(none) ") {
		t.Errorf("no ptr, no helo: %q", got)
	}

	// Client-controlled text is sanitized and bounded.
	for _, helo := range []string{
		"evil.example\r\n250 OK",
		"evil.example\n550 5.7.1 injected",
		"evil\x00.example\x7f\x1b[31m",
		"caf\xc3\xa9.example",
		" \t evil.example {ip} %s %% \t",
		strings.Repeat("a", 300) + ".example",
	} {
		d := eng.Judge(ip, policy.ParseHelo(helo), passEv(policy.ParseHelo(helo).Form))
		text := d.Reply.Text
		for i := 0; i < len(text); i++ {
			if text[i] < 0x20 || text[i] > 0x7e {
				t.Errorf("HELO %q: byte %#x in reply %q", helo, text[i], text)
				break
			}
		}
		h := text[strings.Index(text, "helo=")+len("helo=") : strings.Index(text, " ptr=")]
		if len(h) > 100 {
			t.Errorf("HELO %q: %d bytes of it in the reply", helo, len(h))
		}
		if strings.Contains(helo, "{ip}") && !strings.Contains(h, "{ip}") {
			t.Errorf("HELO %q: a placeholder the client sent was expanded: %q", helo, h)
		}
	}
	// A PTR name is DNS data the client's side controls, too.
	ev = passEv(policy.HeloFQDN)
	ev.PTRConfirmed = []string{"bad\r\nname.example"}
	if got := eng.Judge(ip, policy.ParseHelo("a.example"), ev).Reply.Text; strings.ContainsAny(got, "\r\n") {
		t.Errorf("ptr with CR LF: %q", got)
	}
}

// TestJudgeUnmapsIP: an IPv4-mapped IPv6 client is an IPv4 client for the
// rules and in replies.
func TestJudgeUnmapsIP(t *testing.T) {
	eng := judgeEngine(t, "rules:\n  - {name: net, match: {ip: 192.0.2.0/24}, action: reject, reply: \"550 5.7.1 {ip}\"}\n  - {name: rest, action: accept}\n")
	d := eng.Judge(netip.MustParseAddr("::ffff:192.0.2.33"), policy.ParseHelo("a.example"), passEv(policy.HeloFQDN))
	if d.Rule != "net" || d.Reply.String() != "550 5.7.1 192.0.2.33" {
		t.Errorf("got %s %q", d.Rule, d.Reply.String())
	}
}

func TestReplyString(t *testing.T) {
	for _, tc := range []struct {
		r    policy.Reply
		want string
	}{
		{policy.Reply{}, ""},
		{policy.Reply{Code: 550}, "550"},
		{policy.Reply{Code: 550, Enhanced: "5.7.1"}, "550 5.7.1"},
		{policy.Reply{Code: 451, Text: "later"}, "451 later"},
		{policy.Reply{Code: 550, Enhanced: "5.7.1", Text: "no"}, "550 5.7.1 no"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	p, _ := policy.ParsePattern("*.example")
	for _, tc := range []struct {
		m    policy.Match
		want string
	}{
		{policy.Match{}, "always (no condition)"},
		{and(is("spf_helo", "pass"), is("helo_aligned", "true")), "spf_helo in [pass] and helo_aligned = true"},
		{policy.Match{IP: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, PTR: []policy.Pattern{p}}, "ip in [192.0.2.0/24] and confirmed ptr in [*.example]"},
		{policy.Match{Not: ptrp(is("ptr_generic", "true"))}, "not (ptr_generic = true)"},
		{policy.Match{Any: []policy.Match{is("iprev", "fail"), is("helo_form", "bare")}}, "(iprev in [fail]) or (helo_form in [bare])"},
	} {
		if got := tc.m.Describe(); got != tc.want {
			t.Errorf("Describe = %q, want %q", got, tc.want)
		}
	}
}

// TestDescribeAnyWithOtherConditions: "A and (B or C)" must not read as
// "(A and B) or C".
func TestDescribeAnyWithOtherConditions(t *testing.T) {
	m := and(is("spf_helo", "softfail"), policy.Match{Any: []policy.Match{is("iprev", "fail"), is("ptr_generic", "true")}})
	got := m.Describe()
	if !strings.Contains(got, "((iprev in [fail]) or (ptr_generic = true))") {
		t.Errorf("Describe = %q", got)
	}
}

// Every placeholder of the table is filled in a reply, none left as written.
func TestEveryPlaceholderExpands(t *testing.T) {
	var tmpl []string
	for _, p := range policy.Placeholders() {
		tmpl = append(tmpl, p.Name)
	}
	cfg := "rules:\n  - name: r\n    action: reject\n    reply: \"550 5.7.1 " + strings.Join(tmpl, " ") + "\"\n"
	eng := judgeEngine(t, cfg)
	d := eng.Judge(netip.MustParseAddr("192.0.2.25"), policy.ParseHelo("mail.example"), passEv(policy.HeloFQDN))
	for _, p := range tmpl {
		if strings.Contains(d.Reply.Text, p) {
			t.Errorf("placeholder %s not filled: %q", p, d.Reply.Text)
		}
	}
}
