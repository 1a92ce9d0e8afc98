package main

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/deploy"
)

// The manual pages are generated from the flag sets and the example config;
// these tests read the flags and the commands independently (the -h text, the
// usage) and the keys from the config parser, and fail when a page lacks one.

func manPage(t *testing.T, section string) string {
	t.Helper()
	code, out, errs := runCmd("man", section)
	if code != 0 || errs != "" {
		t.Fatalf("heloguard man %s: exit %d\n%s", section, code, errs)
	}
	return out
}

var usageCmdRE = regexp.MustCompile(`(?m)^  heloguard \[?([a-z-]+)`)

func TestManCommands(t *testing.T) {
	var usageCmds, manCmds []string
	for _, m := range usageCmdRE.FindAllStringSubmatch(usage, -1) {
		usageCmds = append(usageCmds, m[1])
	}
	usageCmds = slices.Compact(usageCmds) // a command may take two usage lines (replay, replay --summary)
	for _, c := range manCommands {
		manCmds = append(manCmds, c.name)
	}
	if !slices.Equal(usageCmds, manCmds) {
		t.Errorf("the usage lists the commands %v; heloguard(8) describes %v", usageCmds, manCmds)
	}
	page := manPage(t, "8")
	for _, c := range manCmds {
		if !strings.Contains(page, ".SS "+c+"\n") {
			t.Errorf("heloguard(8) has no subsection for %s", c)
		}
	}
}

// flagLineRE finds a flag in flag.PrintDefaults' output.
var flagLineRE = regexp.MustCompile(`(?m)^  -([a-zA-Z0-9-]+)`)

func TestManFlags(t *testing.T) {
	page := manPage(t, "8")
	n := 0
	for _, c := range manCommands {
		code, _, help := runCmd(c.name, "-h")
		if code != 0 {
			t.Fatalf("%s -h: exit %d", c.name, code)
		}
		syn := strings.TrimPrefix(strings.SplitN(help, "\n", 2)[0], "usage: heloguard ")
		if !strings.Contains(page, ".B heloguard\n"+roff(syn)+"\n") {
			t.Errorf("heloguard(8) lacks the synopsis %q", syn)
		}
		for _, m := range flagLineRE.FindAllStringSubmatch(help, -1) {
			n++
			dash := `\-\-`
			if len(m[1]) == 1 {
				dash = `\-`
			}
			if !regexp.MustCompile(`(?m)^\.BI? ` + regexp.QuoteMeta(dash+roff(m[1])) + `( |$)`).MatchString(page) {
				t.Errorf("heloguard(8) does not describe %s's flag -%s", c.name, m[1])
			}
		}
	}
	if n < 12 {
		t.Errorf("found only %d flags in the commands' -h", n)
	}
}

func TestManConfigKeys(t *testing.T) {
	page := manPage(t, "5")
	for _, k := range config.Keys() {
		if !strings.Contains(page, ".TP\n.B "+roff(k)+"\n") {
			t.Errorf("heloguard.yaml(5) has no entry for the config key %s: document it in deploy/heloguard.yaml", k)
		}
	}
	// Each entry is a key the parser takes (no typo'd or stale key documented).
	keys := config.Keys()
	for _, m := range regexp.MustCompile(`(?m)^\.TP\n\.B (\S+)\n`).FindAllStringSubmatch(page, -1) {
		k := strings.ReplaceAll(m[1], `\-`, "-")
		if !slices.Contains(keys, k) {
			t.Errorf("heloguard.yaml(5) documents %s, which is not a config key", k)
		}
	}
	// The defaults are the example's values, and one spot check of the text.
	if !strings.Contains(page, ".B decision_timeout\nBudget for one decision's DNS work.") || !strings.Contains(page, "Default: 8s\n") {
		t.Errorf("heloguard.yaml(5) lacks decision_timeout's text or default")
	}
	if len(deploy.ExampleConfig) == 0 {
		t.Fatal("deploy.ExampleConfig is empty")
	}
}

// TestManGroff formats both pages with groff and man's own checks: no warning.
func TestManGroff(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed (Debian: groff-base)")
	}
	for _, section := range []string{"8", "5"} {
		cmd := exec.Command(groff, "-man", "-ww", "-z", "-Tutf8")
		cmd.Stdin = strings.NewReader(manPage(t, section))
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww on heloguard man %s: %v\n%s", section, err, out)
		}
	}
}

func TestManUsage(t *testing.T) {
	if code, _, errs := runCmd("man"); code != 2 || !strings.Contains(errs, "heloguard man 8|5") {
		t.Errorf("man without a section: exit %d %s", code, errs)
	}
	if _, out, _ := runCmd("help"); strings.Contains(out, "heloguard man") {
		t.Errorf("the man command is for the package build, not for the usage")
	}
}
