package scenario

import (
	"context"
	"path/filepath"
	"testing"
)

// TestSharedScenarios runs every scenario file the project is held to.
func TestSharedScenarios(t *testing.T) {
	files, err := filepath.Glob("../../../shared/scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local, _ := filepath.Glob("testdata/*.yaml")
	files = append(files, local...)
	if len(files) == 0 {
		t.Fatal("no scenario files found in ../shared/scenarios")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			results, err := f.Run(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				t.Run(r.Case.Name, func(t *testing.T) {
					for _, p := range r.Problems {
						t.Error(p)
					}
					if len(r.Problems) == 0 {
						t.Logf("%s by rule %s %s", r.Decision.Action, r.Decision.Rule, r.Decision.Reply)
					}
				})
			}
		})
	}
}
