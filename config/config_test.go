package config_test

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// builtinOrder is the built-in rule set in the order of the README's table of
// rules ("How it decides", rows 3 to 17; trusted and allowlist come from
// trusted_networks and allowlist).
var builtinOrder = []string{
	"helo-impersonates-us",
	"helo-syntax",
	"helo-literal-mismatch",
	"reverse-dns-temperror",
	"no-ptr",
	"ptr-not-confirmed",
	"generic-helo",
	"helo-spf-pass",
	"generic-ptr",
	"helo-equals-ptr",
	"helo-a-matches",
	"helo-literal",
	"helo-spf-fail",
	"helo-spf-temperror",
	"default",
}

func ruleNames(rules []policy.Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Name
	}
	return out
}

func findRule(t *testing.T, rules []policy.Rule, name string) policy.Rule {
	t.Helper()
	for _, r := range rules {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %q in %v", name, ruleNames(rules))
	return policy.Rule{}
}

func mustParse(t *testing.T, file, text string) *config.Config {
	t.Helper()
	c, err := config.Parse(file, []byte(text))
	if err != nil {
		t.Fatalf("Parse(%s):\n%v", file, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c, err := config.Parse("", nil)
	if err != nil {
		t.Fatalf("defaults do not parse: %v", err)
	}
	if got := ruleNames(c.Rules); !slices.Equal(got, builtinOrder) {
		t.Fatalf("built-in rules:\n got %v\nwant %v", got, builtinOrder)
	}
	host, _ := os.Hostname()
	checks := []struct {
		name      string
		got, want any
	}{
		{"File", c.File, ""},
		{"Listen", c.Listen, []string{config.DefaultListen}},
		{"SocketMode", c.SocketMode, os.FileMode(0o660)},
		{"SocketGroup", c.SocketGroup, ""},
		{"Mode", c.Mode, config.ModeEnforce},
		{"RejectAt", c.RejectAt, config.StageRcpt},
		{"ExemptRcpts", c.ExemptRcpts, []string{"postmaster", "abuse"}},
		{"AuthservID", c.AuthservID, host},
		{"DecisionTimeout", c.DecisionTimeout, 8 * time.Second},
		{"TimeoutAction", c.TimeoutAction, policy.ActionTempfail},
		{"MaxSessions", c.MaxSessions, 1000},
		{"ReadTimeout", c.ReadTimeout, 2 * time.Hour},
		{"LogFile", c.LogFile, "stderr"},
		{"DrainTimeout", c.DrainTimeout, 30 * time.Second},
		{"LocalAddresses", len(c.LocalAddresses), 0},
		{"TrustedNetworks", c.TrustedNetworks, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		{"GenericTokens", c.GenericTokens, policy.DefaultGenericTokens()},
		{"DNS.Servers", len(c.DNS.Servers), 0},
		{"DNS.Timeout", c.DNS.Timeout, 2 * time.Second},
		{"DNS.CacheSize", c.DNS.CacheSize, 100000},
	}
	if host != "" {
		checks = append(checks, struct {
			name      string
			got, want any
		}{"LocalNames", c.LocalNames, []string{host}})
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	if d := config.Default(); !slices.Equal(ruleNames(d.Rules), builtinOrder) {
		t.Errorf("Default() rules %v", ruleNames(d.Rules))
	}
	if c2, err := config.Load(""); err != nil || !slices.Equal(ruleNames(c2.Rules), builtinOrder) {
		t.Errorf("Load(\"\") = %v, %v", c2, err)
	}
}

// TestBuiltinReplies pins the action and reply code of each built-in rule to
// the README's table of rules ("How it decides").
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
		"helo-equals-ptr":       {policy.ActionAccept, 0, ""},
		"helo-a-matches":        {policy.ActionAccept, 0, ""},
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

func TestEmptyDocuments(t *testing.T) {
	for _, text := range []string{"", "\n", "# nothing but a comment\n", "---\n", "~\n", "null\n"} {
		c, err := config.Parse("empty.yaml", []byte(text))
		if err != nil {
			t.Errorf("Parse(%q): %v", text, err)
			continue
		}
		if c.File != "empty.yaml" || !slices.Equal(ruleNames(c.Rules), builtinOrder) || c.Listen[0] != config.DefaultListen {
			t.Errorf("Parse(%q) = file %q rules %v listen %v", text, c.File, ruleNames(c.Rules), c.Listen)
		}
	}
}

func TestEveryKey(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"File", c.File, filepath.Join("testdata", "full.yaml")},
		{"Listen", c.Listen, []string{"unix:/run/heloguard/heloguard.sock", "inet:127.0.0.1:8895", "inet:[::1]:8896"}},
		{"SocketMode", c.SocketMode, os.FileMode(0o600)},
		{"SocketGroup", c.SocketGroup, "postfix"},
		{"Mode", c.Mode, config.ModeMonitor},
		{"RejectAt", c.RejectAt, config.StageHelo},
		{"ExemptRcpts", c.ExemptRcpts, []string{"postmaster", "abuse", "hostmaster"}},
		{"AuthservID", c.AuthservID, "mx.receiver.example"},
		{"DecisionTimeout", c.DecisionTimeout, 5 * time.Second},
		{"TimeoutAction", c.TimeoutAction, policy.ActionAccept},
		{"MaxSessions", c.MaxSessions, 250},
		{"ReadTimeout", c.ReadTimeout, 2 * time.Minute},
		{"DrainTimeout", c.DrainTimeout, 10 * time.Second},
		{"LogFile", c.LogFile, "/var/log/heloguard/decisions.log"},
		{"LocalNames", c.LocalNames, []string{"mx.receiver.example", "MX2.Receiver.Example."}},
		{"LocalAddresses", c.LocalAddresses, []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("192.0.2.11")}},
		{"TrustedNetworks", c.TrustedNetworks, []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")}},
		{"GenericTokens", c.GenericTokens, []string{"dyn", "pool", "customer"}},
		{"DNS.Servers", c.DNS.Servers, []string{"127.0.0.1:5353", "[::1]:53"}},
		{"DNS.Timeout", c.DNS.Timeout, 1500 * time.Millisecond},
		{"DNS.Attempts", c.DNS.Attempts, 3},
		{"DNS.CacheSize", c.DNS.CacheSize, 5000},
		{"DNS.MinTTL", c.DNS.MinTTL, 10 * time.Second},
		{"DNS.MaxTTL", c.DNS.MaxTTL, 30 * time.Minute},
		{"DNS.MaxNegativeTTL", c.DNS.MaxNegativeTTL, 5 * time.Minute},
		{"DNS.FailureTTL", c.DNS.FailureTTL, 2 * time.Second},
		{"EvidenceCacheSize", c.EvidenceCacheSize, 2500},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}

	// Rules: allowlist, extra_rules, then the built-ins with overrides
	// (helo-spf-temperror disabled).
	var want []string
	want = append(want, "allowlist", "block-bad-net", "tag-softfail")
	for _, n := range builtinOrder {
		if n != "helo-spf-temperror" {
			want = append(want, n)
		}
	}
	if got := ruleNames(c.Rules); !slices.Equal(got, want) {
		t.Fatalf("rules:\n got %v\nwant %v", got, want)
	}
	allow := c.Rules[0]
	if allow.Action != policy.ActionAccept || len(allow.Match.Any) != 3 {
		t.Errorf("allowlist rule = %+v", allow)
	}
	if !strings.HasPrefix(allow.Source, filepath.Join("testdata", "full.yaml")+":") {
		t.Errorf("allowlist source %q", allow.Source)
	}
	block := findRule(t, c.Rules, "block-bad-net")
	if block.Reply != (policy.Reply{Code: 554, Enhanced: "5.7.1", Text: "{ip} is blocked"}) {
		t.Errorf("block-bad-net reply %+v", block.Reply)
	}
	if got := block.Source; got != filepath.Join("testdata", "full.yaml")+":36" {
		t.Errorf("block-bad-net source %q", got)
	}
	tag := findRule(t, c.Rules, "tag-softfail")
	if tag.Action != policy.ActionTag || !tag.Monitor || len(tag.Match.All) != 2 || len(tag.Match.Any) != 2 || tag.Match.All[1].Not == nil {
		t.Errorf("tag-softfail = %+v", tag)
	}
	if r := findRule(t, c.Rules, "generic-ptr"); !r.Monitor || r.Action != policy.ActionReject || r.Reply.Enhanced != "5.7.25" {
		t.Errorf("generic-ptr after monitor override = %+v", r)
	}
	if r := findRule(t, c.Rules, "helo-spf-pass"); r.Action != policy.ActionReject || r.Reply != (policy.Reply{Code: 550, Enhanced: "5.7.1", Text: "HELO {helo} is not aligned with PTR {ptr}"}) {
		t.Errorf("helo-spf-pass after action override = %+v", r)
	}
	if r := findRule(t, c.Rules, "default"); r.Action != policy.ActionReject || r.Reply.Text != "go away {ip}" {
		t.Errorf("default after reply override = %+v", r)
	}

	// The options handed to the engine carry the same values, LocalNames as
	// a copy (policy.New normalizes them in place).
	opt := c.PolicyOptions(nil)
	opt.LocalNames[0] = "changed"
	if c.LocalNames[0] != "mx.receiver.example" {
		t.Errorf("PolicyOptions shares LocalNames with the config")
	}
	if opt.TimeoutAction != policy.ActionAccept || len(opt.Rules) != len(c.Rules) || !reflect.DeepEqual(opt.TrustedNetworks, c.TrustedNetworks) {
		t.Errorf("PolicyOptions = %+v", opt)
	}
}

func TestScalarForms(t *testing.T) {
	// One value where a list is allowed; YAML 1.1 booleans; octal modes.
	c := mustParse(t, "f.yaml", `
listen: "inet:127.0.0.1:1"
local_names: mx.example
trusted_networks: 192.0.2.1
socket_mode: 0640
extra_rules:
  - {name: a, match: {iprev: pass, helo: "*.example"}, action: accept, monitor: yes}
  - {name: b, action: tag, monitor: off}
`)
	if !slices.Equal(c.Listen, []string{"inet:127.0.0.1:1"}) || !slices.Equal(c.LocalNames, []string{"mx.example"}) ||
		!reflect.DeepEqual(c.TrustedNetworks, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}) || c.SocketMode != 0o640 {
		t.Errorf("got listen %v local_names %v trusted %v mode %o", c.Listen, c.LocalNames, c.TrustedNetworks, c.SocketMode)
	}
	if !c.Rules[0].Monitor || c.Rules[1].Monitor {
		t.Errorf("monitor yes/off: %v %v", c.Rules[0].Monitor, c.Rules[1].Monitor)
	}
	if c := mustParse(t, "f.yaml", "socket_mode: 0o640\n"); c.SocketMode != 0o640 {
		t.Errorf("socket_mode 0o640 (YAML 1.2 octal) = %o", c.SocketMode)
	}
	// A prefix with host bits set is masked; ::ffff:a.b.c.d/N is IPv4.
	c = mustParse(t, "f.yaml", "trusted_networks: [192.0.2.77/24, \"::ffff:198.51.100.0/120\"]\n")
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}
	if !reflect.DeepEqual(c.TrustedNetworks, want) {
		t.Errorf("trusted_networks = %v, want %v", c.TrustedNetworks, want)
	}
	// An empty list of trusted networks is allowed: nothing is trusted.
	if c := mustParse(t, "f.yaml", "trusted_networks: []\n"); len(c.TrustedNetworks) != 0 {
		t.Errorf("trusted_networks: [] = %v", c.TrustedNetworks)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load of a missing file: %v", err)
	}
	_, err = config.Load(t.TempDir())
	if err == nil {
		t.Fatalf("Load of a directory: no error")
	}
}

func TestTestdataParses(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		_, err := config.Load(f)
		bad := strings.Contains(filepath.Base(f), "error")
		if bad != (err != nil) {
			t.Errorf("%s: err = %v", f, err)
		}
	}
}

