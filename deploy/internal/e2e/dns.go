package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/heloguard/heloguard/dnscache/dnstest"
	"github.com/heloguard/heloguard/policy/scenario"
)

// ScenarioFile is the shared scenario world, relative to a package directory
// under deploy/ (CI clones the repository with shared/ beside it).
const ScenarioFile = "../../../shared/scenarios/seed-office365.yaml"

// StartDNS loads the scenario file and serves its world on 127.0.0.1, with
// extra records (zone-file lines, absolute names) added to it.
func StartDNS(t testing.TB, extra ...string) (*scenario.File, *dnstest.Server) {
	t.Helper()
	path, err := filepath.Abs(ScenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		SkipOrFail(t, "scenario file %s is missing (shared/ must be checked out beside the repository)", path)
	}
	f, err := scenario.Load(path)
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	z, err := f.Zone()
	if err != nil {
		t.Fatalf("scenario world: %v", err)
	}
	for _, rr := range extra {
		if err := z.AddRR(rr); err != nil {
			t.Fatalf("extra DNS record %q: %v", rr, err)
		}
	}
	srv, err := dnstest.Start(z)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return f, srv
}

// WorldDir makes a temporary directory that the postfix and nobody users can
// traverse (t.TempDir's parent is 0700), removed at the end of the test.
func WorldDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}
