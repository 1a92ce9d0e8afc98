package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles heloguard from this tree into a temporary directory. Under
// `go test -race` the daemon is built with the race detector too, and Daemon
// fails the test if it reports a race.
func Build(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "heloguard")
	args := []string{"build", "-o", out}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/heloguard/heloguard/cmd/heloguard")
	cmd := exec.Command(goBin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// raceEnv is the environment for the daemon binary: a race report is printed,
// and without the race detector's default one-second sleep at exit.
func raceEnv() []string {
	return append(os.Environ(), "GORACE=halt_on_error=0 exitcode=66 atexit_sleep_ms=0")
}