// TestErrors: every error names file:line:column and says what is allowed.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		pos  string   // "line:col" of the (first) error
		want []string // substrings of the message
	}{
		{"unknown top-level key", "listen: inet:127.0.0.1:1\nlisten_on: x\n", "2:1",
			[]string{`unknown key "listen_on" in the config`, "allowed:", "decision_timeout", "trusted_networks"}},
		{"unknown key in dns", "dns:\n  server: [127.0.0.1:53]\n", "2:3",
			[]string{`unknown key "server" in dns`, "allowed: attempts, cache_size, failure_ttl, max_negative_ttl, max_ttl, min_ttl, servers, timeout"}},
		{"unknown key in a rule", "extra_rules:\n  - name: x\n    action: accept\n    when: {iprev: pass}\n", "4:5",
			[]string{`unknown key "when" in a rule in extra_rules`, "allowed: action, match, monitor, name, reply"}},
		{"unknown key in match", "extra_rules:\n  - name: x\n    match: {iprev: pass, spf: pass}\n    action: accept\n", "3:26",
			[]string{`unknown key "spf" in match`, "spf_helo", "helo_aligned", "all", "any", "not"}},
		{"unknown key in allowlist", "allowlist:\n  cidr: [192.0.2.0/24]\n", "2:3",
			[]string{`unknown key "cidr" in allowlist`, "allowed: helo, ip, ptr"}},
		{"unknown key in override", "overrides:\n  generic-ptr: {monitor: true, enabled: false}\n", "2:32",
			[]string{`unknown key "enabled" in overrides.generic-ptr`, "allowed: action, disabled, monitor, reply"}},
		{"bad CIDR", "trusted_networks: [10.0.0.0/8, 10.0.0.0/33]\n", "1:32",
			[]string{`trusted_networks: "10.0.0.0/33" is not an IP address or CIDR network`, "192.0.2.0/24"}},
		{"bad CIDR in match", "extra_rules:\n  - {name: x, match: {ip: 192.0.2.300}, action: accept}\n", "2:27",
			[]string{`ip: "192.0.2.300" is not an IP address or CIDR`}},
		{"bad CIDR in allowlist", "allowlist:\n  ip: [mail.example]\n", "2:8",
			[]string{`allowlist.ip: "mail.example" is not an IP address or CIDR`}},
		{"bad regex", "extra_rules:\n  - name: x\n    match: {helo: \"/[/\"}\n    action: reject\n", "3:19",
			[]string{`helo: bad pattern "/[/"`, "missing closing ]", "glob such as *.example.com", "between slashes"}},
		{"bad regex in allowlist", "allowlist: {ptr: ['/(/']}\n", "1:19",
			[]string{`allowlist.ptr: bad pattern "/(/"`}},
		{"bad glob", "extra_rules:\n  - name: x\n    match: {ptr: \"mx[.example.com\"}\n    action: accept\n", "3:18",
			[]string{`ptr: bad pattern "mx[.example.com"`, "syntax error in pattern"}},
		{"bad action", "extra_rules:\n  - name: x\n    action: drop\n", "3:13",
			[]string{`action must be one of accept, reject, tempfail, quarantine, tag, not "drop"`}},
		{"missing action", "extra_rules:\n  - name: x\n    match: {iprev: pass}\n", "2:5",
			[]string{`rule "x" needs an action: one of accept, reject, tempfail, quarantine, tag`}},
		{"missing name", "extra_rules:\n  - action: accept\n", "2:5",
			[]string{"a rule in extra_rules needs a name"}},
		{"bad timeout_action", "timeout_action: defer\n", "1:17",
			[]string{`timeout_action must be one of accept, reject, tempfail, quarantine, tag, not "defer"`}},
		{"reply code not 4xx/5xx", "extra_rules:\n  - {name: x, action: reject, reply: \"250 2.0.0 ok\"}\n", "2:38",
			[]string{`reply must start with a 4xx or 5xx SMTP code, as in "550 5.7.1 text", not "250 2.0.0 ok"`}},
		{"reply code not a number", "extra_rules:\n  - {name: x, action: reject, reply: \"five hundred\"}\n", "2:38",
			[]string{"reply must start with a 4xx or 5xx SMTP code"}},
		{"reply code four digits", "extra_rules:\n  - {name: x, action: reject, reply: \"5500 no\"}\n", "2:38",
			[]string{"reply must start with a 4xx or 5xx SMTP code"}},
		{"enhanced class mismatch", "extra_rules:\n  - {name: x, action: reject, reply: \"550 4.7.1 no\"}\n", "2:38",
			[]string{"enhanced status code 4.7.1 must start with 5 to match reply code 550"}},
		{"reply without text", "extra_rules:\n  - {name: x, action: reject, reply: \"550 5.7.1\"}\n", "2:38",
			[]string{"needs a text after the code"}},
		{"bare reply code", "extra_rules:\n  - {name: x, action: reject, reply: \"550\"}\n", "2:38",
			[]string{"needs a text after the code"}},
		{"reject with 4xx", "extra_rules:\n  - {name: x, action: reject, reply: \"451 4.7.1 later\"}\n", "2:38",
			[]string{"a reject reply needs a 5xx code, not 451"}},
		{"tempfail with 5xx", "extra_rules:\n  - {name: x, action: tempfail, reply: \"550 5.7.1 no\"}\n", "2:40",
			[]string{"a tempfail reply needs a 4xx code, not 550"}},
		{"reply on accept", "extra_rules:\n  - {name: x, action: accept, reply: \"550 5.7.1 no\"}\n", "2:38",
			[]string{"action accept sends no reply; remove reply or use reject or tempfail"}},
		{"reply on tag", "extra_rules:\n  - {name: x, action: tag, reply: \"550 5.7.1 no\"}\n", "2:35",
			[]string{"action tag sends no reply"}},
		{"unknown placeholder", "extra_rules:\n  - {name: x, action: reject, reply: \"550 5.7.1 {client} said {helo}\"}\n", "2:38",
			[]string{"unknown placeholder {client} in reply; allowed: {ip} {helo} {ptr} {rule} {iprev} {spf}"}},
		{"multi-line reply", "extra_rules:\n  - name: x\n    action: reject\n    reply: \"550 5.7.1 one\\r\\n550 two\"\n", "4:12",
			[]string{"reply must be one line"}},
		{"duplicate key", "mode: enforce\nreject_at: rcpt\nmode: monitor\n", "3:1",
			[]string{`key "mode" given twice in the config`}},
		{"duplicate key in a rule", "extra_rules:\n  - name: x\n    action: accept\n    action: reject\n", "4:5",
			[]string{`key "action" given twice in a rule in extra_rules`}},
		{"duplicate key in overrides", "overrides:\n  generic-ptr: {monitor: true}\n  generic-ptr: {disabled: true}\n", "3:3",
			[]string{`generic-ptr`, "given twice in overrides"}},
		{"duplicate rule names", "extra_rules:\n  - {name: x, action: accept}\n  - {name: x, action: tag}\n", "3:5",
			[]string{`rule name "x" is used twice`, "must be unique"}},
		{"extra rule named as a built-in", "extra_rules:\n  - {name: default, action: accept}\n", "2:5",
			[]string{`rule name "default" is used twice`}},
		{"duplicate names in rules", "rules:\n  - {name: a, action: accept}\n  - {name: b, action: accept}\n  - {name: a, action: reject}\n", "4:5",
			[]string{`rule name "a" is used twice`}},
		{"reserved rule name", "extra_rules:\n  - {name: decision-timeout, action: tempfail}\n", "2:5",
			[]string{`rule name "decision-timeout" is reserved for the engine's own decisions (trusted, decision-timeout, no-match)`}},
		{"reserved rule name in rules", "rules:\n  - {name: a, action: reject}\n  - {name: no-match, action: accept}\n", "3:5",
			[]string{`rule name "no-match" is reserved`}},
		{"override of an unknown rule", "overrides:\n  generic_ptr: {monitor: true}\n", "2:3",
			[]string{`overrides: no rule named "generic_ptr"; rules are: helo-impersonates-us, helo-syntax,`, "generic-ptr", "default"}},
		{"override not a mapping", "overrides: [generic-ptr]\n", "1:12",
			[]string{"overrides must map rule names to changes"}},
		{"override reply unsuited", "overrides:\n  no-ptr: {reply: \"451 4.7.25 later\"}\n", "2:19",
			[]string{"a reject reply needs a 5xx code, not 451"}},
		{"override to accept keeps no reply", "overrides:\n  no-ptr: {action: accept, reply: \"550 5.7.1 no\"}\n", "2:35",
			[]string{"action accept sends no reply"}},
		{"bad duration", "read_timeout: 5\n", "1:15",
			[]string{`read_timeout must be a positive duration such as 500ms, 5s or 1m, not "5"`}},
		{"negative duration", "dns:\n  timeout: -1s\n", "2:12",
			[]string{`dns.timeout must be a positive duration`}},
		{"decision_timeout 30s", "decision_timeout: 30s\n", "1:19",
			[]string{"decision_timeout must be below Postfix's milter_command_timeout of 30s"}},
		{"decision_timeout 1m", "decision_timeout: 1m\n", "1:19",
			[]string{"decision_timeout must be below"}},
		{"bad listen scheme", "listen: [tcp:127.0.0.1:8894]\n", "1:10",
			[]string{`listen: "tcp:127.0.0.1:8894": expected unix:/path/to.sock or inet:IP:PORT`}},
		{"bad listen host", "listen: inet:localhost:8894\n", "1:9",
			[]string{`expected inet:IP:PORT such as inet:127.0.0.1:8894`}},
		{"listen without port", "listen: inet:127.0.0.1\n", "1:9",
			[]string{`expected inet:IP:PORT`}},
		{"listen empty", "listen: []\n", "1:9",
			[]string{"listen needs at least one address"}},
		{"bad dns.servers", "dns:\n  servers: [127.0.0.1]\n", "2:13",
			[]string{`dns.servers: "127.0.0.1" is not IP:PORT such as 127.0.0.1:53 or [::1]:53`}},
		{"dns.servers by name", "dns:\n  servers: [\"dns.example:53\"]\n", "2:13",
			[]string{`dns.servers: "dns.example:53" is not IP:PORT`}},
		{"bad mode", "mode: dry-run\n", "1:7",
			[]string{`mode must be one of enforce, monitor, not "dry-run"`}},
		{"bad reject_at", "reject_at: data\n", "1:12",
			[]string{`reject_at must be one of connect, helo, mail, rcpt, not "data"`}},
		{"bad socket_mode", "socket_mode: \"0999\"\n", "1:14",
			[]string{`socket_mode must be an octal mode such as "0660"`}},
		{"socket_mode too big", "socket_mode: \"07777\"\n", "1:14",
			[]string{`socket_mode must be an octal mode`}},
		{"bad max_sessions", "max_sessions: 0\n", "1:15",
			[]string{`max_sessions must be a whole number ≥ 1, not "0"`}},
		{"bad dns.attempts", "dns: {attempts: two}\n", "1:17",
			[]string{`dns.attempts must be a whole number ≥ 1, not "two"`}},
		{"bad local_addresses", "local_addresses: [mx.example]\n", "1:19",
			[]string{`local_addresses: "mx.example" is not an IP address`}},
		{"bad boolean", "extra_rules:\n  - {name: x, action: accept, monitor: maybe}\n", "2:40",
			[]string{`monitor must be true or false, not "maybe"`}},
		{"bad boolean in match", "extra_rules:\n  - {name: x, match: {ptr_generic: 1}, action: accept}\n", "2:36",
			[]string{`ptr_generic must be true or false, not "1"`}},
		{"bad enum in match", "extra_rules:\n  - {name: x, match: {iprev: [pass, ok]}, action: accept}\n", "2:37",
			[]string{`iprev must be one of pass, fail, permerror, temperror, not "ok"`}},
		{"bad spf_helo", "extra_rules:\n  - {name: x, match: {spf_helo: hardfail}, action: accept}\n", "2:33",
			[]string{`spf_helo must be one of pass, fail, softfail, neutral, none, permerror, temperror, not "hardfail"`}},
		{"bad helo_form", "extra_rules:\n  - {name: x, match: {helo_form: ip}, action: accept}\n", "2:34",
			[]string{`helo_form must be one of fqdn, address-literal, bare, invalid, empty, not "ip"`}},
		{"all not a list", "extra_rules:\n  - {name: x, match: {all: {iprev: pass}}, action: accept}\n", "2:28",
			[]string{"all must be a list of match conditions"}},
		{"nested bad key", "extra_rules:\n  - name: x\n    match:\n      any:\n        - not: {ipref: pass}\n    action: accept\n", "5:17",
			[]string{`unknown key "ipref" in match`}},
		{"rules not a list", "rules: {name: x}\n", "1:8",
			[]string{"rules must be a list of rules"}},
		{"rule not a mapping", "extra_rules: [x]\n", "1:15",
			[]string{"a rule in extra_rules must be a mapping"}},
		{"list of lists", "local_names: [[a, b]]\n", "1:15",
			[]string{"local_names: each entry must be a single value"}},
		{"mapping for a value", "mode: {a: b}\n", "1:7",
			[]string{"mode must be a single value"}},
		{"top level not a mapping", "- listen\n", "1:1",
			[]string{"the config must be a mapping"}},
		{"YAML syntax error", "mode: enforce\nlisten: [inet:127.0.0.1:1\nreject_at: rcpt\n", "",
			[]string{"YAML syntax"}},
		{"YAML tab indentation", "dns:\n\tservers: [127.0.0.1:53]\n", "2:",
			[]string{"YAML syntax"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("bad.yaml", []byte(tc.text))
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.text)
			}
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not config.Errors", err, err)
			}
			first := es[0].Error()
			if !strings.HasPrefix(first, "bad.yaml:"+tc.pos) {
				t.Errorf("error %q does not start with bad.yaml:%s", first, tc.pos)
			}
			if es[0].Line == 0 {
				t.Errorf("error %q has no line", first)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestYAMLSyntaxLine(t *testing.T) {
	_, err := config.Parse("bad.yaml", []byte("mode: enforce\nreject_at: rcpt\nlisten: [inet:127.0.0.1:1\n\nlog: stderr\n"))
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("err = %v", err)
	}
	// yaml.v3 reports the line where it noticed the problem; it must be
	// within the file and not zero.
	if es[0].Line < 3 || es[0].Line > 6 {
		t.Errorf("YAML syntax error at line %d: %v", es[0].Line, es[0])
	}
}

