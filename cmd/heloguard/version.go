package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at link time (make build, make deb):
//
//	-ldflags "-X main.version=1.2.3"
//
// version is the package version. commit and commitModified are read only
// when the build info has no VCS stamp: the go command stamps vcs.revision
// and vcs.modified in a clone, but not in a git worktree (where .git is a
// file) nor with -buildvcs=false, so the Makefile passes them as well.
var (
	version        string
	commit         string
	commitModified string // "true" or "false"
)

// buildVersion is what `heloguard version` prints.
type buildVersion struct {
	Version  string // the package version, the module version, or "devel"
	Commit   string // vcs.revision; "" when unknown
	Modified bool   // vcs.modified: built from a tree with uncommitted changes
	Go       string // runtime.Version()
	Platform string // GOOS/GOARCH
}

// readVersion combines the link-time variables and the build info (ok false:
// the binary has none).
func readVersion(bi *debug.BuildInfo, ok bool, ldVersion, ldCommit, ldModified string) buildVersion {
	v := buildVersion{Version: ldVersion, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && bi != nil {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version // go install ...@v1.2.3, or a pseudo-version from VCS
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Commit == "" && ldCommit != "" {
		v.Commit, v.Modified = ldCommit, ldModified == "true"
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

func (v buildVersion) String() string {
	c := v.Commit
	switch {
	case c == "":
		c = "unknown (built without VCS information)"
	case v.Modified:
		c += " (modified)"
	}
	return fmt.Sprintf("heloguard %s\ncommit %s\nbuilt with %s %s\n", v.Version, c, v.Go, v.Platform)
}

func currentVersion() buildVersion {
	bi, ok := debug.ReadBuildInfo()
	return readVersion(bi, ok, version, commit, commitModified)
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "version", stderr)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "heloguard version: unexpected argument %q\n", pos[0])
		fs.Usage()
		return exitUsage
	}
	fmt.Fprint(stdout, currentVersion())
	return exitOK
}
