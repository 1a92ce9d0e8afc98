package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// The operator's commands, run in-process through run() against a DNS world on
// loopback.

var world = []string{
	"25.2.0.192.in-addr.arpa. 300 IN PTR mail.one-to-one.example.",
	"mail.one-to-one.example. 300 IN A 192.0.2.25",
	"mail.one-to-one.example. 300 IN AAAA 2001:db8::25",
	`mail.one-to-one.example. 300 IN TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"`,
	"5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR mail.one-to-one.example.",
	"66.2.0.192.in-addr.arpa. 300 IN PTR vps66.cheap-hosting.example.",
	"vps66.cheap-hosting.example. 300 IN A 192.0.2.66",
	`one-to-one.example. 300 IN TXT "v=spf1 include:mail.one-to-one.example ~all"`,
}

// env is a DNS server and a config file that points at it.
type env struct {
	srv *dnsworld.Server
	dir string
	cfg string
}

func newEnv(t *testing.T, extraConfig string) *env {
	t.Helper()
	z := dnsworld.NewZone()
	for _, r := range world {
		if err := z.AddRR(r); err != nil {
			t.Fatalf("AddRR(%q): %v", r, err)
		}
	}
	// DNS trouble: the PTR of 192.0.2.77, the SPF record of broken-spf.example.
	z.AddFault("77.2.0.192.in-addr.arpa.", dns.TypePTR, dnsworld.FaultServfail)
	z.AddFault("broken-spf.example.", dns.TypeTXT, dnsworld.FaultServfail)
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{srv: srv, dir: t.TempDir()}
	e.cfg = e.write(t, "heloguard.yaml", fmt.Sprintf("dns:\n  servers: [%q]\n  timeout: 1s\nlocal_names: [mx.receiver.example]\n%s", srv.Addr, extraConfig))
	return e
}

func (e *env) write(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// oneJSON decodes exactly one JSON object from s.
func oneJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("more than one JSON value in:\n%s", s)
	}
	return m
}

