package milter

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

// A panic in a session's callback ends that session with errPanic, logged
// with its stack and client, instead of the daemon.
func TestGuard(t *testing.T) {
	var out bytes.Buffer
	s := &session{srv: &Server{ops: slog.New(slog.NewJSONHandler(&out, nil))}, ip: netip.MustParseAddr("192.0.2.7")}
	f := func() (err error) {
		defer s.guard(&err)
		var m map[string]int
		m["x"] = 1 // assignment to a nil map: a bug's panic
		return nil
	}
	if err := f(); !errors.Is(err, errPanic) {
		t.Fatalf("err = %v, want errPanic", err)
	}
	for _, want := range []string{`"level":"ERROR"`, "a milter session panicked", "assignment to entry in nil map", "guard_internal_test.go", `"client_ip":"192.0.2.7"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q: %s", want, out.String())
		}
	}
	g := func() (err error) {
		defer s.guard(&err)
		return nil
	}
	if err := g(); err != nil {
		t.Errorf("no panic, but err = %v", err)
	}
}