// TestYAMLSyntaxPositions: yaml.v3 counts the lines of its parser errors from
// 0 and gives no line for reader errors; the operator must still be sent to
// the right line.
func TestYAMLSyntaxPositions(t *testing.T) {
	tests := []struct {
		text string
		pos  string
		want string
	}{
		{"mode: enforce\nlisten: [inet:127.0.0.1:1\nreject_at: rcpt\n", "2:1", "did not find expected ',' or ']'"},
		{"\n\n\nlisten: [1, 2\nmode: x\n", "4:1", "did not find expected ',' or ']'"},
		{"dns: {timeout: 1s\n", "2:1", "did not find expected ',' or '}'"},
		{"mode: enforce\n- listen\n", "2:1", "did not find expected key"},
		{"dns:\n  - a\n b: c\n", "3:1", "did not find expected key"},
		{"mode: enforce\nlisten: a: b\n", "2:1", "mapping values are not allowed in this context"},
		{"mode: enforce\nlisten\n", "2:1", "could not find expected ':'"},
		{"mode: enforce\nlog: @x\n", "2:1", "found character that cannot start any token"},
		{"mode: enforce\nlog: a\x01b\n", "2:7", "control characters are not allowed"},
		{"mode: enforce\n\nlog: caf\xc3\xa9\xff\n", "3:10", "invalid leading UTF-8 octet"},
		{"mode: enforce\nlog: *nope\n", "2:6", "unknown anchor 'nope' referenced"},
	}
	for _, tc := range tests {
		_, err := config.Parse("bad.yaml", []byte(tc.text))
		var es config.Errors
		if !errors.As(err, &es) || len(es) != 1 {
			t.Errorf("%q: err = %v", tc.text, err)
			continue
		}
		if got := es[0].Error(); !strings.HasPrefix(got, "bad.yaml:"+tc.pos+": YAML syntax: ") || !strings.Contains(got, tc.want) {
			t.Errorf("%q: %s\n want bad.yaml:%s: YAML syntax: ...%s", tc.text, got, tc.pos, tc.want)
		}
	}
}

