package config_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// TestBuiltinReplies pins the action and reply code of each built-in rule to
// docs/rules.md's table of rules ("How it decides").
func TestBuiltinReplies(t *testing.T) {
	want := map[string]struct {
		action   policy.Action
		code     int
		enhanced string
	}{
		"helo-impersonates-us":  {policy.ActionReject, 550, "5.7.1"},
		"helo-syntax":           {policy.ActionReject, 550, "5.5.2"},
		"helo-literal-mismatch": {policy.ActionReject, 550, "5.7.1"},
		"reverse-dns-temperror": {policy.ActionTempfail, 451, "4.7.25"},
		"no-ptr":                {policy.ActionReject, 550, "5.7.25"},
		"ptr-not-confirmed":     {policy.ActionReject, 550, "5.7.25"},
		"generic-helo":          {policy.ActionAccept, 0, ""},
		"helo-spf-pass":         {policy.ActionAccept, 0, ""},
		"generic-ptr":           {policy.ActionReject, 550, "5.7.25"},
		"generic-ptr-temperror": {policy.ActionTempfail, 451, "4.7.24"},
		"helo-equals-ptr":       {policy.ActionAccept, 0, ""},
		"helo-a-matches":        {policy.ActionAccept, 0, ""},
		"helo-a-temperror":      {policy.ActionTempfail, 451, "4.4.3"},
		"helo-literal":          {policy.ActionAccept, 0, ""},
		"helo-spf-fail":         {policy.ActionReject, 550, "5.7.23"},
		"helo-spf-temperror":    {policy.ActionTempfail, 451, "4.7.24"},
		"default":               {policy.ActionReject, 550, "5.7.1"},
	}
	for _, r := range config.Default().Rules {
		w, ok := want[r.Name]
		if !ok {
			t.Errorf("unexpected built-in rule %q", r.Name)
			continue
		}
		if r.Action != w.action || r.Reply.Code != w.code || r.Reply.Enhanced != w.enhanced {
			t.Errorf("%s: %s %d %s, want %s %d %s", r.Name, r.Action, r.Reply.Code, r.Reply.Enhanced, w.action, w.code, w.enhanced)
		}
		if r.Monitor {
			t.Errorf("%s: monitor by default", r.Name)
		}
		if !strings.HasPrefix(r.Source, "(built-in rules):") {
			t.Errorf("%s: source %q", r.Name, r.Source)
		}
		if r.Action.Refuses() && (!strings.Contains(r.Reply.Text, "{ip}") || !strings.Contains(r.Reply.Text, "{helo}")) {
			t.Errorf("%s: reply %q must name the IP and the HELO", r.Name, r.Reply.Text)
		}
	}
}

func TestBuiltinRulesYAMLIsACopy(t *testing.T) {
	a := config.BuiltinRulesYAML()
	if !bytes.Contains(a, []byte("name: generic-helo")) {
		t.Fatalf("BuiltinRulesYAML does not hold the rules")
	}
	a[0] = 'X'
	if config.BuiltinRulesYAML()[0] == 'X' {
		t.Fatalf("BuiltinRulesYAML returns the embedded bytes themselves")
	}
}

