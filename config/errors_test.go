package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
)

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
			[]string{`unknown key "server" in dns`, "allowed: attempts, cache_size, failure_ttl, max_negative_ttl, max_ttl, min_ttl, on_broken_resolver, probes, servers, timeout"}},
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
		{"bad packet_timeout", "read_timeout: 1h\npacket_timeout: 0s\n", "2:17",
			[]string{`packet_timeout must be a positive duration such as 500ms, 5s or 1m, not "0s"`}},
		{"bad unknown_client_action", "mode: monitor\nunknown_client_action: quarantine\n", "2:24",
			[]string{`unknown_client_action must be one of accept, tempfail, reject, not "quarantine"`}},
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
			[]string{`rule name "decision-timeout" is reserved for the engine's own decisions (trusted, unknown-client, private-client, broken-resolver, decision-timeout, no-match)`}},
		{"reserved rule name unknown-client", "overrides: {}\nextra_rules:\n  - {name: unknown-client, action: accept}\n", "3:5",
			[]string{`rule name "unknown-client" is reserved`}},
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

func TestAuthservIDMustBeAToken(t *testing.T) {
	for _, bad := range []string{`"mx example"`, `"mx.example; dkim=pass"`, `"a=b"`, `""`} {
		if _, err := config.Parse("f.yaml", []byte("authserv_id: "+bad+"\n")); err == nil || !strings.Contains(err.Error(), "f.yaml:1:14: authserv_id") {
			t.Errorf("authserv_id: %s: %v", bad, err)
		}
	}
	if _, err := config.Parse("f.yaml", []byte("authserv_id: mx-1.example.net\n")); err != nil {
		t.Error(err)
	}
}
