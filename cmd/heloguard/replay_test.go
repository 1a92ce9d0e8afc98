package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// genLog writes n decision records with varied evidence, decided by the
// built-in rules (the config that "produced" the log), and returns how many
// each rule decided.
func genLog(t testing.TB, path string, n int) map[string]int {
	t.Helper()
	eng := policy.New(config.Default().PolicyOptions(nil))
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vals []string) string { return vals[rng.IntN(len(vals))] }
	var fields = map[string]*policy.Field{}
	for _, f := range policy.Fields() {
		f := f
		fields[f.Name] = &f
	}
	helos := []string{"mail.example.com", "NAM02-BL2-obe.outbound.protection.outlook.com", "localhost", "[192.0.2.9]", "", "mx.receiver.example", "c-73-10-20-30.hsd1.ca.comcast.example"}
	ptrs := []string{"mail.example.com", "mta-70-34-223.sparkpostmail.com", "c-73-10-20-30.hsd1.ca.comcast.example", "vps66.cheap-hosting.example"}
	byRule := map[string]int{}
	var b bytes.Buffer
	start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		var ev policy.Evidence
		for name, f := range fields {
			switch p := f.Ref(&ev).(type) {
			case *string:
				*p = pick(f.Values)
			case *bool:
				*p = rng.IntN(3) == 0
			case *[]string:
				if name == "ptr" {
					*p = []string{pick(ptrs)}
				}
			}
		}
		if ev.IPRev == policy.IPRevPass {
			ev.PTRConfirmed = ev.PTR
		} else {
			ev.PTRConfirmed = []string{}
		}
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(250) + 1)})
		helo := pick(helos)
		d := eng.Judge(ip, policy.ParseHelo(helo), ev)
		r := record.FromDecision(d, ip)
		r.Time, r.Mode, r.ClientPort = start.Add(time.Duration(i)*time.Second), record.ModeEnforce, 40000+i%20000
		if d.Action.Refuses() {
			r.Stage = "rcpt"
		}
		byRule[string(d.Action)+" "+d.Rule]++
		b.Write(r.AppendJSON(nil))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return byRule
}

