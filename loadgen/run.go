package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Clients a run can play Postfix with.
const (
	ClientLean     = "lean"      // this package's: raw socket, one buffered write per reply awaited
	ClientGoMilter = "go-milter" // github.com/d--j/go-milter's ClientSession, for comparison
)

// Options describe one run: one target, one message size.
type Options struct {
	Target   Target
	World    *World
	Workers  int           // concurrent sessions
	Duration time.Duration // how long to run, unless Sessions is set
	Sessions int           // how many sessions to run (> 0: Duration is ignored)
	Headers  int           // header fields per message
	Version  uint32        // milter protocol version offered: 6 or 2
	Timeout  time.Duration // for a whole session
	Client   string        // ClientLean (default) or ClientGoMilter
	// Tick, when set, is called about once a second with the sessions
	// completed so far.
	Tick func(sessions int64, elapsed time.Duration)
}

// Result is what a run measured.
type Result struct {
	Target        string                    `json:"target"`
	Headers       int                       `json:"headers"`
	Sessions      int                       `json:"sessions"` // completed without error
	Errors        int                       `json:"errors"`
	Elapsed       time.Duration             `json:"elapsed_ns"`
	Rate          float64                   `json:"sessions_per_s"`
	Whole         Dist                      `json:"session"`
	Stages        [NumStages]Dist           `json:"-"`
	Verdicts      map[string]map[string]int `json:"verdicts"` // identity: verdict: count
	Modifications [numMods]int              `json:"-"`
	ErrorSamples  []ErrorSample             `json:"error_samples,omitempty"`
	Negotiated    *Negotiated               `json:"negotiated"`
	ClientCPU     time.Duration             `json:"client_cpu_ns"` // this process, during the run
	ClientAllocs  uint64                    `json:"client_allocs"` // heap allocations of this process, during the run
	TargetCPU     time.Duration             `json:"target_cpu_ns,omitempty"`
}

// ErrorSample is one kind of error, how often it happened, and where first.
type ErrorSample struct {
	Message  string `json:"message"`
	Count    int    `json:"count"`
	Identity string `json:"identity"`
	Stage    string `json:"stage"`
}

// player is what plays sessions for a worker.
type sessionPlayer interface {
	play(id *Identity, seq uint64, o *outcome)
	negotiated() *Negotiated // nil until a session negotiated
}

func (pl *player) negotiated() *Negotiated {
	if pl.neg.Version == 0 {
		return nil
	}
	n := pl.neg
	return &n
}

// Run loads the target with o.Workers concurrent sessions, each playing the
// world's identities in turn, until o.Duration has passed or o.Sessions have
// run, or ctx ends.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	msg := newMessage(o.Headers)
	cs := make([]*collector, o.Workers)
	var done, tickets, seq atomic.Int64
	cpu0, allocs0 := SelfCPU(), mallocs()
	start := time.Now()
	deadline := start.Add(o.Duration)
	stopTick := o.ticker(&done, start)
	var wg sync.WaitGroup
	for w := range o.Workers {
		cs[w] = newCollector()
		pl := o.newPlayer(msg)
		wg.Go(func() {
			for n := uint64(0); ; n++ {
				if o.Sessions > 0 && tickets.Add(1) > int64(o.Sessions) ||
					o.Sessions <= 0 && !time.Now().Before(deadline) || ctx.Err() != nil {
					return
				}
				idx := int((seq.Add(1) - 1) % int64(len(o.World.Identities))) // each in turn, across the workers
				out := outcome{identity: idx}
				pl.play(&o.World.Identities[idx], uint64(w)<<40|n, &out)
				if out.err != nil && ctx.Err() != nil {
					return // cut short: neither a session nor an error
				}
				cs[w].add(&out)
				if cs[w].neg == nil {
					cs[w].neg = pl.negotiated()
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	stopTick()
	r := &Result{Target: o.Target.Name, Headers: o.Headers, Elapsed: time.Since(start), ClientCPU: SelfCPU() - cpu0, ClientAllocs: mallocs() - allocs0}
	merge(r, o.World.Identities, cs)
	if r.Elapsed > 0 {
		r.Rate = float64(r.Sessions) / r.Elapsed.Seconds()
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	return r, nil
}

func (o *Options) check() error {
	switch {
	case o.World == nil || len(o.World.Identities) == 0:
		return errors.New("loadgen: no identities to play")
	case o.Workers < 1:
		return fmt.Errorf("loadgen: %d workers; at least one is needed", o.Workers)
	case o.Sessions <= 0 && o.Duration <= 0:
		return errors.New("loadgen: neither a duration nor a number of sessions")
	case o.Version != 2 && o.Version != 6:
		return fmt.Errorf("loadgen: protocol version %d; Postfix speaks 2, 3, 4 or 6, and this bench 2 or 6", o.Version)
	case o.Headers < 0:
		return fmt.Errorf("loadgen: %d header fields", o.Headers)
	case o.Client != "" && o.Client != ClientLean && o.Client != ClientGoMilter:
		return fmt.Errorf("loadgen: client %q: want %s or %s", o.Client, ClientLean, ClientGoMilter)
	}
	if _, err := ParseSocket(o.Target.Spec()); err != nil {
		return fmt.Errorf("loadgen: target %s: %v", o.Target.Name, err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	return nil
}

func (o *Options) newPlayer(m *message) sessionPlayer {
	if o.Client == ClientGoMilter {
		return newGoMilterPlayer(o.Target, o.Version, o.Timeout, m)
	}
	return newPlayer(o.Target, PostfixOffer(o.Version), o.Timeout, m)
}

// ticker calls o.Tick every second until stopped.
func (o *Options) ticker(done *atomic.Int64, start time.Time) (stop func()) {
	if o.Tick == nil {
		return func() {}
	}
	t := time.NewTicker(time.Second)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-t.C:
				o.Tick(done.Load(), time.Since(start))
			case <-quit:
				return
			}
		}
	})
	return func() { t.Stop(); close(quit); wg.Wait() }
}