func TestOneDocument(t *testing.T) {
	_, err := config.Parse("f.yaml", []byte("mode: enforce\n---\nmode: monitor\n"))
	if err == nil || !strings.Contains(err.Error(), "f.yaml:2:1: the config must be one YAML document") {
		t.Errorf("a second document: %v", err)
	}
	// Document markers around a single document are fine.
	for _, text := range []string{"---\nmode: monitor\n", "---\nmode: monitor\n...\n", "mode: monitor\n---\n"} {
		if c, err := config.Parse("f.yaml", []byte(text)); err != nil || c.Mode != config.ModeMonitor {
			t.Errorf("%q: %v", text, err)
		}
	}
}

func TestDuplicateRuleNamesSayWhere(t *testing.T) {
	_, err := config.Parse("f.yaml", []byte("extra_rules:\n  - {name: x, action: accept}\n  - {name: x, action: tag}\n"))
	if err == nil || !strings.Contains(err.Error(), `f.yaml:3:5: rule name "x" is used twice (also at f.yaml:2)`) {
		t.Errorf("err = %v", err)
	}
	_, err = config.Parse("f.yaml", []byte("extra_rules:\n  - {name: no-ptr, action: accept}\n"))
	if err == nil || !strings.Contains(err.Error(), `f.yaml:2:5: rule name "no-ptr" is used twice (also at (built-in rules):`) {
		t.Errorf("err = %v", err)
	}
	// A disabled built-in still owns its name.
	_, err = config.Parse("f.yaml", []byte("overrides: {no-ptr: {disabled: true}}\nextra_rules:\n  - {name: no-ptr, action: accept}\n"))
	if err == nil || !strings.Contains(err.Error(), `f.yaml:3:5: rule name "no-ptr" is used twice`) {
		t.Errorf("err = %v", err)
	}
}

