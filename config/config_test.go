package config_test

import (
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

// builtinOrder is the built-in rule set in the order of docs/rules.md's table of
// rules ("How it decides", rows 3 to 19; trusted and allowlist come from
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
	"generic-ptr-temperror",
	"helo-equals-ptr",
	"helo-a-matches",
	"helo-a-temperror",
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
		{"UnknownClientAction", c.UnknownClientAction, policy.ActionReject},
		{"MaxSessions", c.MaxSessions, 250},
		{"ReadTimeout", c.ReadTimeout, 2 * time.Minute},
		{"PacketTimeout", c.PacketTimeout, 10 * time.Second},
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
	if opt.TimeoutAction != policy.ActionAccept || opt.UnknownClientAction != policy.ActionReject || len(opt.Rules) != len(c.Rules) || !reflect.DeepEqual(opt.TrustedNetworks, c.TrustedNetworks) {
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

// Keys is the parser's own list: each key is taken, and the unknown-key
// error lists exactly the top-level ones.
func TestKeys(t *testing.T) {
	keys := config.Keys()
	if len(keys) < 25 || !slices.Contains(keys, "listen") || !slices.Contains(keys, "dns.failure_ttl") || !slices.Contains(keys, "overrides") {
		t.Fatalf("Keys() = %v", keys)
	}
	var top []string
	for _, k := range keys {
		parent, sub, nested := strings.Cut(k, ".")
		doc := parent + ": ~\n"
		if nested {
			doc = parent + ":\n  " + sub + ": ~\n"
		} else {
			top = append(top, k)
		}
		if _, err := config.Parse("keys.yaml", []byte(doc)); err != nil && strings.Contains(err.Error(), "unknown key") {
			t.Errorf("Keys() lists %s, which the parser does not take: %v", k, err)
		}
	}
	_, err := config.Parse("keys.yaml", []byte("no_such_key: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "allowed: "+strings.Join(top, ", ")) {
		t.Errorf("the unknown-key error does not list the top-level keys of Keys() (%v): %v", top, err)
	}
}