func TestCheckJSON(t *testing.T) {
	e := newEnv(t, "")
	tests := []struct {
		name   string
		args   []string
		action string
		rule   string
		reply  string // prefix
		ev     map[string]any
	}{
		{"accept", []string{"check", "--config", e.cfg, "--json", "192.0.2.25", "mail.one-to-one.example"}, "accept", "generic-helo", "",
			map[string]any{"iprev": "pass", "ptr": []any{"mail.one-to-one.example"}, "ptr_confirmed": []any{"mail.one-to-one.example"},
				"helo_form": "fqdn", "helo_matches_ptr": true, "helo_a_matches_ip": true, "helo_aligned": true, "spf_helo": "pass", "helo_is_local": false}},
		{"reject", []string{"check", "--config", e.cfg, "--json", "192.0.2.66", "mail.one-to-one.example"}, "reject", "helo-spf-fail", "550 5.7.23 ",
			map[string]any{"iprev": "pass", "spf_helo": "fail", "helo_matches_ptr": false, "helo_a_matches_ip": false}},
		{"no PTR", []string{"check", "--config", e.cfg, "--json", "192.0.2.99", "mail.one-to-one.example"}, "reject", "no-ptr", "550 5.7.25 ",
			map[string]any{"iprev": "permerror", "ptr": []any{}, "ptr_confirmed": []any{}}},
		{"empty HELO", []string{"check", "--config", e.cfg, "--json", "192.0.2.25", ""}, "reject", "helo-syntax", "550 5.5.2 ",
			map[string]any{"helo_form": "empty", "spf_helo": "none", "iprev": "pass"}},
		{"IPv6", []string{"check", "--config", e.cfg, "--json", "2001:db8::25", "mail.one-to-one.example"}, "accept", "generic-helo", "",
			map[string]any{"iprev": "pass", "helo_a_matches_ip": true}},
		{"IPv4-mapped", []string{"check", "--config", e.cfg, "--json", "::ffff:192.0.2.25", "mail.one-to-one.example"}, "accept", "generic-helo", "",
			map[string]any{"iprev": "pass"}},
		{"literal", []string{"check", "--config", e.cfg, "--json", "192.0.2.25", "[192.0.2.25]"}, "accept", "helo-literal", "",
			map[string]any{"helo_form": "address-literal", "helo_literal_matches_ip": true}},
		{"local", []string{"check", "--config", e.cfg, "--json", "192.0.2.25", "MX.receiver.example"}, "reject", "helo-impersonates-us", "550 5.7.1 ",
			map[string]any{"helo_is_local": true}},
		{"flags after positionals", []string{"check", "192.0.2.25", "mail.one-to-one.example", "--json", "--config", e.cfg}, "accept", "generic-helo", "", nil},
		{"flags between positionals", []string{"check", "192.0.2.66", "--config=" + e.cfg, "mail.one-to-one.example", "-json"}, "reject", "helo-spf-fail", "550 ", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd(tc.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errs)
			}
			m := oneJSON(t, out)
			if m["action"] != tc.action || m["rule"] != tc.rule {
				t.Errorf("action %v rule %v, want %s %s", m["action"], m["rule"], tc.action, tc.rule)
			}
			reply, ok := m["reply"].(string)
			if !ok || !strings.HasPrefix(reply, tc.reply) || (tc.reply == "") != (reply == "") {
				t.Errorf("reply %q, want %q...", m["reply"], tc.reply)
			}
			if _, ok := m["duration_ms"].(float64); !ok {
				t.Errorf("duration_ms = %v", m["duration_ms"])
			}
			ev, ok := m["evidence"].(map[string]any)
			if !ok {
				t.Fatalf("evidence = %v", m["evidence"])
			}
			for _, f := range policy.Fields() {
				if _, ok := ev[f.Name]; !ok {
					t.Errorf("evidence has no %s: %v", f.Name, ev)
				}
			}
			if f, ok := m["dns_failures"].([]any); !ok || len(f) != 0 {
				t.Errorf("dns_failures = %v, want []", m["dns_failures"])
			}
			// check --json prints a decision record.
			if r, err := record.Parse([]byte(out)); err != nil || string(r.Action) != tc.action || len(r.Missing) > 0 {
				t.Errorf("not a decision record: %v, %+v", err, r)
			}
			for k, want := range tc.ev {
				if got, _ := json.Marshal(ev[k]); string(got) != mustJSON(want) {
					t.Errorf("evidence %s = %s, want %s", k, got, mustJSON(want))
				}
			}
			if strings.Contains(tc.args[len(tc.args)-1], "ffff") || tc.name == "IPv4-mapped" {
				if m["client_ip"] != "192.0.2.25" {
					t.Errorf("client_ip %v, want the unmapped address", m["client_ip"])
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCheckText(t *testing.T) {
	e := newEnv(t, "")
	code, out, errs := runCmd("check", "--config", e.cfg, "192.0.2.66", "mail.one-to-one.example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"client 192.0.2.66  HELO mail.one-to-one.example", "evidence:", "spf_helo", "fail",
		"decision: reject by rule helo-spf-fail", "because: spf_helo in [fail]", "[(built-in rules):", "reply: 550 5.7.23 ", "DNS lookups"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A HELO with control characters is shown sanitized.
	_, out, _ = runCmd("check", "--config", e.cfg, "192.0.2.66", "evil\r\ninjected")
	if strings.Contains(out, "\r") || strings.Contains(out, "evil\n") {
		t.Errorf("control characters in output:\n%q", out)
	}
	// Trusted: no DNS.
	e.srv.ResetQueries()
	_, out, _ = runCmd("check", "--config", e.cfg, "127.0.0.1", "localhost")
	if !strings.Contains(out, "trusted_networks") || e.srv.Queries() != 0 {
		t.Errorf("trusted: %d queries\n%s", e.srv.Queries(), out)
	}
}

// A temperror says which lookup failed, why and from which server: in the
// record, in the explanation, and in the spf command's trace.
func TestCommandsNameDNSFailures(t *testing.T) {
	e := newEnv(t, "")
	ptr := dnscache.Failure{Name: "77.2.0.192.in-addr.arpa", Type: "PTR", Cause: dnscache.CauseServFail, Server: e.srv.Addr}
	code, out, errs := runCmd("check", "--config", e.cfg, "--json", "192.0.2.77", "mail.one-to-one.example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	r, err := record.Parse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Rule != "reverse-dns-temperror" || len(r.DNSFailures) != 1 || r.DNSFailures[0] != ptr {
		t.Errorf("rule %s, dns_failures %+v, want reverse-dns-temperror and %+v", r.Rule, r.DNSFailures, ptr)
	}
	code, out, _ = runCmd("check", "--config", e.cfg, "192.0.2.77", "mail.one-to-one.example")
	if want := "DNS failures:\n  PTR 77.2.0.192.in-addr.arpa: servfail from " + e.srv.Addr + "\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("explanation lacks %q:\n%s", want, out)
	}
	code, out, _ = runCmd("spf", "--config", e.cfg, "--json", "192.0.2.25", "broken-spf.example")
	var spf struct {
		Result      string
		Trace       []string
		DNSFailures []map[string]any `json:"dns_failures"`
	}
	if err := json.Unmarshal([]byte(out), &spf); err != nil || code != 0 {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	want := map[string]any{"name": "broken-spf.example", "type": "TXT", "cause": "servfail", "server": e.srv.Addr, "cached": false}
	if spf.Result != "temperror" || len(spf.DNSFailures) != 1 || !reflect.DeepEqual(spf.DNSFailures[0], want) {
		t.Errorf("result %s, dns_failures %v, want temperror and %v", spf.Result, spf.DNSFailures, want)
	}
	if line := "DNS failure: TXT broken-spf.example: servfail from " + e.srv.Addr; !slices.Contains(spf.Trace, line) {
		t.Errorf("trace %q lacks %q", spf.Trace, line)
	}
	// The text form.
	code, out, _ = runCmd("spf", "--config", e.cfg, "192.0.2.25", "broken-spf.example")
	if code != 0 || !strings.Contains(out, "  DNS failure: TXT broken-spf.example: servfail from "+e.srv.Addr+"\n") {
		t.Errorf("text trace:\n%s", out)
	}
}

func TestCheckErrors(t *testing.T) {
	e := newEnv(t, "")
	bad := e.write(t, "bad.yaml", "mode: enforce\ndns:\n  servers: [localhost]\nextra_rules:\n  - {name: x, action: drop}\n")
	tests := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"bad IP", []string{"check", "--config", e.cfg, "192.0.2.300", "a.example"}, []string{`"192.0.2.300" is not an IP address`}},
		{"hostname for IP", []string{"check", "mail.example", "a.example"}, []string{"is not an IP address"}},
		{"missing HELO", []string{"check", "192.0.2.25"}, []string{"need IP and HELO"}},
		{"too many", []string{"check", "192.0.2.25", "a", "b"}, []string{"need IP and HELO"}},
		{"bad config", []string{"check", "--config", bad, "--json", "192.0.2.25", "a.example"},
			[]string{bad + `:3:13: dns.servers: "localhost"`, bad + `:5:23: action must be one of`}},
		{"missing config", []string{"check", "--config", filepath.Join(e.dir, "nope.yaml"), "192.0.2.25", "a.example"}, []string{"does not exist"}},
		{"unknown flag", []string{"check", "--jsn", "192.0.2.25", "a.example"}, []string{"flag provided but not defined: -jsn"}},
	}
	for _, tc := range tests {
		code, out, errs := runCmd(tc.args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", tc.name, code)
		}
		if out != "" {
			t.Errorf("%s: stdout %q", tc.name, out)
		}
		for _, w := range tc.stderr {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, errs)
			}
		}
	}
}

func TestSPFJSON(t *testing.T) {
	e := newEnv(t, "")
	code, out, errs := runCmd("spf", "--config", e.cfg, "--json", "192.0.2.25", "one-to-one.example", "--sender", "a@one-to-one.example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m := oneJSON(t, out)
	if m["result"] != "pass" || m["sender"] != "a@one-to-one.example" || m["domain"] != "one-to-one.example" {
		t.Errorf("got %v", m)
	}
	trace, ok := m["trace"].([]any)
	if !ok {
		t.Fatalf("trace = %v", m["trace"])
	}
	if len(trace) == 0 {
		t.Errorf("empty trace for an include")
	}
	code, out, _ = runCmd("spf", "192.0.2.66", "one-to-one.example", "--config", e.cfg, "--json")
	if m := oneJSON(t, out); code != 0 || m["result"] != "softfail" {
		t.Errorf("exit %d, %v", code, m)
	}
	code, out, _ = runCmd("spf", "--config", e.cfg, "--json", "192.0.2.25", "nospf.example")
	if m := oneJSON(t, out); code != 0 || m["result"] != "none" || m["trace"] == nil {
		t.Errorf("no record: exit %d, %v", code, m)
	}
	code, out, _ = runCmd("spf", "--config", e.cfg, "::ffff:192.0.2.25", "one-to-one.example")
	if code != 0 || !strings.Contains(out, "spf: pass  (ip 192.0.2.25, domain one-to-one.example)") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	if code, _, errs := runCmd("spf", "bad-ip", "one-to-one.example"); code != 2 || !strings.Contains(errs, "not an IP address") {
		t.Errorf("bad IP: exit %d %s", code, errs)
	}
	if code, _, _ := runCmd("spf", "192.0.2.25"); code != 2 {
		t.Errorf("missing domain: exit %d", code)
	}
}

const seedScenarios = "../../policy/scenario/testdata/seed-office365.yaml"

func TestTestSeedScenarios(t *testing.T) {
	if _, err := os.Stat(seedScenarios); err != nil {
		t.Fatalf("seed scenarios (kept in the repository): %v", err)
	}
	code, out, errs := runCmd("test", seedScenarios)
	if code != 0 || !strings.HasSuffix(out, "16 passed, 0 failed\n") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("test", "-v", seedScenarios)
	if code != 0 || strings.Count(out, "\nok    ")+strings.Count(out[:min(len(out), 6)], "ok    ") != 16 {
		t.Errorf("-v: exit %d\n%s", code, out)
	}
}

func TestTestFailingScenario(t *testing.T) {
	code, out, errs := runCmd("test", filepath.Join("testdata", "wrong-expectation.yaml"))
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"FAIL  testdata/wrong-expectation.yaml: one-to-one-expected-reject (ip 192.0.2.25, helo \"mail.one-to-one.example\")",
		"action accept (rule helo-equals-ptr), want reject",
		"FAIL  testdata/wrong-expectation.yaml: no-ptr-wrong-evidence",
		"evidence iprev = permerror, want pass",
		"1 passed, 2 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The same cases pass with rules under which the expectations hold.
	e := newEnv(t, "rules:\n  - {name: all, action: reject}\n")
	code, out, _ = runCmd("test", "--config", e.cfg, filepath.Join("testdata", "wrong-expectation.yaml"))
	if code != 1 || !strings.Contains(out, "2 passed, 1 failed") {
		t.Errorf("with --config: exit %d\n%s", code, out)
	}
}

func TestTestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("cases:\n  - {name: x, ip: not-an-ip, helo: a.example, expect: accept}\n"), 0o644)
	for _, args := range [][]string{
		{"test"},
		{"test", filepath.Join(dir, "missing.yaml")},
		{"test", bad},
		{"test", "--config", filepath.Join(dir, "missing.yaml"), seedScenarios},
	} {
		if code, _, errs := runCmd(args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

func TestValidate(t *testing.T) {
	e := newEnv(t, "")
	code, out, errs := runCmd("validate", "--config", e.cfg)
	if code != 0 || !strings.Contains(out, e.cfg+": ok (17 rules") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCmd("validate"); code != 0 || !strings.Contains(out, "built-in defaults: ok (17 rules, listen [inet:127.0.0.1:8894], mode enforce, reject at rcpt)") {
		t.Errorf("defaults: exit %d %s", code, out)
	}
	if code, out, _ := runCmd("validate", e.cfg); code != 0 || !strings.Contains(out, ": ok") {
		t.Errorf("positional file: exit %d %s", code, out)
	}
	bad := e.write(t, "bad.yaml", "listen: [tcp:1]\nmode: x\n")
	code, out, errs = runCmd("validate", "--config", bad)
	if code != 2 || out != "" {
		t.Errorf("bad: exit %d, stdout %q", code, out)
	}
	if !regexp.MustCompile(regexp.QuoteMeta(bad) + `:1:10: listen: .*\n` + regexp.QuoteMeta(bad) + `:2:7: mode must be one of`).MatchString(errs) {
		t.Errorf("stderr:\n%s", errs)
	}
	if code, _, _ := runCmd("validate", "a.yaml", "b.yaml"); code != 2 {
		t.Errorf("two files: exit %d", code)
	}
}

// decisionLine is a decision log line as the milter writes it.
func decisionLine(t *testing.T, fields map[string]any) string {
	t.Helper()
	line := map[string]any{
		"time": "2026-11-22T10:00:00Z", "level": "INFO", "msg": "decision", "queue_id": "", "client_port": 25000,
		"mode": "enforce", "trusted": false, "duration_ms": 12.5, "stage": "", "exemption": "",
	}
	for k, v := range fields {
		line[k] = v
	}
	b, err := json.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func evidenceJSON(iprev, spf string, ptr []string, form string) map[string]any {
	if ptr == nil {
		ptr = []string{}
	}
	return map[string]any{"iprev": iprev, "ptr": ptr, "ptr_confirmed": ptr, "ptr_generic": false, "helo_form": form,
		"helo_matches_ptr": false, "helo_a_matches_ip": false, "helo_a_temperror": false, "helo_literal_matches_ip": false, "helo_aligned": false,
		"spf_helo": spf, "helo_is_local": false}
}

func TestReplay(t *testing.T) {
	e := newEnv(t, "overrides:\n  helo-spf-fail: {action: tempfail}\n")
	log := strings.Join([]string{
		decisionLine(t, map[string]any{"client_ip": "192.0.2.66", "helo": "mail.one-to-one.example", "rule": "helo-spf-fail", "action": "reject",
			"reply": "550 5.7.23 ...", "evidence": evidenceJSON("pass", "fail", []string{"vps66.cheap-hosting.example"}, "fqdn")}),
		decisionLine(t, map[string]any{"client_ip": "192.0.2.25", "helo": "mail.one-to-one.example", "rule": "helo-equals-ptr", "action": "accept",
			"evidence": func() map[string]any {
				ev := evidenceJSON("pass", "none", []string{"mail.one-to-one.example"}, "fqdn")
				ev["helo_matches_ptr"] = true
				return ev
			}()}),
		`{"time":"2026-11-22T10:00:01Z","level":"INFO","msg":"listening","addr":"127.0.0.1:8894"}`,
		"not json at all",
		`{"time":"2026-11-22T10:00:02Z","level":"INFO","msg":"decision","v":1,"client_ip":"300.1.1.1"}`,
		decisionLine(t, map[string]any{"client_ip": "127.0.0.1", "helo": "localhost", "rule": "trusted", "action": "accept", "trusted": true,
			"evidence": evidenceJSON("", "", nil, "bare")}),
	}, "\n") + "\n"
	logPath := e.write(t, "decisions.log", log)

	code, out, errs := runCmd("replay", "--config", e.cfg, logPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"6 lines read, 2 decisions replayed\n",
		"verdict changed: 1 (50.00%); rule changed only: 0 (0.00%)\n",
		"not replayed: 2 lines: not a decision record\n",
		"not replayed: 1 lines: trusted: no evidence\n",
		"not replayed: 1 lines: unreadable (not JSON, or a damaged record)\n",
		"      1  50.00%  reject by helo-spf-fail -> tempfail by helo-spf-fail\n",
		"e.g. 192.0.2.66 HELO mail.one-to-one.example PTR vps66.cheap-hosting.example\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The same rules as logged: nothing changes.
	code, out, _ = runCmd("replay", logPath)
	if code != 0 || !strings.Contains(out, "verdict changed: 0 (0.00%); rule changed only: 0 (0.00%)\n") || strings.Contains(out, "->") {
		t.Errorf("built-in rules: exit %d\n%s", code, out)
	}
	// Flags after the file.
	if code, out, _ := runCmd("replay", logPath, "--config", e.cfg); code != 0 || !strings.Contains(out, "verdict changed: 1 ") {
		t.Errorf("flags after: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"replay"}, {"replay", filepath.Join(e.dir, "missing.log")}, {"replay", "--config", filepath.Join(e.dir, "missing.yaml"), logPath}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}

// TestReplayEarlyAndTimeout: a decision taken at connect (reject_at: connect)
// was made from reverse DNS alone, and a decision-timeout had incomplete
// evidence; replaying either with the same rules must not report a change.
func TestReplayEarlyAndTimeout(t *testing.T) {
	e := newEnv(t, "")
	log := strings.Join([]string{
		decisionLine(t, map[string]any{"client_ip": "192.0.2.99", "helo": "", "rule": "no-ptr", "action": "reject", "stage": "connect",
			"evidence": evidenceJSON("permerror", "none", nil, "empty")}),
		decisionLine(t, map[string]any{"client_ip": "192.0.2.98", "helo": "", "rule": "ptr-not-confirmed", "action": "reject", "stage": "connect",
			"evidence": evidenceJSON("fail", "none", nil, "empty")}),
		decisionLine(t, map[string]any{"client_ip": "192.0.2.97", "helo": "slow.example", "rule": "decision-timeout", "action": "tempfail",
			"evidence": evidenceJSON("temperror", "none", nil, "fqdn")}),
		// No HELO at all, judged at MAIL: helo-syntax, as logged.
		decisionLine(t, map[string]any{"client_ip": "192.0.2.96", "helo": "", "rule": "helo-syntax", "action": "reject", "stage": "mail",
			"evidence": evidenceJSON("permerror", "none", nil, "empty")}),
		// The MTA gave no client address: nothing to judge again.
		decisionLine(t, map[string]any{"client_ip": "", "helo": "mail.example", "rule": "unknown-client", "action": "tempfail", "stage": "rcpt",
			"evidence": evidenceJSON("", "", nil, "fqdn")}),
	}, "\n") + "\n"
	logPath := e.write(t, "decisions.log", log)
	code, out, errs := runCmd("replay", logPath)
	if code != 0 || !strings.Contains(out, "5 lines read, 3 decisions replayed\nverdict changed: 0 (0.00%); rule changed only: 0 (0.00%)\nnot replayed: 1 lines: decision-timeout: the evidence is incomplete\nnot replayed: 1 lines: unknown-client: the MTA gave no client address\n") || strings.Contains(out, "->") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	// With rules that differ, the connect decision is re-decided at connect.
	e2 := newEnv(t, "extra_rules:\n  - {name: block-99, match: {ip: 192.0.2.99}, action: reject}\n")
	code, out, _ = runCmd("replay", "--config", e2.cfg, logPath)
	if code != 0 || !strings.Contains(out, "rule changed only: 1 ") || !strings.Contains(out, "reject by no-ptr -> reject by block-99") {
		t.Errorf("changed rules: exit %d\n%s", code, out)
	}
	// A rule set under which nothing is decided at connect any more.
	e3 := newEnv(t, "allowlist: {helo: [\"*.partner.example\"]}\n")
	code, out, _ = runCmd("replay", "--config", e3.cfg, logPath)
	if code != 0 || !strings.Contains(out, "reject by no-ptr -> undecided by (none: at connect the rules now wait for the HELO)") {
		t.Errorf("undecided at connect: exit %d\n%s", code, out)
	}
}

// A line written before an evidence field existed is judged with every value
// the field can take: it counts when they all agree, and is undetermined when
// the verdict depends on it. Before helo_a_temperror, a failed lookup of the
// HELO's address was not logged: a line that fell through to the default
// might have been deferred instead.
func TestReplayOldRecords(t *testing.T) {
	e := newEnv(t, "")
	old := func(ev map[string]any) map[string]any {
		delete(ev, "helo_a_temperror")
		delete(ev, "ptr_spf")
		return ev
	}
	log := strings.Join([]string{
		decisionLine(t, map[string]any{"client_ip": "192.0.2.25", "helo": "mail.one-to-one.example", "rule": "helo-equals-ptr", "action": "accept",
			"evidence": func() map[string]any {
				ev := old(evidenceJSON("pass", "none", []string{"mail.one-to-one.example"}, "fqdn"))
				ev["helo_matches_ptr"] = true
				return ev
			}()}),
		decisionLine(t, map[string]any{"client_ip": "192.0.2.66", "helo": "other.example", "rule": "default", "action": "reject",
			"evidence": old(evidenceJSON("pass", "none", []string{"vps66.cheap-hosting.example"}, "fqdn"))}),
	}, "\n") + "\n"
	code, out, errs := runCmd("replay", e.write(t, "old.log", log))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "reject by default -> undetermined by (depends on ptr_spf, helo_a_temperror, which the record lacks)\n                    e.g. 192.0.2.66 HELO other.example PTR vps66.cheap-hosting.example"
	if !strings.Contains(out, want) || !strings.Contains(out, "2 decisions replayed\nverdict changed: 0 (0.00%); rule changed only: 0 (0.00%); undetermined: 1 (50.00%)") {
		t.Errorf("output lacks %q or the counts:\n%s", want, out)
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "check", "spf", "test", "validate", "replay"} {
		code, out, errs := runCmd(cmd, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
		if !strings.Contains(errs, "usage: heloguard ") || !strings.Contains(errs, "-config") || out != "" {
			t.Errorf("%s -h: stdout %q stderr %q", cmd, out, errs)
		}
		if code, _, _ := runCmd(cmd, "--help"); code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, out, _ := runCmd(args...)
		if code != 0 || !strings.Contains(out, "heloguard check [--config FILE] [--json] IP HELO") || !strings.Contains(out, "replay") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	code, _, errs := runCmd("frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d %s", code, errs)
	}
}

func TestServeBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: inet:localhost:1\n"), 0o644)
	code, _, errs := runCmd("serve", "--config", bad)
	if code != 2 || !strings.Contains(errs, bad+":1:9: listen:") {
		t.Errorf("exit %d: %s", code, errs)
	}
	if code, _, _ := runCmd("serve", "extra-arg"); code != 2 {
		t.Errorf("serve with an argument: exit %d", code)
	}
}
