package loadgen

import (
	"slices"
	"time"
)

// Dist summarizes durations: count, percentiles (nearest rank) and maximum.
type Dist struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func distOf(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	slices.Sort(d)
	rank := func(p int) time.Duration { // nearest rank: the smallest value with p% at or below it
		i := (len(d)*p + 99) / 100
		return d[max(i-1, 0)]
	}
	return Dist{N: len(d), P50: rank(50), P90: rank(90), P99: rank(99), Max: d[len(d)-1]}
}

// verdictKey counts verdicts by identity.
type verdictKey struct {
	identity int
	verdict  Verdict
}

// errorCount is one kind of error: how often, and the first time.
type errorCount struct {
	n        int
	identity int
	stage    int
}

// collector is one worker's record of its sessions, merged after the run.
type collector struct {
	whole    []time.Duration
	stages   [NumStages][]time.Duration
	verdicts map[verdictKey]int
	mods     [numMods]int
	errs     map[string]*errorCount
	errOrder []string
	errors   int
	neg      *Negotiated
}

func newCollector() *collector {
	return &collector{verdicts: map[verdictKey]int{}, errs: map[string]*errorCount{}}
}

func (c *collector) add(o *outcome) {
	if o.err != nil {
		c.errors++
		msg := o.err.Error()
		if e := c.errs[msg]; e != nil {
			e.n++
		} else {
			c.errs[msg] = &errorCount{n: 1, identity: o.identity, stage: o.errStage}
			c.errOrder = append(c.errOrder, msg)
		}
		return
	}
	c.whole = append(c.whole, o.total)
	for st := range NumStages {
		if o.reached[st] {
			c.stages[st] = append(c.stages[st], o.stages[st])
		}
	}
	c.verdicts[verdictKey{o.identity, o.verdict}]++
	for k, n := range o.mods {
		c.mods[k] += int(n)
	}
}

// merge folds the workers' records into a Result.
func merge(r *Result, ids []Identity, cs []*collector) {
	var whole []time.Duration
	var stages [NumStages][]time.Duration
	r.Verdicts = map[string]map[string]int{}
	for _, c := range cs {
		whole = append(whole, c.whole...)
		for st := range NumStages {
			stages[st] = append(stages[st], c.stages[st]...)
		}
		for k, n := range c.verdicts {
			name := ids[k.identity].Name
			if r.Verdicts[name] == nil {
				r.Verdicts[name] = map[string]int{}
			}
			r.Verdicts[name][k.verdict.String()] += n
		}
		for k, n := range c.mods {
			r.Modifications[k] += n
		}
		r.Errors += c.errors
		for _, msg := range c.errOrder {
			e := c.errs[msg]
			i := slices.IndexFunc(r.ErrorSamples, func(s ErrorSample) bool { return s.Message == msg })
			if i < 0 {
				r.ErrorSamples = append(r.ErrorSamples, ErrorSample{Message: msg, Count: e.n, Identity: ids[e.identity].Name, Stage: StageNames[e.stage]})
			} else {
				r.ErrorSamples[i].Count += e.n
			}
		}
		if r.Negotiated == nil && c.neg != nil {
			r.Negotiated = c.neg
		}
	}
	r.Sessions = len(whole)
	r.Whole = distOf(whole)
	for st := range NumStages {
		r.Stages[st] = distOf(stages[st])
	}
	slices.SortFunc(r.ErrorSamples, func(a, b ErrorSample) int { return b.Count - a.Count })
}
