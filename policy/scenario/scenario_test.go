package scenario

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/heloguard/heloguard/config"
)

// TestScenarios runs every scenario file the project is held to: the copies
// kept in testdata. (make check also runs heloguard test over
// ../shared/scenarios when it is checked out beside the repository.)
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files found in testdata")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			results, err := f.Run(context.Background(), config.Default().PolicyOptions(nil))
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