func TestRulesAssembly(t *testing.T) {
	t.Run("allowlist first", func(t *testing.T) {
		c := mustParse(t, "f.yaml", `
extra_rules:
  - {name: mine, action: tag}
allowlist:
  ip: [192.0.2.0/24]
  ptr: ["*.partner.example"]
  helo: ["/^legacy[0-9]*\\.partner\\.example$/"]
`)
		want := append([]string{"allowlist", "mine"}, builtinOrder...)
		if got := ruleNames(c.Rules); !slices.Equal(got, want) {
			t.Fatalf("rules %v", got)
		}
		a := c.Rules[0]
		if a.Action != policy.ActionAccept || len(a.Match.Any) != 3 ||
			len(a.Match.Any[0].IP) != 1 || len(a.Match.Any[1].PTR) != 1 || len(a.Match.Any[2].Helo) != 1 {
			t.Fatalf("allowlist rule %+v", a)
		}
		if a.Source != "f.yaml:5" {
			t.Errorf("allowlist source %q", a.Source)
		}
	})
	t.Run("allowlist of one kind", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "allowlist: {ptr: mx.partner.example}\n")
		if a := c.Rules[0]; a.Name != "allowlist" || len(a.Match.Any) != 1 || len(a.Match.Any[0].PTR) != 1 {
			t.Fatalf("allowlist rule %+v", a)
		}
	})
	t.Run("empty allowlist adds no rule", func(t *testing.T) {
		for _, text := range []string{"allowlist: {}\n", "allowlist: {ip: [], ptr: []}\n"} {
			c := mustParse(t, "f.yaml", text)
			if got := ruleNames(c.Rules); !slices.Equal(got, builtinOrder) {
				t.Errorf("%q: rules %v", text, got)
			}
		}
	})
	t.Run("extra rules before the built-ins", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "extra_rules:\n  - {name: one, action: accept, match: {ip: 192.0.2.1}}\n  - {name: two, action: reject}\n")
		want := append([]string{"one", "two"}, builtinOrder...)
		if got := ruleNames(c.Rules); !slices.Equal(got, want) {
			t.Fatalf("rules %v", got)
		}
		if c.Rules[1].Reply.Code != 0 {
			t.Errorf("a rule without reply has a reply template %+v (the engine supplies the default)", c.Rules[1].Reply)
		}
	})
	t.Run("rules replaces", func(t *testing.T) {
		c, err := config.Load(filepath.Join("testdata", "replace.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleNames(c.Rules); !slices.Equal(got, []string{"no-reverse", "dns-trouble", "everything-else"}) {
			t.Fatalf("rules %v", got)
		}
	})
	t.Run("rules with allowlist and extra_rules", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "rules:\n  - {name: r, action: accept}\nextra_rules:\n  - {name: e, action: tag}\nallowlist: {ip: 10.0.0.1}\n")
		if got := ruleNames(c.Rules); !slices.Equal(got, []string{"allowlist", "e", "r"}) {
			t.Fatalf("rules %v", got)
		}
	})
	t.Run("overrides of a replacing set", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "rules:\n  - {name: r, action: reject}\noverrides:\n  r: {action: tempfail, reply: \"450 4.7.1 later\"}\n")
		if r := c.Rules[0]; r.Action != policy.ActionTempfail || r.Reply.Code != 450 || r.Source != "f.yaml:4" {
			t.Fatalf("rule %+v", r)
		}
		_, err := config.Parse("f.yaml", []byte("rules:\n  - {name: r, action: reject}\noverrides:\n  default: {monitor: true}\n"))
		if err == nil || !strings.Contains(err.Error(), `no rule named "default"; rules are: r`) {
			t.Fatalf("override of a built-in replaced away: %v", err)
		}
	})
	t.Run("override action resets the reply", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "overrides:\n  helo-spf-fail: {action: tempfail}\n  no-ptr: {action: accept}\n")
		r := findRule(t, c.Rules, "helo-spf-fail")
		if r.Action != policy.ActionTempfail || r.Reply != (policy.Reply{}) {
			t.Errorf("helo-spf-fail %+v: the 550 reply must not survive a change to tempfail", r)
		}
		if r.Source != "f.yaml:2" {
			t.Errorf("source %q: want the override's line", r.Source)
		}
		if r := findRule(t, c.Rules, "no-ptr"); r.Action != policy.ActionAccept || r.Reply != (policy.Reply{}) {
			t.Errorf("no-ptr %+v", r)
		}
		// Setting the same action keeps the reply.
		c = mustParse(t, "f.yaml", "overrides:\n  no-ptr: {action: reject}\n")
		if r := findRule(t, c.Rules, "no-ptr"); r.Reply.Enhanced != "5.7.25" {
			t.Errorf("no-ptr %+v", r)
		}
	})
	t.Run("override reply", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "overrides:\n  no-ptr: {reply: \"554 5.7.25 {ip}: set a PTR for {ip}\"}\n")
		r := findRule(t, c.Rules, "no-ptr")
		if r.Action != policy.ActionReject || r.Reply != (policy.Reply{Code: 554, Enhanced: "5.7.25", Text: "{ip}: set a PTR for {ip}"}) {
			t.Errorf("no-ptr %+v", r)
		}
	})
	t.Run("override action and reply together", func(t *testing.T) {
		// The reply is checked against the new action whatever the key order.
		for _, text := range []string{
			"overrides:\n  helo-spf-pass: {action: reject, reply: \"550 5.7.23 no\"}\n",
			"overrides:\n  helo-spf-pass: {reply: \"550 5.7.23 no\", action: reject}\n",
		} {
			c := mustParse(t, "f.yaml", text)
			if r := findRule(t, c.Rules, "helo-spf-pass"); r.Action != policy.ActionReject || r.Reply.Code != 550 {
				t.Errorf("%q: %+v", text, r)
			}
		}
	})
	t.Run("override monitor", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "overrides:\n  generic-ptr: {monitor: true}\n")
		if r := findRule(t, c.Rules, "generic-ptr"); !r.Monitor || r.Action != policy.ActionReject || r.Reply.Code != 550 {
			t.Errorf("generic-ptr %+v", r)
		}
	})
	t.Run("override disabled", func(t *testing.T) {
		c := mustParse(t, "f.yaml", "overrides:\n  generic-ptr: {disabled: true}\n  helo-syntax: {disabled: false}\n")
		var want []string
		for _, n := range builtinOrder {
			if n != "generic-ptr" {
				want = append(want, n)
			}
		}
		if got := ruleNames(c.Rules); !slices.Equal(got, want) {
			t.Errorf("rules %v", got)
		}
	})
	t.Run("overrides do not touch the defaults", func(t *testing.T) {
		mustParse(t, "f.yaml", "overrides:\n  no-ptr: {action: accept, monitor: true}\n")
		if r := findRule(t, config.Default().Rules, "no-ptr"); r.Action != policy.ActionReject || r.Monitor {
			t.Errorf("an override leaked into the built-in rules: %+v", r)
		}
	})
}

