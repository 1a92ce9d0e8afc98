package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// EnvStrict is the variable that turns a missing tool into a failure. CI sets it
// after deploy/install-test-deps.sh.
const EnvStrict = "HELOGUARD_E2E"

// Strict reports whether HELOGUARD_E2E=1.
func Strict() bool { return os.Getenv(EnvStrict) == "1" }

// SkipOrFail skips the test, or fails it when HELOGUARD_E2E=1.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s=1 but %s (install with deploy/install-test-deps.sh)", EnvStrict, msg)
	}
	t.Skipf("skipping end-to-end test: %s (install with deploy/install-test-deps.sh; set %s=1 to make this a failure)", msg, EnvStrict)
}

// Tool finds an executable on PATH or in the sbin directories, where Debian puts
// postfix and postconf (a non-root PATH often lacks them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	SkipOrFail(t, "%s is not installed", name)
	return ""
}

// RequireRoot skips (or fails) unless the test runs as root, which a real
// Postfix instance needs.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "%s needs root (running as uid %d)", why, os.Geteuid())
	}
}
