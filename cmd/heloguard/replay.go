package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

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
	total, changed, undetermined, lineNo := 0, 0, 0, 0
	skipped := map[string]int{} // why a line was not re-judged
	for sc.Scan() {
		lineNo++
		l, err := record.Parse(sc.Bytes())
		switch {
		case errors.Is(err, record.ErrNotDecision):
			skipped["not a decision record"]++
			continue
		case err != nil:
			skipped["unreadable"]++
			continue
		case l.Trusted:
			skipped["trusted: no evidence"]++
			continue
		case l.Rule == policy.RuleTimeout: // the evidence was never completed
			skipped[policy.RuleTimeout+": the evidence is incomplete"]++
			continue
		case l.Rule == policy.RuleUnknownClient:
			skipped[policy.RuleUnknownClient+": the MTA gave no client address"]++
			continue
		case !l.ClientIP.IsValid():
			skipped["no client address"]++
			continue
		}
		total++
		ip := l.ClientIP
		d, early, known := judge(eng, l)
		if !known {
			undetermined++
			fmt.Fprintf(stdout, "line %d %s %s HELO %q: %s (%s) -> depends on %s, which the record lacks (logged before it existed)\n",
				lineNo, l.Time.Format(time.RFC3339), ip, l.Helo, l.Action, l.Rule, strings.Join(l.Missing, ", "))
			continue
		}
		if early && d.Rule == "" {
			changed++
			fmt.Fprintf(stdout, "line %d %s %s HELO %q: %s (%s) -> undecided at connect (waits for the HELO)\n", lineNo, l.Time.Format(time.RFC3339), ip, l.Helo, l.Action, l.Rule)
			continue
		}
		if d.Action != l.Action || d.Rule != l.Rule {
			changed++
			fmt.Fprintf(stdout, "line %d %s %s HELO %q: %s (%s) -> %s (%s)\n", lineNo, l.Time.Format(time.RFC3339), ip, l.Helo, l.Action, l.Rule, d.Action, d.Rule)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "heloguard replay: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%d decisions replayed, %d would change", total, changed)
	if undetermined > 0 {
		fmt.Fprintf(stdout, ", %d undetermined (evidence missing from the record)", undetermined)
	}
	fmt.Fprintln(stdout)
	reasons := make([]string, 0, len(skipped))
	for why := range skipped {
		reasons = append(reasons, why)
	}
	sort.Strings(reasons)
	for _, why := range reasons {
		fmt.Fprintf(stdout, "%d lines not replayed: %s\n", skipped[why], why)
	}
	return exitOK
}

// judge re-decides a record: at connect from reverse DNS alone if it was
// decided there (early; Rule "" = the rules now wait for the HELO), else with
// the HELO. Evidence fields the record lacks (it was written before they
// existed) are tried with every value they can take: when the outcome depends
// on them, known is false. Nothing is guessed.
func judge(eng *policy.Engine, l record.Record) (d policy.Decision, early, known bool) {
	early = l.DecidedAt == "connect" || l.Stage == "connect"
	one := func(ev policy.Evidence) policy.Decision {
		if early {
			d, ok := eng.JudgeEarly(l.ClientIP, policy.Reverse{IPRev: ev.IPRev, Names: ev.PTR, Confirmed: ev.PTRConfirmed, PTRSPF: ev.PTRSPF})
			if !ok {
				return policy.Decision{}
			}
			return d
		}
		return eng.Judge(l.ClientIP, policy.ParseHelo(l.Helo), ev)
	}
	variants := []policy.Evidence{l.Evidence}
	for _, name := range l.Missing {
		f, ok := policy.FieldByName(name)
		if !ok || !f.Match {
			continue
		}
		values := f.Values
		if f.Kind == policy.KindBool {
			values = []string{"false", "true"}
		}
		var next []policy.Evidence
		for _, ev := range variants {
			for _, v := range values {
				ev := ev
				switch p := f.Ref(&ev).(type) {
				case *string:
					*p = v
				case *bool:
					*p = v == "true"
				}
				next = append(next, ev)
			}
		}
		variants = next
	}
	d = one(variants[0])
	for _, ev := range variants[1:] {
		if o := one(ev); o.Rule != d.Rule || o.Action != d.Action {
			return d, early, false
		}
	}
	return d, early, true
}