// TestMatchParsing: match keys become the policy.Match fields.
func TestMatchParsing(t *testing.T) {
	c := mustParse(t, "f.yaml", `
rules:
  - name: r
    action: accept
    match:
      ip: [192.0.2.0/24, "2001:db8::/32"]
      ptr: "*.example.com"
      helo: ["/^MX[0-9]+\\./", "mail.example.org"]
      iprev: [pass, fail]
      spf_helo: [pass, softfail, neutral]
      helo_form: fqdn
      ptr_generic: false
      helo_matches_ptr: true
      helo_a_matches_ip: false
      helo_literal_matches_ip: false
      helo_aligned: true
      helo_is_local: false
`)
	m := c.Rules[0].Match
	var conds []string
	for _, c := range m.Is {
		conds = append(conds, c.Field.Name+"="+strings.Join(c.Values, ","))
	}
	want := []string{"iprev=pass,fail", "spf_helo=pass,softfail,neutral", "helo_form=fqdn",
		"ptr_generic=false", "helo_matches_ptr=true", "helo_a_matches_ip=false", "helo_literal_matches_ip=false",
		"helo_aligned=true", "helo_is_local=false"}
	if len(m.IP) != 2 || len(m.PTR) != 1 || len(m.Helo) != 2 || !slices.Equal(conds, want) {
		t.Fatalf("match %+v: conditions %v, want %v", m, conds, want)
	}
	if !m.Helo[0].Match("mx12.example.net") || m.Helo[0].Match("smtp.mx1.example") || !m.Helo[1].Match("MAIL.example.org.") {
		t.Errorf("helo patterns do not match as written")
	}
	if !m.PTR[0].Match("a.b.example.com") || m.PTR[0].Match("example.com") {
		t.Errorf("ptr glob does not match as written")
	}
}
