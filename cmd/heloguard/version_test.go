package main

import (
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/heloguard/heloguard", Version: "v0.0.0-20261201155927-38e15fa4f446"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "38e15fa4f446c9e51ff368d92a2690124facb592"}, {Key: "vcs.modified", Value: "true"}}}
	devel := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/heloguard/heloguard", Version: "(devel)"}}
	plat := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name                   string
		bi                     *debug.BuildInfo
		ok                     bool
		ldVer, ldCommit, ldMod string
		want                   string
	}{
		{"stamped, package version", stamped, true, "1.2.3", "", "",
			"heloguard 1.2.3\ncommit 38e15fa4f446c9e51ff368d92a2690124facb592 (modified)\nbuilt with go1.99.1 " + plat + "\n"},
		{"stamped, module version", stamped, true, "", "", "",
			"heloguard v0.0.0-20261201155927-38e15fa4f446\ncommit 38e15fa4f446c9e51ff368d92a2690124facb592 (modified)\nbuilt with go1.99.1 " + plat + "\n"},
		{"the stamp wins over -X commit", stamped, true, "", "0000000", "false",
			"heloguard v0.0.0-20261201155927-38e15fa4f446\ncommit 38e15fa4f446c9e51ff368d92a2690124facb592 (modified)\nbuilt with go1.99.1 " + plat + "\n"},
		{"devel, no VCS", devel, true, "", "", "",
			"heloguard devel\ncommit unknown (built without VCS information)\nbuilt with go1.99.1 " + plat + "\n"},
		{"devel, -X commit (a worktree)", devel, true, "", "abc123", "false",
			"heloguard devel\ncommit abc123\nbuilt with go1.99.1 " + plat + "\n"},
		{"no build info", nil, false, "", "", "",
			"heloguard devel\ncommit unknown (built without VCS information)\nbuilt with " + runtime.Version() + " " + plat + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readVersion(tc.bi, tc.ok, tc.ldVer, tc.ldCommit, tc.ldMod).String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, out, errs := runCmd(args...)
		if code != 0 || errs != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
		lines := strings.Split(out, "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "heloguard ") || !strings.HasPrefix(lines[1], "commit ") ||
			lines[2] != "built with "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("%v:\n%s", args, out)
		}
	}
	if code, _, errs := runCmd("version", "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d %s", code, errs)
	}
	if _, out, _ := runCmd("help"); !strings.Contains(out, "heloguard version") {
		t.Errorf("the usage does not list the version command:\n%s", out)
	}
}

// TestVersionBuilt builds this tree as the Makefile does (-buildvcs=auto, and
// the commit passed with -X for trees where the go command stamps none, such
// as git worktrees) and checks what `heloguard --version` says against git.
func TestVersionBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds heloguard")
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	head, err := exec.Command(gitBin, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	rev := strings.TrimSpace(string(head))
	bin := filepath.Join(t.TempDir(), "heloguard")
	build := exec.Command("go", "build", "-buildvcs=auto", "-ldflags", "-X main.version=9.8.7 -X main.commit="+rev+" -X main.commitModified=false",
		"-o", bin, "github.com/heloguard/heloguard/cmd/heloguard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				t.Logf("the go command stamped vcs.revision=%s", s.Value)
			}
		}
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("heloguard --version: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) != 4 || lines[0] != "heloguard 9.8.7" || (lines[1] != "commit "+rev && lines[1] != "commit "+rev+" (modified)") ||
		lines[2] != "built with "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("heloguard --version of this tree at %s:\n%s", rev, out)
	}
}
