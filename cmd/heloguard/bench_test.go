package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/loadgen"
)

// The load generator sends nothing off loopback.
func TestBenchRefusesOffLoopback(t *testing.T) {
	for _, spec := range []string{"far=inet:192.0.2.1:8894", "far=inet:[2001:db8::1]:8894", "far=inet:0.0.0.0:8894"} {
		code, _, errs := runCmd("bench", "--target", spec)
		if code != exitUsage || !strings.Contains(errs, "is not a loopback address (127.0.0.0/8 or ::1)") {
			t.Errorf("bench --target %s: exit %d\n%s", spec, code, errs)
		}
	}
	code, _, errs := runCmd("bench-milter", "--listen", "inet:10.1.2.3:8894")
	if code != exitUsage || !strings.Contains(errs, "not a loopback address") {
		t.Errorf("bench-milter --listen inet:10.1.2.3:8894: exit %d\n%s", code, errs)
	}
}

// refSocket serves a do-nothing reference milter for the test.
func refSocket(t *testing.T, name string, o loadgen.RefOptions) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), name+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := loadgen.NewRefServer(o)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix:" + sock
}

// With --target, the bench loads the milters named, interleaved, and
// reports their medians and the ratios to noop-same.
func TestBenchTargets(t *testing.T) {
	same := loadgen.RefOptions{Version: 6, Actions: loadgen.AddHeaders, Protocol: loadgen.NRHeader}
	fast := same
	fast.Protocol |= loadgen.NoHeaders
	args := []string{"bench", "--target", "other=" + refSocket(t, "other", fast), "--target", "noop-same=" + refSocket(t, "same", same),
		"--sessions", "60", "--workers", "3", "--rounds", "2", "--warmup", "0", "--headers", "4,20", "--cases", "office365,no-ptr"}
	code, out, errs := runCmd(args...)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^heloguard bench: .+, \d+ cores, go`),
		regexp.MustCompile(`(?m)^  noop-same +v6 actions ADDHDRS protocol NR_HDR$`),
		regexp.MustCompile(`(?m)^  other +v6 actions ADDHDRS protocol NOHDRS\|NR_HDR$`),
		regexp.MustCompile(`(?m)^4 +other +\d+ +\d\.\d\d +- `),
		regexp.MustCompile(`(?m)^20 +noop-same +\d+ +1\.00 +- +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +1\.00 +([0-9.]+/[0-9.]+ +){6}0 +\d+, -$`),
		regexp.MustCompile(`(?m)^  office365 +accepted 120$`),
		regexp.MustCompile(`(?m)^  errors: none$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the table has no line matching %s:\n%s", want, out)
		}
	}
	if n := strings.Count(errs, "round "); n != 8 {
		t.Errorf("%d progress lines for 8 runs:\n%s", n, errs)
	}
	code, out, errs = runCmd(append(args, "--json")...)
	if code != exitOK {
		t.Fatalf("--json: exit %d\n%s", code, errs)
	}
	var s struct {
		Runs    []map[string]any
		Medians []struct {
			Target     string
			Headers    int
			RateVsSame float64 `json:"rate_vs_same"`
		}
		Targets []struct{ Negotiated struct{ Version int } }
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(s.Runs) != 8 || len(s.Medians) != 4 || s.Medians[1].Target != "noop-same" || s.Medians[1].RateVsSame != 1 || s.Targets[0].Negotiated.Version != 6 {
		t.Errorf("--json: %d runs, medians %+v, targets %+v", len(s.Runs), s.Medians, s.Targets)
	}
	if _, ok := s.Runs[0]["stages"].(map[string]any)["headers"]; !ok {
		t.Errorf("--json: a run has no stages: %v", s.Runs[0])
	}
}

// A milter that cannot be reached is an error before any run.
func TestBenchUnreachableTarget(t *testing.T) {
	code, _, errs := runCmd("bench", "--target", "gone=unix:"+filepath.Join(t.TempDir(), "none.sock"), "--sessions", "1")
	if code != exitFailed || !strings.Contains(errs, "gone (unix:") {
		t.Errorf("exit %d\n%s", code, errs)
	}
}

func TestBenchMilterOptions(t *testing.T) {
	o, err := refOptions(2, "ADDHDRS|SETSYMLIST", "0x300", "connect=j {client_addr};eom=i")
	if err != nil || o.Version != 2 || o.Actions != loadgen.AddHeaders|loadgen.SetSymList || o.Protocol != loadgen.NoUnknown|loadgen.NoData {
		t.Errorf("%+v, %v", o, err)
	}
	for _, bad := range [][4]string{{"7", "0", "0", ""}, {"6", "NOPE", "0", ""}, {"6", "0", "x|y", ""}, {"6", "0", "0", "later=i"}} {
		v := map[string]uint{"7": 7, "6": 6}[bad[0]]
		if _, err := refOptions(v, bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("refOptions(%q) accepted", bad)
		}
	}
}

// The default mode, end to end: the binary built from this tree starts a DNS
// server, heloguard and the two reference milters, loads all three, prints the
// table with no errors, and leaves no process or directory behind.
func TestBenchDefaultMode(t *testing.T) {
	if os.Getenv("HELOGUARD_E2E") != "1" {
		t.Skip("builds heloguard and runs the bench for a few seconds; set HELOGUARD_E2E=1")
	}
	bin := filepath.Join(t.TempDir(), "heloguard")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/heloguard/heloguard/cmd/heloguard").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tmp := t.TempDir()
	cmd := exec.Command(bin, "bench", "--duration", "400ms", "--warmup", "100ms", "--rounds", "1", "--headers", "4,20", "--workers", "4")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out.String(), errs.String())
	}
	t.Logf("bench took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	for _, h := range []string{"4", "20"} {
		for _, target := range []string{"heloguard", "noop-same", "noop-noheaders"} {
			re := regexp.MustCompile(`(?m)^` + h + ` +` + target + ` +[1-9]\d* +.* 0 +\d+, \d+$`)
			if !re.MatchString(out.String()) {
				t.Errorf("no row for %s at %s headers with no errors and both CPU figures:\n%s", target, h, out.String())
			}
		}
	}
	for _, want := range []string{"  cable-modem     refused 550 at rcpt", "  office365       accepted", "insert header", "heloguard (" + bin + ") negotiated v"} {
		if !strings.Contains(out.String()+errs.String(), want) {
			t.Errorf("no %q in the output", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "heloguard-bench-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if ps, err := exec.Command("pgrep", "-f", tmp).Output(); err == nil && len(ps) > 0 {
		t.Errorf("processes left running: %s", ps)
	}
}
