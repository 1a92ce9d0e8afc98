package milter_test

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/milter"
)

// go-milter's own lines, one with a byte the peer chose, come out as JSON
// operational lines with nothing raw in them.
func TestLibraryLog(t *testing.T) {
	var out bytes.Buffer
	l := log.New(milter.LibraryLog{Log: slog.New(slog.NewJSONHandler(&out, nil))}, "", 0)
	l.Printf("Unrecognized command code: %c", '\x1b')
	l.Printf("Unrecognized command code: %s", "\xff")
	l.Printf("panic handling command: boom\nstack line")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] != "milter library" {
			t.Errorf("not a structured line: %q (%v)", line, err)
		}
		for _, c := range []byte(line) {
			if c < 0x20 || c == 0xff {
				t.Errorf("raw byte %#x in %q", c, line)
			}
		}
	}
	if !strings.Contains(lines[2], `"level":"ERROR"`) {
		t.Errorf("a panic is not an error: %s", lines[2])
	}
	// Once per session with an MTA that takes no symbol list: debug only.
	out.Reset()
	l.Printf("milter: warning: milter could not send the needed macros since MTA does not support this")
	if out.Len() != 0 {
		t.Errorf("logged at the default level: %s", out.String())
	}
}
