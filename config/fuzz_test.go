package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
)

// FuzzParse: Parse never panics, and what it returns is either a usable
// config or errors that each name a line.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	seeds = append(seeds, filepath.Join("..", "deploy", "heloguard.yaml")) // if it exists
	for _, path := range seeds {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add(config.BuiltinRulesYAML())
	for _, s := range []string{
		"",
		"rules: []\n",
		"extra_rules:\n  - {name: a, match: {not: {not: {any: [{all: [{}]}]}}}, action: accept}\n",
		"a: &x [*x]\n",
		"listen: &l [inet:127.0.0.1:1]\nlocal_names: *l\n",
		"<<: {mode: monitor}\n",
		"overrides: {default: {action: tempfail, reply: \"451 4.7.1 {ip}\"}}\n",
		"extra_rules:\n  - {name: r, action: reject, reply: \"550 5.5.5\"}\n",
		"extra_rules:\n  - {name: r, action: reject, reply: \"550\"}\n",
		"? [a, b]\n: c\n",
		"mode: enforce\n---\nmode: monitor\n",
		"\xef\xbb\xbfmode: monitor\n",
		"\xff\xfem\x00o\x00d\x00e\x00:\x00 \x00x\x00\n\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *config.Config
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err = config.Parse("fuzz.yaml", data)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Parse(%q) did not return within 5s", data)
		}
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not config.Errors", err, err)
			}
			for _, e := range es {
				if e.Line <= 0 || e.Column <= 0 {
					t.Fatalf("error without a position: %v", e)
				}
			}
			return
		}
		if c == nil || len(c.Listen) == 0 {
			t.Fatalf("no error and no usable config: %+v", c)
		}
		for _, r := range c.Rules {
			if r.Name == "" || r.Action == "" {
				t.Fatalf("rule without name or action: %+v", r)
			}
		}
	})
}
