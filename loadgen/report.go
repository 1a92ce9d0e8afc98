package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The names that give the table its ratio columns: the do-nothing milter
// negotiating what the first target negotiated, and the same without header
// events.
const (
	RefSame      = "noop-same"
	RefNoHeaders = "noop-noheaders"
)

// TargetInfo is a target and what it negotiated.
type TargetInfo struct {
	Name       string      `json:"name"`
	Spec       string      `json:"spec"`
	Negotiated *Negotiated `json:"negotiated"`
	Process    string      `json:"process,omitempty"` // the command line, when the bench started it
}

// Summary is a whole bench: every run, and what the report shows.
type Summary struct {
	Machine   string        `json:"machine"`
	World     string        `json:"world"`
	Cases     []string      `json:"cases"`
	Workers   int           `json:"workers"`
	Duration  time.Duration `json:"duration_ns,omitempty"`
	Sessions  int           `json:"sessions,omitempty"`
	Rounds    int           `json:"rounds"`
	Protocol  uint32        `json:"protocol_offered"`
	Client    string        `json:"client"`
	Headers   []int         `json:"headers"`
	Targets   []TargetInfo  `json:"targets"`
	Runs      []*Result     `json:"runs"`
	Medians   []*Row        `json:"medians"`
	CPUs      string        `json:"cpus,omitempty"` // how the CPUs were shared, when the bench started the milters
	Interrupt string        `json:"interrupted,omitempty"`
}

// Row is the median round of one target at one header count, and its ratios
// to the reference milters' medians (0 when there is none).
type Row struct {
	Result          *Result `json:"-"`
	Target          string  `json:"target"`
	Headers         int     `json:"headers"`
	Run             int     `json:"run"` // its index in Runs
	Rate            float64 `json:"sessions_per_s"`
	RateVsSame      float64 `json:"rate_vs_same,omitempty"`
	RateVsNoHeaders float64 `json:"rate_vs_noheaders,omitempty"`
	P99VsSame       float64 `json:"p99_vs_same,omitempty"`
}

// Machine describes where the bench ran: CPU model, cores, Go, OS, date.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s, %s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02 15:04 MST"))
}

