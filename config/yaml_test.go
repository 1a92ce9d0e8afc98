package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
)

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
