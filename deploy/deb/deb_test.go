// Package deb_test builds the Debian package (build.sh, as make deb does),
// runs lintian on it, installs it into this machine with dpkg -i, checks what
// it installed, then removes and purges it and checks that nothing is left
// but the heloguard user, which Debian keeps (the test then deletes the user
// it caused). It leaves the machine as it found it: it refuses to run when
// heloguard is installed already or any of its paths exists.
//
// It skips unless it runs as root with dpkg, lintian, systemd-analyze and
// logrotate installed; with HELOGUARD_E2E=1 those are failures instead.
// deploy/install-test-deps.sh installs the tools on Debian.
package deb_test

import (
	"debug/buildinfo"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

// paths the package owns or creates: none may exist before the test.
var ownPaths = []string{
	"/usr/sbin/heloguard",
	"/etc/heloguard",
	"/etc/logrotate.d/heloguard",
	"/lib/systemd/system/heloguard.service",
	"/etc/systemd/system/heloguard.service",
	"/etc/systemd/system/multi-user.target.wants/heloguard.service",
	"/usr/share/doc/heloguard",
	"/usr/share/heloguard",
	"/usr/share/man/man8/heloguard.8.gz",
	"/usr/share/man/man5/heloguard.yaml.5.gz",
	"/usr/share/lintian/overrides/heloguard",
	"/var/spool/postfix/heloguard",
	"/var/log/heloguard",
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// pkgStatus is dpkg's status of the heloguard package, "" when dpkg knows
// nothing of it.
func pkgStatus() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "heloguard").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// footprint lists the files and links named *heloguard* where a package or
// its scripts could leave them (not /run and /tmp, where other tests put
// their heloguard sockets).
func footprint() []string {
	roots := []struct {
		dir   string
		depth int
	}{
		{"/etc", 10}, {"/lib/systemd", 10}, {"/usr/lib/systemd", 10}, {"/usr/lib/sysusers.d", 1},
		{"/usr/sbin", 1}, {"/usr/share/doc", 1}, {"/usr/share/man", 3}, {"/usr/share/lintian/overrides", 1},
		{"/usr/share", 1}, {"/var/lib/systemd", 10}, {"/var/lib/dpkg/info", 1}, {"/var/spool/postfix", 1},
		{"/var/log", 2},
	}
	var out []string
	for _, r := range roots {
		base := strings.Count(r.dir, "/")
		_ = filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && strings.Count(p, "/")-base >= r.depth {
				return fs.SkipDir
			}
			if strings.Contains(d.Name(), "heloguard") {
				out = append(out, p)
			}
			return nil
		})
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestDeb(t *testing.T) {
	e2e.RequireRoot(t, "installing the Debian package into this machine")
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query", "lintian", "systemd-analyze", "logrotate", "adduser", "man", "go"} {
		e2e.Tool(t, tool)
	}
	if s := pkgStatus(); s != "" && !strings.HasPrefix(s, "unknown ") && !strings.Contains(s, "not-installed") {
		e2e.SkipOrFail(t, "the heloguard package is on this machine already (%s): this test installs and purges it", s)
	}
	for _, p := range ownPaths {
		if exists(p) {
			e2e.SkipOrFail(t, "%s exists: this test would install over it and purge it", p)
		}
	}
	_, uerr := user.Lookup("heloguard")
	_, gerr := user.LookupGroup("heloguard")
	userExisted, groupExisted := uerr == nil, gerr == nil
	before := footprint()

	// Build it as make deb does.
	dir := t.TempDir()
	start := time.Now()
	out := mustRun(t, "sh", "build.sh", "-o", dir)
	deb := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	t.Logf("built %s in %s", deb, time.Since(start).Round(time.Second))
	arch := strings.TrimSpace(mustRun(t, "dpkg", "--print-architecture"))
	if !regexp.MustCompile(`^heloguard_[0-9][0-9A-Za-z.+~]*-[0-9]+_` + regexp.QuoteMeta(arch) + `\.deb$`).MatchString(filepath.Base(deb)) {
		t.Fatalf("the package is named %s; want heloguard_<version>_%s.deb", filepath.Base(deb), arch)
	}
	debVersion := strings.TrimSpace(mustRun(t, "dpkg-deb", "-f", deb, "Version"))
	upstream := debVersion[:strings.LastIndex(debVersion, "-")]

	t.Run("lintian", func(t *testing.T) {
		cmd := exec.Command("lintian", "--display-info", "--show-overrides", "--fail-on", "error", deb)
		b, err := cmd.CombinedOutput()
		var errs, warns []string
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(l, "E: "):
				errs = append(errs, l)
			case strings.HasPrefix(l, "W: "):
				warns = append(warns, l)
			}
		}
		t.Logf("lintian %s:\n%s", filepath.Base(deb), b)
		t.Logf("lintian: %d errors, %d warnings", len(errs), len(warns))
		if err != nil || len(errs) > 0 {
			t.Errorf("lintian finds errors (%v):\n%s", err, strings.Join(errs, "\n"))
		}
	})

	t.Run("copyright-lists-every-module", func(t *testing.T) {
		x := t.TempDir()
		mustRun(t, "dpkg-deb", "-x", deb, x)
		bi, err := buildinfo.ReadFile(filepath.Join(x, "usr/sbin/heloguard"))
		if err != nil {
			t.Fatal(err)
		}
		cr, err := os.ReadFile(filepath.Join(x, "usr/share/doc/heloguard/copyright"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range bi.Deps {
			if !strings.Contains(string(cr), " "+d.Path+"/*") {
				t.Errorf("the copyright file has no Files: paragraph for %s, which the binary links", d.Path)
			}
		}
	})

	// From here on the machine changes: put it back whatever happens.
	t.Cleanup(func() {
		if s := pkgStatus(); s != "" && !strings.Contains(s, "not-installed") {
			if out, err := run(t, "dpkg", "--purge", "heloguard"); err != nil {
				t.Errorf("cleanup: dpkg --purge heloguard: %v\n%s", err, out)
			}
		}
		if _, err := user.Lookup("heloguard"); err == nil && !userExisted {
			if out, err := run(t, "userdel", "heloguard"); err != nil {
				t.Errorf("cleanup: userdel heloguard: %v\n%s", err, out)
			}
		}
		if _, err := user.LookupGroup("heloguard"); err == nil && !groupExisted {
			if out, err := run(t, "groupdel", "heloguard"); err != nil {
				t.Errorf("cleanup: groupdel heloguard: %v\n%s", err, out)
			}
		}
		if after := footprint(); !slices.Equal(after, before) {
			t.Errorf("the machine is not as the test found it: files named heloguard before\n  %v\nand after\n  %v", before, after)
		}
	})

	t.Logf("dpkg -i:\n%s", mustRun(t, "dpkg", "-i", deb))
	if s := pkgStatus(); s != "install ok installed" {
		t.Fatalf("after dpkg -i the package's status is %q", s)
	}

	t.Run("files", func(t *testing.T) {
		files := map[string]os.FileMode{
			"/usr/sbin/heloguard":                               0o755,
			"/etc/heloguard":                                    fs.ModeDir | 0o755,
			"/etc/heloguard/heloguard.yaml":                     0o644,
			"/etc/logrotate.d/heloguard":                        0o644,
			"/lib/systemd/system/heloguard.service":             0o644,
			"/usr/share/man/man8/heloguard.8.gz":                0o644,
			"/usr/share/man/man5/heloguard.yaml.5.gz":           0o644,
			"/usr/share/doc/heloguard/copyright":                0o644,
			"/usr/share/doc/heloguard/changelog.Debian.gz":      0o644,
			"/usr/share/doc/heloguard/README.md.gz":             0o644,
			"/usr/share/doc/heloguard/admin.md.gz":              0o644,
			"/usr/share/doc/heloguard/rules.md.gz":              0o644,
			"/usr/share/doc/heloguard/reference.md.gz":          0o644,
			"/usr/share/doc/heloguard/examples/main.cf.snippet": 0o644,
			"/usr/share/doc/heloguard/examples/heloguard.mc":    0o644,
			"/usr/share/heloguard/grafana":                      fs.ModeDir | 0o755,
			"/usr/share/lintian/overrides/heloguard":            0o644,
		}
		if exists("../grafana/heloguard.json") {
			files["/usr/share/heloguard/grafana/heloguard.json"] = 0o644
		}
		for p, mode := range files {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Errorf("%s is not installed: %v", p, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode() != mode || st.Uid != 0 || st.Gid != 0 {
				t.Errorf("%s: mode %v owner %d:%d, want %v root:root", p, fi.Mode(), st.Uid, st.Gid, mode)
			}
		}
		for installed, shipped := range map[string]string{
			"/etc/heloguard/heloguard.yaml":         "../heloguard.yaml",
			"/lib/systemd/system/heloguard.service": "../heloguard.service",
			"/etc/logrotate.d/heloguard":            "heloguard.logrotate",
		} {
			a, _ := os.ReadFile(installed)
			b, _ := os.ReadFile(shipped)
			if len(a) == 0 || string(a) != string(b) {
				t.Errorf("%s is not deploy/deb/%s as shipped", installed, shipped)
			}
		}
		conffiles := mustRun(t, "dpkg-query", "-W", "-f=${Conffiles}", "heloguard")
		for _, c := range []string{"/etc/heloguard/heloguard.yaml", "/etc/logrotate.d/heloguard"} {
			if !strings.Contains(conffiles, " "+c+" ") {
				t.Errorf("%s is not a conffile; dpkg's conffiles:\n%s", c, conffiles)
			}
		}
		// The md5sums dpkg keeps match what is installed.
		if out, err := run(t, "dpkg", "--verify", "heloguard"); err != nil || out != "" {
			t.Errorf("dpkg --verify heloguard: %v\n%s", err, out)
		}
	})

	t.Run("user", func(t *testing.T) {
		ent := strings.Split(strings.TrimSpace(mustRun(t, "getent", "passwd", "heloguard")), ":")
		if len(ent) != 7 {
			t.Fatalf("getent passwd heloguard: %q", ent)
		}
		if userExisted {
			t.Logf("the heloguard user existed before the test: %q", ent)
			return
		}
		uid, _ := strconv.Atoi(ent[2])
		if ent[6] != "/usr/sbin/nologin" || ent[5] != "/nonexistent" || uid >= 1000 || uid == 0 {
			t.Errorf("heloguard: shell %s home %s uid %d; want a system user (uid below 1000) with shell /usr/sbin/nologin and no home", ent[6], ent[5], uid)
		}
		if exists("/nonexistent") {
			t.Errorf("the user's home /nonexistent was created")
		}
		g, err := user.LookupGroup("heloguard")
		if err != nil || g.Gid != ent[3] {
			t.Errorf("heloguard's primary group is %s, want the group heloguard (%v, %v)", ent[3], g, err)
		}
	})

	t.Run("postfix-socket-dir", func(t *testing.T) {
		pg, err := user.LookupGroup("postfix")
		if err != nil || !exists("/var/spool/postfix") {
			if exists("/var/spool/postfix/heloguard") {
				t.Errorf("/var/spool/postfix/heloguard was created without Postfix")
			}
			t.Skip("Postfix is not installed: the package creates no socket directory")
		}
		fi, err := os.Stat("/var/spool/postfix/heloguard")
		if err != nil {
			t.Fatalf("the socket directory for Postfix's chroot is missing: %v", err)
		}
		u, _ := user.Lookup("heloguard")
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o750 || strconv.Itoa(int(st.Uid)) != u.Uid || strconv.Itoa(int(st.Gid)) != pg.Gid {
			t.Errorf("/var/spool/postfix/heloguard: mode %v owner %d:%d, want a directory 0750 heloguard:postfix (%s:%s)", fi.Mode(), st.Uid, st.Gid, u.Uid, pg.Gid)
		}
	})

	t.Run("systemd", func(t *testing.T) {
		link := "/etc/systemd/system/multi-user.target.wants/heloguard.service"
		if target, err := os.Readlink(link); err != nil || target != "/lib/systemd/system/heloguard.service" {
			t.Errorf("the unit is not enabled: %s -> %q (%v)", link, target, err)
		}
		// With its man pages installed, verify checks Documentation= too.
		out, err := run(t, "systemd-analyze", "verify", "/lib/systemd/system/heloguard.service")
		if err != nil || strings.Contains(out, "heloguard") {
			t.Errorf("systemd-analyze verify /lib/systemd/system/heloguard.service: %v\n%s", err, out)
		}
		if !exists("/run/systemd/system") {
			t.Logf("systemd is not running (PID 1 is not systemd): the postinst enabled the unit and did not start it")
			return
		}
		active := ""
		e2e.WaitFor(15*time.Second, func() bool {
			o, _ := run(t, "systemctl", "is-active", "heloguard")
			active = strings.TrimSpace(o)
			return active == "active"
		})
		if active != "active" {
			o, _ := run(t, "systemctl", "status", "--no-pager", "heloguard")
			t.Errorf("systemd runs, and heloguard.service is %q after the install:\n%s", active, o)
		}
	})

	t.Run("logrotate", func(t *testing.T) {
		out, err := run(t, "logrotate", "--debug", "/etc/logrotate.d/heloguard")
		if err != nil || strings.Contains(strings.ToLower(out), "error") || !strings.Contains(out, "/var/log/heloguard/decisions.log") {
			t.Errorf("logrotate --debug /etc/logrotate.d/heloguard: %v\n%s", err, out)
		}
	})

	t.Run("man", func(t *testing.T) {
		for page, want := range map[string]string{"heloguard": "/usr/share/man/man8/heloguard.8.gz", "heloguard.yaml": "/usr/share/man/man5/heloguard.yaml.5.gz"} {
			if out, err := run(t, "man", "-w", page); err != nil || strings.TrimSpace(out) != want {
				t.Errorf("man -w %s: %v %q, want %s", page, err, out, want)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		out := mustRun(t, "/usr/sbin/heloguard", "version")
		lines := strings.Split(out, "\n")
		if lines[0] != "heloguard "+upstream || !strings.HasPrefix(lines[1], "commit ") || !strings.HasPrefix(lines[2], "built with go") {
			t.Errorf("/usr/sbin/heloguard version:\n%s\nwant heloguard %s, the commit and the Go version", out, upstream)
		}
		if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			if c := "commit " + strings.TrimSpace(string(head)); lines[1] != c && lines[1] != c+" (modified)" {
				t.Errorf("/usr/sbin/heloguard version says %q; git says %s", lines[1], c)
			}
		}
		t.Logf("/usr/sbin/heloguard version:\n%s", out)
	})

	t.Run("validate", func(t *testing.T) {
		out := mustRun(t, "/usr/sbin/heloguard", "validate", "--config", "/etc/heloguard/heloguard.yaml")
		if !strings.HasPrefix(out, "/etc/heloguard/heloguard.yaml: ok (") {
			t.Errorf("heloguard validate: %s", out)
		}
		// As the daemon's user, as the unit's ExecStartPre runs it.
		if out, err := run(t, "runuser", "-u", "heloguard", "--", "/usr/sbin/heloguard", "validate", "--config", "/etc/heloguard/heloguard.yaml"); err != nil {
			t.Errorf("heloguard validate as the user heloguard: %v\n%s", err, out)
		}
	})

	// Installed again over itself (as an upgrade runs the scripts): an edited
	// conffile is kept, and the postinst copes with what it made before.
	t.Run("reinstall-keeps-edited-config", func(t *testing.T) {
		const conf = "/etc/heloguard/heloguard.yaml"
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(b), "\nmode: enforce\n", "\nmode: monitor # edited by the admin\n", 1)
		if edited == string(b) {
			t.Fatalf("%s has no line mode: enforce", conf)
		}
		if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("dpkg -i again:\n%s", mustRun(t, "dpkg", "-i", deb))
		if b, _ := os.ReadFile(conf); string(b) != edited {
			t.Errorf("the edited %s was replaced by dpkg -i", conf)
		}
		if s := pkgStatus(); s != "install ok installed" {
			t.Errorf("after the second dpkg -i the status is %q", s)
		}
		if out, err := run(t, "/usr/sbin/heloguard", "validate", "--config", conf); err != nil || !strings.Contains(out, "mode monitor") {
			t.Errorf("the edited config: %v %s", err, out)
		}
	})

	// dpkg -r: the program goes, the conffiles and the user stay.
	t.Logf("dpkg -r:\n%s", mustRun(t, "dpkg", "-r", "heloguard"))
	t.Run("removed", func(t *testing.T) {
		if s := pkgStatus(); s != "deinstall ok config-files" {
			t.Errorf("after dpkg -r the status is %q, want deinstall ok config-files", s)
		}
		for _, p := range []string{"/usr/sbin/heloguard", "/lib/systemd/system/heloguard.service", "/usr/share/doc/heloguard", "/usr/share/man/man8/heloguard.8.gz"} {
			if exists(p) {
				t.Errorf("%s is still there after dpkg -r", p)
			}
		}
		for _, p := range []string{"/etc/heloguard/heloguard.yaml", "/etc/logrotate.d/heloguard"} {
			if !exists(p) {
				t.Errorf("the conffile %s is gone after dpkg -r (it stays until purge)", p)
			}
		}
		if _, err := user.Lookup("heloguard"); err != nil {
			t.Errorf("the heloguard user is gone after dpkg -r")
		}
	})

	// dpkg -P: nothing is left but the user and group.
	t.Logf("dpkg -P:\n%s", mustRun(t, "dpkg", "-P", "heloguard"))
	t.Run("purged", func(t *testing.T) {
		if s := pkgStatus(); s != "" && !strings.Contains(s, "not-installed") {
			t.Errorf("after dpkg -P the status is %q", s)
		}
		if after := footprint(); !slices.Equal(after, before) {
			t.Errorf("left after the purge: files named heloguard before the install\n  %v\nafter the purge\n  %v", before, after)
		}
		for _, p := range ownPaths {
			if exists(p) {
				t.Errorf("%s is left after the purge", p)
			}
		}
		if _, err := user.Lookup("heloguard"); err != nil {
			t.Errorf("the heloguard user is gone after the purge: Debian keeps it (files it owned may remain)")
		}
		if !userExisted {
			t.Logf("the heloguard user stays after the purge, as Debian wants; the test's cleanup deletes it")
		}
	})
}
