package policy

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestCopiesMatchShared keeps the in-repository copies of the scenario files
// and the SPF conformance suites equal to their originals in ../shared, when
// that directory is checked out beside the repository: a copy that drifts
// fails here. Without ../shared the test skips; the copies are what the other
// tests read either way.
func TestCopiesMatchShared(t *testing.T) {
	for _, c := range []struct{ name, copies, shared string }{
		{"scenarios", "scenario/testdata", "../../shared/scenarios"},
		{"conformance", conformanceDir, "../../shared/conformance"},
	} {
		t.Run(c.name, func(t *testing.T) {
			compareCopies(t, c.copies, c.shared)
		})
	}
}

func compareCopies(t *testing.T, copies, shared string) {
	if _, err := os.Stat(shared); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is not checked out beside the repository", shared)
	} else if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(copies)
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		orig, err := os.ReadFile(filepath.Join(shared, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			t.Logf("%s has no original in %s", e.Name(), shared)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		mine, err := os.ReadFile(filepath.Join(copies, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		compared++
		if !bytes.Equal(mine, orig) {
			t.Errorf("%s differs from %s (line %d); refresh the copy (in policy/): cp %[2]s %[4]s/",
				filepath.Join(copies, e.Name()), filepath.Join(shared, e.Name()), firstDiffLine(mine, orig), copies)
		}
	}
	if compared == 0 {
		t.Errorf("no file of %s has an original in %s", copies, shared)
	}
}

// firstDiffLine is the 1-based number of the first line where a and b differ.
func firstDiffLine(a, b []byte) int {
	line := 1
	for i := 0; i < len(a) && i < len(b) && a[i] == b[i]; i++ {
		if a[i] == '\n' {
			line++
		}
	}
	return line
}
