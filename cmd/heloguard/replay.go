package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// verdict is what became of a client: the action, the rule and whether the
// action was enforced (false for accept, monitor mode, a monitor-only rule).
type verdict struct {
	Action   policy.Action `json:"action"`
	Rule     string        `json:"rule"`
	Enforced bool          `json:"enforced"`
}

func (v verdict) String() string {
	s := string(v.Action) + " by " + v.Rule
	if v.Action != policy.ActionAccept && v.Action != "undecided" && v.Action != "undetermined" && !v.Enforced {
		s += " (not enforced)"
	}
	return s
}

// example is a client of a transition, for the operator to look up.
type example struct {
	IP   string   `json:"ip"`
	Helo string   `json:"helo"`
	PTR  []string `json:"ptr"`
}

// transition is one kind of change and how often it happened.
type transition struct {
	From     verdict   `json:"from"`
	To       verdict   `json:"to"`
	Kind     string    `json:"kind"` // "verdict": action or enforcement changes; "rule": only the deciding rule does; "undetermined": the record lacks evidence the new verdict depends on
	Count    int       `json:"count"`
	Examples []example `json:"examples"`
}

// whatIf is replay's report: the JSON of --json, and the table without it.
type whatIf struct {
	Lines        int            `json:"lines"`        // lines read
	Read         int            `json:"read"`         // decision records re-judged
	Skipped      map[string]int `json:"skipped"`      // lines not re-judged, by reason
	Changed      int            `json:"changed"`      // verdict changed
	RuleOnly     int            `json:"rule_only"`    // only the deciding rule changed
	Undetermined int            `json:"undetermined"` // the verdict depends on evidence the record lacks
	Transitions  []transition   `json:"transitions"`
}

const maxExamples = 3

func cmdReplay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("replay", "replay [--config FILE] [--json] [--summary] LOG... (- for standard input)", stderr)
	cfgPath := fs.String("config", "", "config `file` with the rules to replay against (default: built-in rules)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	summary := fs.Bool("summary", false, "summarize the log instead (decisions by rule, most refused domains, DNS failures); needs no config")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	if *summary {
		return runSummary(pos, *asJSON, stdin, stdout, stderr)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	eng := policy.New(cfg.PolicyOptions(nil)) // Judge needs no DNS
	rep := &whatIf{Skipped: map[string]int{}}
	byKey := map[[2]verdict]*transition{}
	progress := progressTo(stderr)
	rep.Lines, err = logLines(pos, stdin, rep.Skipped, progress, func(l *record.Record) error {
		replayOne(eng, cfg, l, rep, byKey)
		return nil
	})
	if progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "heloguard replay: %v\n", err)
		return exitUsage
	}
	for _, t := range byKey {
		rep.Transitions = append(rep.Transitions, *t)
	}
	kindOrder := map[string]int{"verdict": 0, "rule": 1, "undetermined": 2}
	sort.Slice(rep.Transitions, func(i, j int) bool {
		a, b := rep.Transitions[i], rep.Transitions[j]
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.From.String()+a.To.String() < b.From.String()+b.To.String()
	})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return exitOK
	}
	printWhatIf(stdout, rep)
	return exitOK
}

