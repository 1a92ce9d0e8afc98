package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
)

func TestMetricsListen(t *testing.T) {
	if c := mustParse(t, "none.yaml", "mode: enforce\n"); c.Metrics.Listen != "" {
		t.Errorf("metrics on by default: %q", c.Metrics.Listen)
	}
	for _, tt := range []struct{ in, want string }{
		{`metrics: {listen: "127.0.0.1:9894"}`, "127.0.0.1:9894"},
		{"metrics:\n  listen: \"[::1]:9894\"", "[::1]:9894"},
		{`metrics: {listen: "[::ffff:127.0.0.1]:9894"}`, "[::ffff:127.0.0.1]:9894"},
	} {
		if c := mustParse(t, "m.yaml", tt.in+"\n"); c.Metrics.Listen != tt.want {
			t.Errorf("%s: listen %q, want %q", tt.in, c.Metrics.Listen, tt.want)
		}
	}
	c, err := config.Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Listen != "127.0.0.1:9895" {
		t.Errorf("full.yaml: metrics.listen %q", c.Metrics.Listen)
	}
}

func TestMetricsErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"metrics: {listen: localhost:9894}\n", `m.yaml:1:19: metrics.listen: "localhost:9894" is not IP:PORT such as 127.0.0.1:9894 or [::1]:9894`},
		{"metrics: {listen: \"127.0.0.1\"}\n", `m.yaml:1:19: metrics.listen: "127.0.0.1" is not IP:PORT`},
		{"metrics: {listen: \"127.0.0.1:0\"}\n", `m.yaml:1:19: metrics.listen: "127.0.0.1:0" is not IP:PORT`},
		{"metrics: {listen: [\"127.0.0.1:9894\"]}\n", `m.yaml:1:19: metrics.listen must be a single value`},
		{"metrics:\n  listen: 127.0.0.1:9894\n  path: /m\n", `m.yaml:3:3: unknown key "path" in metrics; allowed: listen`},
		{"metrics: 127.0.0.1:9894\n", `m.yaml:1:10: metrics must be a mapping of keys to values`},
	} {
		_, err := config.Parse("m.yaml", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %s", tt.in, err, tt.want)
		}
	}
}

// A metrics listener other hosts can reach works, with a warning (which
// validate prints and serve logs at start); loopback gets none.
func TestMetricsNonLoopbackWarns(t *testing.T) {
	warned := func(yml string) bool {
		c := mustParse(t, "w.yaml", yml)
		_, warnings := c.CheckHost()
		for _, w := range warnings {
			if strings.Contains(w, "metrics.listen") {
				return true
			}
		}
		return false
	}
	if warned("metrics: {listen: \"127.0.0.1:9894\"}\n") || warned("metrics: {listen: \"[::1]:9894\"}\n") || warned("mode: enforce\n") {
		t.Error("a warning for a loopback metrics listener, or none at all")
	}
	if !warned("metrics: {listen: \"0.0.0.0:9894\"}\n") || !warned("metrics: {listen: \"[2001:db8::1]:9894\"}\n") {
		t.Error("no warning for a metrics listener on every address")
	}
}
