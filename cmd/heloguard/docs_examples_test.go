package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy/scenario"
)

// Every command and config example in README.md and docs/*.md is run by this
// test or checked against a file that is tested:
//
//   - a ```yaml block is a whole config and must pass config.Parse; a block whose
//     first line is "# prometheus.yml" is Prometheus's config and must be
//     YAML with scrape_configs; one whose first line is "# scenario file" is a
//     scenario file and must pass
//     scenario.Load instead.
//   - a ```sh block is split into commands (on unquoted |, && and ;, after
//     joining continued lines, dropping comments, sudo and VAR=value prefixes):
//   - heloguard (or ./heloguard): the command must exist and every flag given
//     must be in its flag set (heloguard CMD -h run through run(), parsed with
//     the command's own parser). validate and test are also run, with
//     /etc/heloguard/heloguard.yaml read as deploy/heloguard.yaml (the file
//     the package installs there), and must exit 0.
//   - make: the target must be a rule of the Makefile.
//   - go test: the package directory must exist, and the tests or fuzz targets
//     that -run or -fuzz name must be defined in it.
//   - sed: run in the repository's top directory (it only reads there); it
//     must succeed and print something.
//   - anything else (dpkg, install, adduser, systemctl, ...): some line of a
//     tested file (testedFiles) must hold the program and its first argument,
//     as words ("dpkg -i", or "dpkg", "-i" in Go), unless notRunHere lists the
//     command with the reason no test here can run it.

// testedFiles are the files whose commands the tests run: the Debian package's
// build script, maintainer scripts and test, the daemon and Postfix tests, and
// the test setup.
var testedFiles = []string{
	"deploy/deb/build.sh", "deploy/deb/postinst", "deploy/deb/postrm", "deploy/deb/deb_test.go",
	"deploy/daemon/daemon_test.go", "deploy/postfix/postfixconfig_test.go", "deploy/postfix/postfix_test.go",
	"deploy/install-test-deps.sh", "Makefile",
}

// notRunHere are commands of the docs that no test can run on the test
// machine, and why.
var notRunHere = map[string]string{
	"systemctl enable":  "no systemd runs in the test machine; deploy/deb checks the unit with systemd-analyze and that postinst enables it",
	"systemctl restart": "no systemd runs in the test machine; deploy/daemon drives the daemon's start and signals directly",
	"systemctl reload":  "no systemd runs in the test machine; the unit's ExecReload is SIGHUP, which deploy/daemon sends",
	"postfix check":     "deploy/postfix/postfixconfig_test.go runs it as pf.run(\"check\")",
	"postfix reload":    "deploy/postfix starts its own Postfix instance for each test rather than reloading one",
	"tee /etc/systemd/system/heloguard.service": "writes the unit into the system",
	"grep -E": "filters the output of the go test before it in the pipe",
	"sh":      "runs the postconf commands heloguard postfix-config prints, which deploy/postfix/postfixconfig_test.go runs",
}

type block struct {
	file string
	line int // of the opening fence
	lang string
	text string
}

var fenceRE = regexp.MustCompile("^( *)```([a-z]*)\\s*$")

// docBlocks are the fenced blocks of README.md and docs/*.md.
func docBlocks(t *testing.T) []block {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	var blocks []block
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../../")
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			m := fenceRE.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			indent, start := m[1], i
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			if i == len(lines) {
				t.Fatalf("%s:%d: the block is not closed", name, start+1)
			}
			blocks = append(blocks, block{name, start + 1, m[2], strings.Join(body, "\n") + "\n"})
		}
	}
	return blocks
}