// replayOne re-judges one record and counts what changed.
func replayOne(eng *policy.Engine, cfg *config.Config, l *record.Record, rep *whatIf, byKey map[[2]verdict]*transition) {
	switch {
	case l.Trusted:
		rep.Skipped["trusted: no evidence"]++
		return
	case l.Rule == policy.RuleTimeout:
		rep.Skipped[policy.RuleTimeout+": the evidence is incomplete"]++
		return
	case l.Rule == policy.RuleUnknownClient:
		rep.Skipped[policy.RuleUnknownClient+": the MTA gave no client address"]++
		return
	case l.Rule == policy.RuleBrokenResolver:
		rep.Skipped[policy.RuleBrokenResolver+": decided while the resolver looked broken"]++
		return
	case l.Rule == policy.RulePrivateClient:
		rep.Skipped[policy.RulePrivateClient+": judged without DNS (an address public DNS cannot speak for)"]++
		return
	case !l.ClientIP.IsValid():
		rep.Skipped["no client address"]++
		return
	}
	rep.Read++
	d, early, known := judge(eng, *l)
	from := verdict{Action: l.Action, Rule: l.Rule, Enforced: l.Action != policy.ActionAccept && l.Mode == record.ModeEnforce}
	to := verdict{Action: d.Action, Rule: d.Rule, Enforced: d.Action != policy.ActionAccept && cfg.Mode == config.ModeEnforce && !d.Monitor}
	if early && d.Rule == "" {
		to = verdict{Action: "undecided", Rule: "(none: at connect the rules now wait for the HELO)"}
	}
	kind := "rule"
	switch {
	case !known:
		kind = "undetermined"
		to = verdict{Action: "undetermined", Rule: "(depends on " + strings.Join(l.Missing, ", ") + ", which the record lacks)"}
		rep.Undetermined++
	case from == to:
		return
	case from.Action != to.Action || from.Enforced != to.Enforced:
		kind = "verdict"
		rep.Changed++
	default:
		rep.RuleOnly++
	}
	t := byKey[[2]verdict{from, to}]
	if t == nil {
		t = &transition{From: from, To: to, Kind: kind}
		byKey[[2]verdict{from, to}] = t
	}
	t.Count++
	if len(t.Examples) < maxExamples {
		ptr := l.Evidence.PTRConfirmed
		if len(ptr) == 0 {
			ptr = l.Evidence.PTR
		}
		t.Examples = append(t.Examples, example{IP: l.ClientIP.String(), Helo: l.Helo, PTR: append([]string{}, ptr...)})
	}
}

func printWhatIf(w io.Writer, rep *whatIf) {
	pct := func(n int) string {
		if rep.Read == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(rep.Read))
	}
	fmt.Fprintf(w, "%d lines read, %d decisions replayed\n", rep.Lines, rep.Read)
	fmt.Fprintf(w, "verdict changed: %d (%s); rule changed only: %d (%s)", rep.Changed, pct(rep.Changed), rep.RuleOnly, pct(rep.RuleOnly))
	if rep.Undetermined > 0 {
		fmt.Fprintf(w, "; undetermined: %d (%s), logged before evidence they depend on existed", rep.Undetermined, pct(rep.Undetermined))
	}
	fmt.Fprintln(w)
	reasons := make([]string, 0, len(rep.Skipped))
	for why := range rep.Skipped {
		reasons = append(reasons, why)
	}
	sort.Strings(reasons)
	for _, why := range reasons {
		fmt.Fprintf(w, "not replayed: %d lines: %s\n", rep.Skipped[why], why)
	}
	kind := ""
	for _, t := range rep.Transitions {
		if t.Kind != kind {
			kind = t.Kind
			switch kind {
			case "verdict":
				fmt.Fprintf(w, "\nverdict changes:\n")
			case "rule":
				fmt.Fprintf(w, "\nrule changes only (same verdict):\n")
			default:
				fmt.Fprintf(w, "\nundetermined (logged before evidence the new verdict depends on existed):\n")
			}
		}
		fmt.Fprintf(w, "  %7d %7s  %s -> %s\n", t.Count, pct(t.Count), t.From, t.To)
		for _, e := range t.Examples {
			ptr := "(none)"
			if len(e.PTR) > 0 {
				ptr = strings.Join(e.PTR, ", ")
			}
			fmt.Fprintf(w, "                    e.g. %s HELO %s PTR %s\n", e.IP, policy.ClientText(orNone(e.Helo), 100), policy.ClientText(ptr, 200))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
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
		if o := one(ev); o.Rule != d.Rule || o.Action != d.Action || o.Monitor != d.Monitor {
			return d, early, false
		}
	}
	return d, early, true
}
