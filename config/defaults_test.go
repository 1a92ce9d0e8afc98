package config_test

import (
	"net/netip"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

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
		{"UnknownClientAction", c.UnknownClientAction, policy.ActionTempfail},
		{"MaxSessions", c.MaxSessions, 1000},
		{"ReadTimeout", c.ReadTimeout, 2 * time.Hour},
		{"PacketTimeout", c.PacketTimeout, 30 * time.Second},
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
