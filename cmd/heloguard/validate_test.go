package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate refuses what serve would refuse on this host, with the key's
// position, and serve refuses it the same way.
func TestValidateCatchesWhatServeRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"log in a missing directory", "log: " + filepath.Join(dir, "nope", "decisions.log") + "\n",
			":1:6: log: directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"unknown socket group", "socket_group: no-such-group-hg\n",
			`:1:15: socket_group: no group "no-such-group-hg" on this host`},
		{"socket in a missing directory", "listen: [unix:" + filepath.Join(dir, "nope", "hg.sock") + "]\n",
			":1:9: listen unix:" + filepath.Join(dir, "nope", "hg.sock") + ": directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(cfg, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd("validate", "--config", cfg)
			if code != exitUsage || !strings.Contains(errs, cfg+tc.want) || strings.Contains(out, ": ok") {
				t.Errorf("validate: exit %d\nstdout %s\nstderr %s\nwant %q", code, out, errs, cfg+tc.want)
			}
			code, _, errs = runCmd("serve", "--config", cfg)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Errorf("serve: exit %d, stderr %s", code, errs)
			}
		})
	}
}

func TestValidateWarnings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml string
		mode       os.FileMode
		want       string
	}{
		{"no rules", "rules: []\n", 0o644, "no rule refuses anything"},
		{"monitor-only refusals", "rules:\n  - {name: r, action: reject, monitor: true}\n", 0o644, "no rule refuses anything"},
		{"accept-all extra rule", "extra_rules:\n  - {name: everyone, action: accept}\n", 0o644, "rule everyone ("},
		{"open listener", "listen: [\"inet:0.0.0.0:8894\"]\n", 0o644, "listen inet:0.0.0.0:8894 is not a loopback address"},
		{"world-writable socket", "socket_mode: \"0666\"\n", 0o644, "socket_mode 0666 lets every local user"},
		{"world-writable config", "mode: enforce\n", 0o666, "is writable by every user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(cfg, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(cfg, tc.mode); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd("validate", "--config", cfg)
			if code != exitOK || !strings.Contains(out, tc.want) || !strings.Contains(out, ": ok") {
				t.Errorf("exit %d\nstdout %s\nstderr %s\nwant a warning with %q", code, out, errs, tc.want)
			}
		})
	}
	// The shipped defaults warn about nothing.
	if code, out, _ := runCmd("validate"); code != exitOK || strings.Contains(out, "warning") {
		t.Errorf("defaults: exit %d\n%s", code, out)
	}
}
