package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/heloguard/heloguard/policy/scenario"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
)

// ScenarioFiles are the scenario worlds the end-to-end tests serve, kept in
// the repository, relative to a package directory under deploy/: the Office
// 365 seed and the big senders with IP-shaped names.
var ScenarioFiles = []string{
	"../../policy/scenario/testdata/seed-office365.yaml",
	"../../policy/scenario/testdata/esp-ip-shaped.yaml",
}

// StartDNS loads the scenario files and serves their worlds, merged, on
// 127.0.0.1, with extra records (zone-file lines, absolute names) added. The
// returned file holds every file's cases.
func StartDNS(t testing.TB, extra ...string) (*scenario.File, *dnsworld.Server) {
	t.Helper()
	all := &scenario.File{}
	for _, name := range ScenarioFiles {
		path, err := filepath.Abs(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := scenario.Load(path)
		if err != nil {
			t.Fatalf("scenario: %v", err)
		}
		all.Path = path
		all.World = append(all.World, f.World...)
		all.Faults = append(all.Faults, f.Faults...)
		all.Cases = append(all.Cases, f.Cases...)
	}
	z, err := all.Zone()
	if err != nil {
		t.Fatalf("scenario world: %v", err)
	}
	for _, rr := range extra {
		if err := z.AddRR(rr); err != nil {
			t.Fatalf("extra DNS record %q: %v", rr, err)
		}
	}
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatalf("dnsworld: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return all, srv
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