func TestBadActionReportedOnce(t *testing.T) {
	_, err := config.Parse("f.yaml", []byte("extra_rules:\n  - {name: x, action: drop}\n"))
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Msg, `not "drop"`) {
		t.Errorf("err = %v", err)
	}
}

func TestManyErrorsInOnePass(t *testing.T) {
	path := filepath.Join("testdata", "many-errors.yaml")
	_, err := config.Load(path)
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		path + `:2:10: listen: "tcp:127.0.0.1:8894"`,
		path + `:3:7: mode must be one of`,
		path + `:4:19: decision_timeout must be below`,
		path + `:6:13: dns.servers: "localhost"`,
		path + `:7:3: unknown key "retries" in dns`,
		path + `:8:20: trusted_networks: "10.0.0.0/33"`,
		path + `:11:19: helo: bad pattern "/[/"`,
		path + `:14:13: action must be one of`,
		path + `:16:3: overrides: no rule named "no-such-rule"`,
	}
	if len(es) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(es), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	// The text form has one error per line, each with its position.
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, path+":") {
			t.Errorf("line %q has no position", line)
		}
	}
}

// TestErrorsAcrossSections: an error in one part does not hide one in another,
// including the rule assembly that runs after the rest.
func TestErrorsAcrossSections(t *testing.T) {
	_, err := config.Parse("f.yaml", []byte("mode: x\nlisten: []\nextra_rules:\n  - {name: default, action: accept}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"f.yaml:1:7: mode", "f.yaml:2:9: listen needs at least one address", `f.yaml:4:5: rule name "default" is used twice`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &config.Error{File: "f.yaml", Line: 3, Column: 7, Msg: "bad"}
	if e.Error() != "f.yaml:3:7: bad" {
		t.Errorf("%q", e.Error())
	}
	e = &config.Error{File: "f.yaml", Msg: "bad"}
	if e.Error() != "f.yaml: bad" {
		t.Errorf("%q", e.Error())
	}
	es := config.Errors{{File: "a", Line: 1, Column: 2, Msg: "x"}, {File: "a", Line: 3, Column: 4, Msg: "y"}}
	if es.Error() != "a:1:2: x\na:3:4: y" {
		t.Errorf("%q", es.Error())
	}
}

func TestSplitListen(t *testing.T) {
	tests := []struct {
		in, network, addr string
		ok                bool
	}{
		{"unix:/run/h.sock", "unix", "/run/h.sock", true},
		{"local:/run/h.sock", "unix", "/run/h.sock", true},
		{"inet:127.0.0.1:8894", "tcp", "127.0.0.1:8894", true},
		{"inet:[::1]:8894", "tcp", "[::1]:8894", true},
		{"inet:localhost:8894", "", "", false},
		{"inet:127.0.0.1", "", "", false},
		{"unix:", "", "", false},
		{"inet:", "", "", false},
		{"/run/h.sock", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		n, a, err := config.SplitListen(tc.in)
		if (err == nil) != tc.ok || n != tc.network || a != tc.addr {
			t.Errorf("SplitListen(%q) = %q, %q, %v", tc.in, n, a, err)
		}
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
	f, tr := false, true
	if len(m.IP) != 2 || len(m.PTR) != 1 || len(m.Helo) != 2 ||
		!slices.Equal(m.IPRev, []policy.IPRevResult{policy.IPRevPass, policy.IPRevFail}) ||
		!slices.Equal(m.SPFHelo, []policy.SPFResult{policy.SPFPass, policy.SPFSoftFail, policy.SPFNeutral}) ||
		!slices.Equal(m.HeloForm, []policy.HeloForm{policy.HeloFQDN}) ||
		!reflect.DeepEqual(m.PTRGeneric, &f) || !reflect.DeepEqual(m.HeloMatchesPTR, &tr) ||
		!reflect.DeepEqual(m.HeloAMatchesIP, &f) || !reflect.DeepEqual(m.HeloLiteralMatchesIP, &f) ||
		!reflect.DeepEqual(m.HeloAligned, &tr) || !reflect.DeepEqual(m.HeloIsLocal, &f) {
		t.Fatalf("match %+v", m)
	}
	if !m.Helo[0].Match("mx12.example.net") || m.Helo[0].Match("smtp.mx1.example") || !m.Helo[1].Match("MAIL.example.org.") {
		t.Errorf("helo patterns do not match as written")
	}
	if !m.PTR[0].Match("a.b.example.com") || m.PTR[0].Match("example.com") {
		t.Errorf("ptr glob does not match as written")
	}
}