func replayJSON(t *testing.T, args ...string) whatIf {
	t.Helper()
	code, out, errs := runCmd(append([]string{"replay", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("replay %v: exit %d: %s", args, code, errs)
	}
	var w whatIf
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("replay --json: %v\n%s", err, out)
	}
	return w
}

func writeConfig(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A generated log of 100k decisions: replayed with the rules that made it,
// nothing changes; with a known change, the table has exactly the counts the
// generation implies.
func TestReplayGeneratedLog(t *testing.T) {
	const n = 100_000
	dir := t.TempDir()
	logPath := filepath.Join(dir, "decisions.log")
	byRule := genLog(t, logPath, n)
	if len(byRule) < 10 {
		t.Fatalf("the generated log exercises only %d rules: %v", len(byRule), byRule)
	}

	same := replayJSON(t, logPath)
	if same.Read != n || same.Lines != n || same.Changed != 0 || same.RuleOnly != 0 || len(same.Transitions) != 0 || len(same.Skipped) != 0 {
		t.Errorf("same rules: %+v", same)
	}

	// helo-spf-pass turned into a reject: every decision it made changes, and
	// nothing else does.
	cfg := writeConfig(t, dir, "strict.yaml", "overrides:\n  helo-spf-pass: {action: reject}\n")
	w := replayJSON(t, "--config", cfg, logPath)
	want := byRule["accept helo-spf-pass"]
	if want == 0 {
		t.Fatal("the generated log has no helo-spf-pass decision")
	}
	if w.Changed != want || w.RuleOnly != 0 || len(w.Transitions) != 1 {
		t.Fatalf("helo-spf-pass -> reject: changed %d, want %d; %+v", w.Changed, want, w.Transitions)
	}
	tr := w.Transitions[0]
	if tr.From != (verdict{policy.ActionAccept, "helo-spf-pass", false}) || tr.To != (verdict{policy.ActionReject, "helo-spf-pass", true}) ||
		tr.Count != want || tr.Kind != "verdict" || len(tr.Examples) != maxExamples {
		t.Errorf("transition %+v", tr)
	}

	// mode: monitor: the decisions stay, the refusals are no longer enforced.
	mon := writeConfig(t, dir, "monitor.yaml", "mode: monitor\n")
	w = replayJSON(t, "--config", mon, logPath)
	refused := 0
	for k, c := range byRule {
		if strings.HasPrefix(k, "reject ") || strings.HasPrefix(k, "tempfail ") {
			refused += c
		}
	}
	total := 0
	for _, tr := range w.Transitions {
		total += tr.Count
		if tr.From.Action != tr.To.Action || tr.From.Rule != tr.To.Rule || !tr.From.Enforced || tr.To.Enforced {
			t.Errorf("monitor mode: transition %+v", tr)
		}
		if tr.Count != byRule[string(tr.From.Action)+" "+tr.From.Rule] {
			t.Errorf("monitor mode: %s: %d, want %d", tr.From, tr.Count, byRule[string(tr.From.Action)+" "+tr.From.Rule])
		}
	}
	if w.Changed != refused || total != refused {
		t.Errorf("monitor mode: %d changed (%d in transitions), want every refusal: %d", w.Changed, total, refused)
	}

	// A monitor-only override of one rule is a verdict change too.
	ov := writeConfig(t, dir, "ov.yaml", "overrides:\n  no-ptr: {monitor: true}\n")
	w = replayJSON(t, "--config", ov, logPath)
	if w.Changed != byRule["reject no-ptr"] || len(w.Transitions) != 1 {
		t.Errorf("no-ptr monitor-only: changed %d, want %d: %+v", w.Changed, byRule["reject no-ptr"], w.Transitions)
	}
}

// Inputs: gzip, standard input, journald's JSON export and short format, and
// lines that are no records, every one counted.
func TestReplayInputs(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "decisions.log")
	genLog(t, plain, 50)
	data, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	gzPath := filepath.Join(dir, "decisions.log.1.gz")
	if err := os.WriteFile(gzPath, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// journalctl -o json: MESSAGE as a string, or as bytes when not UTF-8.
	var jb strings.Builder
	for i, l := range lines {
		var msg any = l
		if i%2 == 1 {
			b := []int{}
			for _, c := range []byte(l) {
				b = append(b, int(c))
			}
			msg = b
		}
		m, _ := json.Marshal(map[string]any{"__CURSOR": fmt.Sprintf("s=%d", i), "_SYSTEMD_UNIT": "heloguard.service", "MESSAGE": msg})
		jb.Write(m)
		jb.WriteByte('\n')
	}
	jb.WriteString(`{"__CURSOR":"s=x","MESSAGE":"{\"time\":\"2026-11-23T00:00:00Z\",\"level\":\"INFO\",\"msg\":\"listening\"}"}` + "\n")
	jsonPath := filepath.Join(dir, "journal.json")
	os.WriteFile(jsonPath, []byte(jb.String()), 0o644)

	// journalctl's short format: a syslog prefix before each record.
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString("Nov 23 00:00:00 mx heloguard[812]: " + l + "\n")
	}
	sb.WriteString("Nov 23 00:00:01 mx systemd[1]: Started heloguard.service.\n")
	shortPath := filepath.Join(dir, "journal.short")
	os.WriteFile(shortPath, []byte(sb.String()), 0o644)

	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		skip  map[string]int
	}{
		{"gzip", []string{gzPath}, "", nil},
		{"stdin", []string{"-"}, string(data), nil},
		{"journalctl -o json", []string{jsonPath}, "", map[string]int{skipNotDecision: 1}},
		{"journalctl short", []string{shortPath}, "", map[string]int{skipNotDecision: 1}},
		{"two files", []string{plain, gzPath}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"replay", "--json"}, tc.args...), strings.NewReader(tc.stdin), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var w whatIf
			if err := json.Unmarshal(out.Bytes(), &w); err != nil {
				t.Fatal(err)
			}
			wantRead := len(lines) * len(tc.args)
			if w.Read != wantRead || w.Changed != 0 {
				t.Errorf("read %d, want %d; changed %d", w.Read, wantRead, w.Changed)
			}
			if len(tc.skip) == 0 && len(w.Skipped) > 0 || len(tc.skip) > 0 && fmt.Sprint(w.Skipped) != fmt.Sprint(tc.skip) {
				t.Errorf("skipped %v, want %v", w.Skipped, tc.skip)
			}
		})
	}
}

func TestReplaySummary(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "decisions.log")
	byRule := genLog(t, logPath, 2000)
	code, out, errs := runCmd("replay", "--summary", "--json", logPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var s summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Decisions != 2000 || len(s.ByRule) != len(byRule) {
		t.Fatalf("summary %+v", s)
	}
	refused := 0
	for _, c := range s.ByRule {
		if c.Count != byRule[c.Key] {
			t.Errorf("%s: %d, want %d", c.Key, c.Count, byRule[c.Key])
		}
		if strings.HasPrefix(c.Key, "reject ") || strings.HasPrefix(c.Key, "tempfail ") {
			refused += c.Count
		}
	}
	if s.Refused != refused || len(s.RefusedDomains) == 0 || len(s.RefusedPTRs) == 0 || s.DNSTempErrors == 0 {
		t.Errorf("refused %d (want %d), domains %v, ptrs %v, temperrors %d", s.Refused, refused, s.RefusedDomains, s.RefusedPTRs, s.DNSTempErrors)
	}
	code, out, _ = runCmd("replay", "--summary", logPath)
	if code != 0 || !strings.Contains(out, "2000 decisions;") || !strings.Contains(out, "most refused organizational domains") {
		t.Errorf("text summary: exit %d\n%s", code, out)
	}
}

// BenchmarkReplay measures replay's lines/s over a generated 100k-line log
// (BENCHMARKS.md; the target is 200k lines/s on 2 cores).
func BenchmarkReplay(b *testing.B) {
	const n = 100_000
	logPath := filepath.Join(b.TempDir(), "decisions.log")
	genLog(b, logPath, n)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out, errb bytes.Buffer
		if code := run([]string{"replay", logPath}, strings.NewReader(""), &out, &errb); code != 0 {
			b.Fatal(errb.String())
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	// CPU time per line: unlike lines/s, not skewed by other work on the machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*b.N), "cpu-ns/line")
}