// Summarize picks each target's median round at each header count (by
// sessions/s) and computes the ratios.
func (s *Summary) Summarize() {
	s.Medians = nil
	for _, h := range s.Headers {
		byTarget := map[string]*Row{}
		for _, t := range s.Targets {
			var runs []*Result
			for _, r := range s.Runs {
				if r.Target == t.Name && r.Headers == h {
					runs = append(runs, r)
				}
			}
			if len(runs) == 0 {
				continue
			}
			slices.SortStableFunc(runs, func(a, b *Result) int { return cmpFloat(a.Rate, b.Rate) })
			med := runs[(len(runs)-1)/2]
			row := &Row{Result: med, Target: med.Target, Headers: h, Run: slices.Index(s.Runs, med), Rate: med.Rate}
			byTarget[t.Name] = row
			s.Medians = append(s.Medians, row)
		}
		same, noh := byTarget[RefSame], byTarget[RefNoHeaders]
		for _, row := range s.Medians {
			if row.Headers != h {
				continue
			}
			if same != nil && same.Rate > 0 {
				row.RateVsSame = row.Rate / same.Rate
				if p99 := same.Result.Whole.P99; p99 > 0 {
					row.P99VsSame = float64(row.Result.Whole.P99) / float64(p99)
				}
			}
			if noh != nil && noh.Rate > 0 {
				row.RateVsNoHeaders = row.Rate / noh.Rate
			}
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// WriteTable writes the report: the machine, the settings, what each target
// negotiated, then one row per header count and target, then verdicts,
// modifications and errors.
func (s *Summary) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "heloguard bench: %s\n", s.Machine)
	length := s.Duration.String() + " runs"
	if s.Sessions > 0 {
		length = strconv.Itoa(s.Sessions) + " sessions a run"
	}
	fmt.Fprintf(w, "%s, %d identities; %d workers; %s; median of %d interleaved rounds; protocol %d offered (Postfix 3.7); %s client\n",
		s.World, len(s.Cases), s.Workers, length, s.Rounds, s.Protocol, s.Client)
	if s.CPUs != "" {
		fmt.Fprintf(w, "%s\n", s.CPUs)
	}
	if s.Interrupt != "" {
		fmt.Fprintf(w, "INTERRUPTED: %s; the figures are of the runs done\n", s.Interrupt)
	}
	fmt.Fprintln(w)
	for _, t := range s.Targets {
		neg := "(no negotiation)"
		if t.Negotiated != nil {
			neg = t.Negotiated.String()
		}
		fmt.Fprintf(w, "  %-15s %s\n  %-15s %s\n", t.Name, neg, "", t.Spec)
	}
	fmt.Fprintln(w)
	if len(s.Runs) == 0 {
		fmt.Fprintln(w, "no run was completed")
		return
	}
	s.writeRows(w)
	fmt.Fprintln(w, "\nstages: p50/p99 in ms; x same, x nohdr: sessions/s over noop-same's, noop-noheaders'; p99 x same: p99 over noop-same's;")
	fmt.Fprintln(w, "cpu: CPU time per session of the bench process (the client) and of the target process, when the bench started it")
	s.writeVerdicts(w)
}

func (s *Summary) writeRows(w io.Writer) {
	head := []string{"hdrs", "target", "sess/s", "x same", "x nohdr", "p50 ms", "p90 ms", "p99 ms", "max ms", "p99 x same"}
	for _, n := range StageNames {
		head = append(head, n)
	}
	head = append(head, "errors", "cpu us/sess")
	rows := [][]string{head}
	for _, m := range s.Medians {
		r := m.Result
		row := []string{strconv.Itoa(m.Headers), m.Target, strconv.FormatFloat(m.Rate, 'f', 0, 64),
			ratio(m.RateVsSame), ratio(m.RateVsNoHeaders)}
		if r.Whole.N == 0 {
			row = append(row, "-", "-", "-", "-")
		} else {
			row = append(row, ms(r.Whole.P50), ms(r.Whole.P90), ms(r.Whole.P99), ms(r.Whole.Max))
		}
		row = append(row, ratio(m.P99VsSame))
		for _, d := range r.Stages {
			if d.N == 0 {
				row = append(row, "-")
			} else {
				row = append(row, ms(d.P50)+"/"+ms(d.P99))
			}
		}
		row = append(row, strconv.Itoa(r.Errors), cpu(r))
		rows = append(rows, row)
	}
	writeAligned(w, rows, 2)
}

func ratio(f float64) string {
	if f == 0 {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

func cpu(r *Result) string {
	n := r.Sessions + r.Errors
	if n == 0 {
		return "-"
	}
	per := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds()/int64(n), 10) }
	if r.TargetCPU == 0 {
		return per(r.ClientCPU) + ", -"
	}
	return per(r.ClientCPU) + ", " + per(r.TargetCPU)
}

// writeAligned writes rows as columns: the first `text` columns left-aligned,
// the others right-aligned.
func writeAligned(w io.Writer, rows [][]string, text int) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len(c))
			if i < text {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
			if i < len(r)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// writeVerdicts writes, per target, the verdicts by identity over every
// counted run, the modifications, and the errors with a sample.
func (s *Summary) writeVerdicts(w io.Writer) {
	for _, t := range s.Targets {
		verdicts := map[string]map[string]int{}
		var mods [numMods]int
		var errs []ErrorSample
		for _, r := range s.Runs {
			if r.Target != t.Name {
				continue
			}
			for id, vs := range r.Verdicts {
				if verdicts[id] == nil {
					verdicts[id] = map[string]int{}
				}
				for v, n := range vs {
					verdicts[id][v] += n
				}
			}
			for k, n := range r.Modifications {
				mods[k] += n
			}
			errs = append(errs, r.ErrorSamples...)
		}
		fmt.Fprintf(w, "\n%s, every run:\n", t.Name)
		var rows [][]string
		for _, id := range s.Cases {
			rows = append(rows, []string{"  " + id, joinCounts(verdicts[id])})
		}
		writeAligned(w, rows, 2)
		var ms []string
		for k, n := range mods {
			if n > 0 {
				ms = append(ms, fmt.Sprintf("%s %d", ModNames[k], n))
			}
		}
		if len(ms) > 0 {
			fmt.Fprintf(w, "  modifications at end of message: %s\n", strings.Join(ms, ", "))
		}
		writeErrors(w, errs)
	}
}

func joinCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func writeErrors(w io.Writer, errs []ErrorSample) {
	total := map[string]*ErrorSample{}
	var order []string
	for _, e := range errs {
		if t := total[e.Message]; t != nil {
			t.Count += e.Count
			continue
		}
		e := e
		total[e.Message] = &e
		order = append(order, e.Message)
	}
	if len(order) == 0 {
		fmt.Fprintln(w, "  errors: none")
		return
	}
	for _, m := range order {
		e := total[m]
		fmt.Fprintf(w, "  ERRORS: %d x at %s (first: %s): %s\n", e.Count, e.Stage, e.Identity, e.Message)
	}
}

// MarshalJSON writes the stages and modifications by name.
func (r *Result) MarshalJSON() ([]byte, error) {
	type plain Result
	stages := map[string]Dist{}
	for i, d := range r.Stages {
		stages[StageNames[i]] = d
	}
	mods := map[string]int{}
	for k, n := range r.Modifications {
		if n > 0 {
			mods[ModNames[k]] = n
		}
	}
	return json.Marshal(struct {
		*plain
		Stages        map[string]Dist `json:"stages"`
		Modifications map[string]int  `json:"modifications,omitempty"`
	}{(*plain)(r), stages, mods})
}
