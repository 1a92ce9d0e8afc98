package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// count is one row of a summary table.
type count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// summary is what an ops person reads on Monday: `replay --summary`.
type summary struct {
	Lines     int            `json:"lines"`
	Decisions int            `json:"decisions"`
	Skipped   map[string]int `json:"skipped"`
	// ByRule counts decisions by "action rule".
	ByRule []count `json:"by_rule"`
	// RefusedDomains and RefusedPTRs are the organizational domains and the
	// names of the clients refused most (confirmed PTR names, else PTR names).
	RefusedDomains []count `json:"refused_domains"`
	RefusedPTRs    []count `json:"refused_ptrs"`
	Refused        int     `json:"refused"`
	// DNSTempErrors counts decisions with a temperror in any DNS-based
	// evidence (iprev, spf_helo, ptr_spf) or a decision timeout.
	DNSTempErrors int `json:"dns_temperrors"`
}

const summaryTop = 10

func runSummary(names []string, asJSON bool, stdin io.Reader, stdout, stderr io.Writer) int {
	s := summary{Skipped: map[string]int{}}
	byRule, domains, ptrs := map[string]int{}, map[string]int{}, map[string]int{}
	progress := progressTo(stderr)
	var err error
	s.Lines, err = logLines(names, stdin, s.Skipped, progress, func(r *record.Record) error {
		s.Decisions++
		byRule[string(r.Action)+" "+r.Rule]++
		e := r.Evidence
		if r.Rule == policy.RuleTimeout || e.IPRev == policy.IPRevTempError || e.SPFHelo == policy.SPFTempError || e.PTRSPF == policy.SPFTempError {
			s.DNSTempErrors++
		}
		if !r.Action.Refuses() {
			return nil
		}
		s.Refused++
		names := e.PTRConfirmed
		if len(names) == 0 {
			names = e.PTR
		}
		if len(names) == 0 {
			ptrs["(no PTR) "+r.ClientIP.String()]++
			return nil
		}
		ptrs[names[0]]++
		if org, ok := policy.OrgDomain(names[0]); ok {
			domains[org]++
		}
		return nil
	})
	if progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "heloguard replay: %v\n", err)
		return exitUsage
	}
	s.ByRule, s.RefusedDomains, s.RefusedPTRs = top(byRule, 0), top(domains, summaryTop), top(ptrs, summaryTop)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
		return exitOK
	}
	pct := func(n int) string {
		if s.Decisions == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(s.Decisions))
	}
	fmt.Fprintf(stdout, "%d lines read, %d decisions; %d refused (%s); DNS temperror in %d (%s)\n",
		s.Lines, s.Decisions, s.Refused, pct(s.Refused), s.DNSTempErrors, pct(s.DNSTempErrors))
	for why, n := range s.Skipped {
		fmt.Fprintf(stdout, "not counted: %d lines: %s\n", n, why)
	}
	section := func(title string, rows []count) {
		fmt.Fprintf(stdout, "\n%s:\n", title)
		if len(rows) == 0 {
			fmt.Fprintln(stdout, "  (none)")
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "  %7d %6s  %s\n", r.Count, pct(r.Count), policy.ClientText(r.Key, 200))
		}
	}
	section("decisions by action and rule", s.ByRule)
	section(fmt.Sprintf("most refused organizational domains (top %d)", summaryTop), s.RefusedDomains)
	section(fmt.Sprintf("most refused PTR names (top %d)", summaryTop), s.RefusedPTRs)
	return exitOK
}

// top is the n largest counts (all for n = 0), largest first, ties by key.
func top(m map[string]int, n int) []count {
	out := make([]count, 0, len(m))
	for k, v := range m {
		out = append(out, count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