func TestDocsYAMLExamples(t *testing.T) {
	n := 0
	for _, b := range docBlocks(t) {
		if b.lang != "yaml" {
			continue
		}
		n++
		where := b.file + ":" + itoa(b.line)
		if strings.HasPrefix(b.text, "# scenario file\n") {
			path := filepath.Join(t.TempDir(), "example.yaml")
			if err := os.WriteFile(path, []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := scenario.Load(path); err != nil {
				t.Errorf("%s: the scenario example does not load: %v", where, err)
			}
			continue
		}
		if strings.HasPrefix(b.text, "# prometheus.yml\n") {
			// Prometheus's own config: deploy/prometheus runs one of the same
			// shape; here it must at least be YAML with a scrape job.
			var m map[string]any
			if err := yaml.Unmarshal([]byte(b.text), &m); err != nil || m["scrape_configs"] == nil {
				t.Errorf("%s: the Prometheus example is not a scrape config: %v", where, err)
			}
			continue
		}
		if _, err := config.Parse(where, []byte(b.text)); err != nil {
			t.Errorf("%s: the config example does not parse:\n%v\n%s", where, err, b.text)
		}
	}
	if n < 5 {
		t.Errorf("found only %d yaml examples in README.md and docs/", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// shellCommands splits a block of sh into commands, each a list of words.
func shellCommands(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	text = regexp.MustCompile(`\|\s*\n`).ReplaceAllString(text, "| ")
	var cmds [][]string
	for _, line := range strings.Split(text, "\n") {
		var words []string
		var w strings.Builder
		inWord := false
		var quote rune
		flushWord := func() {
			if inWord {
				words = append(words, w.String())
			}
			w.Reset()
			inWord = false
		}
		flushCmd := func() {
			flushWord()
			if len(words) > 0 {
				cmds = append(cmds, words)
			}
			words = nil
		}
		rs := []rune(line)
	scan:
		for i := 0; i < len(rs); i++ {
			c := rs[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				} else {
					w.WriteRune(c)
				}
			case c == '\'' || c == '"':
				quote, inWord = c, true
			case c == '#' && !inWord:
				break scan
			case c == ' ' || c == '\t':
				flushWord()
			case c == '|' || c == ';':
				flushCmd()
			case c == '&' && i+1 < len(rs) && rs[i+1] == '&':
				flushCmd()
				i++
			case c == '>':
				break scan // a redirection ends what we check (>/dev/null)
			default:
				w.WriteRune(c)
				inWord = true
			}
		}
		flushCmd()
	}
	for i, c := range cmds {
		for len(c) > 0 && (c[0] == "sudo" || regexp.MustCompile(`^[A-Z_0-9]+=`).MatchString(c[0])) {
			c = c[1:]
		}
		cmds[i] = c
	}
	return cmds
}

func TestDocsShellExamples(t *testing.T) {
	tested := map[string][]string{} // file: its lines
	for _, f := range testedFiles {
		data, err := os.ReadFile("../../" + f)
		if err != nil {
			t.Fatal(err)
		}
		tested[f] = strings.Split(string(data), "\n")
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range docBlocks(t) {
		if b.lang != "sh" {
			continue
		}
		where := b.file + ":" + itoa(b.line)
		for _, c := range shellCommands(b.text) {
			if len(c) == 0 {
				continue
			}
			n++
			switch c[0] {
			case "heloguard", "./heloguard":
				checkHeloguard(t, where, c[1:])
			case "make":
				for _, target := range c[1:] {
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
						t.Errorf("%s: make %s: the Makefile has no such target", where, target)
					}
				}
			case "go":
				checkGoTest(t, where, c)
			case "sed":
				cmd := exec.Command("sed", c[1:]...)
				cmd.Dir = "../.."
				if out, err := cmd.Output(); err != nil || len(out) == 0 {
					t.Errorf("%s: %s: %v", where, strings.Join(c, " "), err)
				}
			default:
				key := c[0]
				if len(c) > 1 {
					key += " " + c[1]
				}
				if _, ok := notRunHere[key]; ok {
					continue
				}
				if !inTestedFile(tested, c) && !inTestedFileWithRepoFile(tested, c) {
					t.Errorf("%s: %q: no tested file (%v) runs %q", where, strings.Join(c, " "), testedFiles, key)
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d commands in the sh examples of README.md and docs/", n)
	}
}

// inTestedFile says whether a line of a tested file holds the command's
// program and its first argument as words.
func inTestedFile(tested map[string][]string, c []string) bool {
	word := func(s string) *regexp.Regexp {
		return regexp.MustCompile(`(^|[\s"'(])` + regexp.QuoteMeta(s) + `($|[\s"',)])`)
	}
	prog := word(c[0])
	var arg *regexp.Regexp
	if len(c) > 1 {
		arg = word(c[1])
	}
	for _, lines := range tested {
		for _, l := range lines {
			if prog.MatchString(l) && (arg == nil || arg.MatchString(l)) {
				return true
			}
		}
	}
	return false
}

// inTestedFileWithRepoFile says whether a line of a tested file holds the
// command's program and a file of the repository the command is given
// (install -D -m 644 deploy/heloguard.yaml ... and install -m 0644
// deploy/heloguard.yaml ... copy the same file).
func inTestedFileWithRepoFile(tested map[string][]string, c []string) bool {
	for _, a := range c[1:] {
		if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "/") {
			continue
		}
		if fi, err := os.Stat("../../" + a); err == nil && !fi.IsDir() && inTestedFile(tested, []string{c[0], a}) {
			return true
		}
	}
	return false
}

// checkHeloguard checks a heloguard command line of the docs: the command and
// its flags exist; validate and test are run.
func checkHeloguard(t *testing.T, where string, args []string) {
	t.Helper()
	line := "heloguard " + strings.Join(args, " ")
	name := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs, _, err := commandFlags(name)
	if err != nil {
		t.Errorf("%s: %s: %v", where, line, err)
		return
	}
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, args); err != nil {
		t.Errorf("%s: %s: %v", where, line, err)
		return
	}
	var run2 []string
	for _, a := range args {
		a = strings.ReplaceAll(a, "/etc/heloguard/heloguard.yaml", "../../deploy/heloguard.yaml")
		if strings.ContainsAny(a, "*?") {
			m, _ := filepath.Glob("../../" + a)
			if len(m) == 0 {
				t.Errorf("%s: %s: %s matches no file", where, line, a)
			}
			run2 = append(run2, m...)
			continue
		}
		run2 = append(run2, a)
	}
	for _, a := range run2 {
		if strings.HasSuffix(a, ".yaml") {
			if _, err := os.Stat(a); err != nil {
				return // a file of the reader's (heloguard.new.yaml): flags only
			}
		}
	}
	switch name {
	case "validate", "test":
		var out strings.Builder
		if code := run(append([]string{name}, run2...), strings.NewReader(""), &out, &out); code != exitOK {
			t.Errorf("%s: %s: exit %d:\n%s", where, line, code, out.String())
		}
	}
}

// checkGoTest checks a go test line: the package exists and the tests it
// names are defined in it.
func checkGoTest(t *testing.T, where string, c []string) {
	t.Helper()
	line := strings.Join(c, " ")
	if len(c) < 2 || c[1] != "test" {
		t.Errorf("%s: %s: only go test is expected in the docs", where, line)
		return
	}
	var pkg string
	var names []string
	for i := 2; i < len(c); i++ {
		switch {
		case (c[i] == "-run" || c[i] == "-fuzz") && i+1 < len(c):
			i++
			if n := strings.Trim(c[i], "^$"); n != "" {
				names = append(names, n)
			}
		case strings.HasPrefix(c[i], "./"):
			pkg = c[i]
		}
	}
	if pkg == "" {
		t.Errorf("%s: %s: names no package", where, line)
		return
	}
	files, _ := filepath.Glob(filepath.Join("../..", pkg, "*_test.go"))
	if len(files) == 0 {
		t.Errorf("%s: %s: %s has no tests", where, line, pkg)
		return
	}
	for _, n := range names {
		re := regexp.MustCompile(`^func ` + regexp.QuoteMeta(n) + `\(`)
		found := false
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			s := bufio.NewScanner(fh)
			for s.Scan() {
				if re.MatchString(s.Text()) {
					found = true
				}
			}
			fh.Close()
		}
		if !found {
			t.Errorf("%s: %s: no func %s in %s", where, line, n, pkg)
		}
	}
}
