package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
)

// logLine is the part of a decision log line that replay needs.
type logLine struct {
	Msg      string          `json:"msg"`
	Time     string          `json:"time"`
	ClientIP string          `json:"client_ip"`
	Helo     string          `json:"helo"`
	Rule     string          `json:"rule"`
	Action   policy.Action   `json:"action"`
	Trusted  bool            `json:"trusted"`
	Stage    string          `json:"stage"`      // where a refusal was delivered
	Decided  string          `json:"decided_at"` // "connect": decided from reverse DNS alone, before any HELO
	Evidence policy.Evidence `json:"evidence"`
}

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("replay", "replay [--config FILE] LOG", stderr)
	cfgPath := fs.String("config", "", "config `file` with the rules to replay against (default: built-in rules)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	f, err := os.Open(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "heloguard replay: %v\n", err)
		return exitUsage
	}
	defer f.Close()
	eng := policy.New(cfg.PolicyOptions(nil)) // Judge needs no DNS
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	total, changed, skipped, lineNo := 0, 0, 0, 0
	for sc.Scan() {
		lineNo++
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "decision" || l.Trusted {
			continue
		}
		ip, err := netip.ParseAddr(l.ClientIP)
		if err != nil {
			continue
		}
		if l.Rule == policy.RuleTimeout { // the evidence was never completed
			skipped++
			continue
		}
		total++
		var d policy.Decision
		if l.Decided == "connect" || l.Stage == "connect" {
			// Decided at connect from reverse DNS alone (reject_at: connect):
			// re-decide it the same way, not as a client that sent no HELO.
			var ok bool
			d, ok = eng.JudgeEarly(ip, policy.Reverse{IPRev: l.Evidence.IPRev, Names: l.Evidence.PTR, Confirmed: l.Evidence.PTRConfirmed})
			if !ok {
				changed++
				fmt.Fprintf(stdout, "line %d %s %s HELO %q: %s (%s) -> undecided at connect (waits for the HELO)\n", lineNo, l.Time, ip, l.Helo, l.Action, l.Rule)
				continue
			}
		} else {
			d = eng.Judge(ip, policy.ParseHelo(l.Helo), l.Evidence)
		}
		if d.Action != l.Action || d.Rule != l.Rule {
			changed++
			fmt.Fprintf(stdout, "line %d %s %s HELO %q: %s (%s) -> %s (%s)\n", lineNo, l.Time, ip, l.Helo, l.Action, l.Rule, d.Action, d.Rule)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "heloguard replay: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%d decisions replayed, %d would change", total, changed)
	if skipped > 0 {
		fmt.Fprintf(stdout, "; %d skipped (%s: the evidence is incomplete)", skipped, policy.RuleTimeout)
	}
	fmt.Fprintln(stdout)
	return exitOK
}
