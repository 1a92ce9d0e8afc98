package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heloguard/heloguard/loadgen"
)

// benchFlags are heloguard bench's settings.
type benchFlags struct {
	targets   []loadgen.Target
	workers   int
	duration  time.Duration
	sessions  int
	warmup    time.Duration
	headers   []int
	rounds    int
	protocol  uint32
	world     string
	cases     []string
	heloguard string
	json      bool
	timeout   time.Duration
	client    string
	pin       bool
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, int) {
	fs := newFlags("bench", "bench [--target NAME=SPEC]... [--headers N,...] [--workers N] [--duration D] [--rounds N] [--json]", stderr)
	b := &benchFlags{}
	fs.Func("target", "a milter to load, `NAME=SPEC` with SPEC unix:/path or inet:127.0.0.1:PORT (loopback only; repeatable); without any, bench starts heloguard and two do-nothing reference milters (noop-same, noop-noheaders) itself", func(s string) error {
		t, err := loadgen.ParseTarget(s)
		b.targets = append(b.targets, t)
		return err
	})
	fs.IntVar(&b.workers, "workers", 8, "concurrent sessions")
	fs.DurationVar(&b.duration, "duration", 5*time.Second, "length of each run")
	fs.IntVar(&b.sessions, "sessions", 0, "sessions per run instead of --duration")
	fs.DurationVar(&b.warmup, "warmup", time.Second, "an uncounted run of each target before its first round at each header count (0: none)")
	headers := fs.String("headers", "4,20", "header fields per message: a comma-separated `list`, one set of runs each")
	fs.IntVar(&b.rounds, "rounds", 3, "runs of each target at each header count, interleaved (A B C, A B C, ...); the median is reported")
	protocol := fs.Uint("protocol", 6, "milter protocol version offered, as Postfix's milter_protocol: 6 or 2")
	fs.StringVar(&b.world, "world", "", "scenario `file` whose cases are the clients played (default: loadgen/testdata/bench.yaml, built in)")
	cases := fs.String("cases", "", "play only these cases of the world (comma-separated names)")
	fs.StringVar(&b.heloguard, "heloguard", "", "heloguard `binary` started without --target (default: this one)")
	fs.BoolVar(&b.json, "json", false, "print every run and the medians as JSON instead of the table")
	fs.DurationVar(&b.timeout, "timeout", 10*time.Second, "for one whole session")
	fs.StringVar(&b.client, "client", loadgen.ClientLean, "the milter client playing Postfix: lean, or go-milter (github.com/d--j/go-milter's, for comparison)")
	fs.BoolVar(&b.pin, "pin", true, "without --target, run the client on the first quarter of the CPUs (at least one) and the milters on the rest")
	if err := fs.Parse(args); err != nil {
		return nil, flagExit(err)
	}
	fail := func(format string, a ...any) (*benchFlags, int) {
		fmt.Fprintf(stderr, "heloguard bench: "+format+"\n", a...)
		return nil, exitUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	for _, h := range strings.Split(*headers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 0 {
			return fail("--headers %q: want a list of numbers such as 4,20", *headers)
		}
		b.headers = append(b.headers, n)
	}
	if *cases != "" {
		b.cases = strings.Split(*cases, ",")
	}
	b.protocol = uint32(*protocol)
	switch {
	case b.protocol != 2 && b.protocol != 6:
		return fail("--protocol %d: want 6 or 2", b.protocol)
	case b.workers < 1 || b.rounds < 1:
		return fail("--workers and --rounds must be at least 1")
	case b.sessions <= 0 && b.duration <= 0:
		return fail("--duration must be positive (or --sessions set)")
	case b.client != loadgen.ClientLean && b.client != loadgen.ClientGoMilter:
		return fail("--client %q: want %s or %s", b.client, loadgen.ClientLean, loadgen.ClientGoMilter)
	case b.heloguard != "" && len(b.targets) > 0:
		return fail("--heloguard is for the default mode; with --target, start the milters yourself")
	}
	return b, exitOK
}

func cmdBench(args []string, stdout, stderr io.Writer) int {
	b, code := parseBenchFlags(args, stderr)
	if b == nil {
		return code
	}
	world, err := loadgen.LoadWorld(b.world, b.cases)
	if err != nil {
		fmt.Fprintf(stderr, "heloguard bench: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := &loadgen.Summary{Machine: loadgen.Machine(), World: world.Name, Workers: b.workers, Duration: b.duration, Sessions: b.sessions,
		Rounds: b.rounds, Protocol: b.protocol, Client: b.client, Headers: b.headers}
	for _, id := range world.Identities {
		s.Cases = append(s.Cases, id.Name)
	}
	var env *benchEnv
	targets := b.targets
	if len(targets) == 0 {
		env, err = setupBench(ctx, world, b.heloguard, b.protocol, b.workers, b.timeout, b.pin, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "heloguard bench: %v\n", err)
			return exitFailed
		}
		defer env.close()
		targets = env.targets
		s.CPUs = env.cpus.String()
	}
	for _, t := range targets {
		info := loadgen.TargetInfo{Name: t.Name, Spec: t.Spec()}
		if neg, err := loadgen.Probe(t, b.protocol, b.timeout); err != nil {
			fmt.Fprintf(stderr, "heloguard bench: %v\n", err)
			return exitFailed
		} else {
			info.Negotiated = &neg
		}
		s.Targets = append(s.Targets, info)
	}
	err = b.runAll(ctx, world, targets, env, s, stderr)
	if errors.Is(err, context.Canceled) {
		err = errors.New("interrupted")
	}
	if err != nil {
		s.Interrupt = err.Error()
		fmt.Fprintf(stderr, "heloguard bench: %v\n", err)
	}
	s.Summarize()
	if b.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
	} else {
		s.WriteTable(stdout)
	}
	if err != nil || anyErrors(s) {
		return exitFailed
	}
	return exitOK
}

// runAll runs every header count: a warm-up of each target, then the rounds,
// the targets interleaved within each.
func (b *benchFlags) runAll(ctx context.Context, world *loadgen.World, targets []loadgen.Target, env *benchEnv, s *loadgen.Summary, progress io.Writer) error {
	for _, h := range b.headers {
		if b.warmup > 0 {
			for _, t := range targets {
				o := b.options(world, t, h, io.Discard)
				o.Duration, o.Sessions = b.warmup, 0
				if _, err := loadgen.Run(ctx, o); err != nil {
					return err
				}
			}
			fmt.Fprintf(progress, "bench: %d header fields: warmed up %d targets for %s each\n", h, len(targets), b.warmup)
		}
		for round := 1; round <= b.rounds; round++ {
			for _, t := range targets {
				r, err := b.run(ctx, world, t, h, env, progress)
				if r != nil && err == nil {
					s.Runs = append(s.Runs, r)
					fmt.Fprintf(progress, "bench: %d header fields, round %d/%d, %-15s %6.0f sessions/s (%d in %.1fs), p99 %s ms, %d errors; client %s\n",
						h, round, b.rounds, t.Name+":", r.Rate, r.Sessions, r.Elapsed.Seconds(), fmtMS(r.Whole.P99), r.Errors, clientCost(r))
				}
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// run is one counted run, with the CPU the target process used when the
// bench started it.
func (b *benchFlags) run(ctx context.Context, world *loadgen.World, t loadgen.Target, headers int, env *benchEnv, progress io.Writer) (*loadgen.Result, error) {
	pid := 0
	if env != nil {
		pid = env.pid(t.Name)
	}
	var cpu0 time.Duration
	if pid > 0 {
		cpu0, _ = loadgen.ProcessCPU(pid)
	}
	r, err := loadgen.Run(ctx, b.options(world, t, headers, progress))
	if err != nil {
		return r, err
	}
	if pid > 0 {
		if cpu1, err := loadgen.ProcessCPU(pid); err == nil {
			r.TargetCPU = cpu1 - cpu0
		}
	}
	if env != nil {
		if err := env.failed(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// options are a run's; a run of 10 seconds or more reports its progress
// every 5 seconds.
func (b *benchFlags) options(world *loadgen.World, t loadgen.Target, headers int, progress io.Writer) loadgen.Options {
	o := loadgen.Options{Target: t, World: world, Workers: b.workers, Duration: b.duration, Sessions: b.sessions,
		Headers: headers, Version: b.protocol, Timeout: b.timeout, Client: b.client}
	if b.sessions <= 0 && b.duration >= 10*time.Second {
		o.Tick = func(n int64, elapsed time.Duration) {
			if sec := int(elapsed.Round(time.Second).Seconds()); sec%5 == 0 {
				fmt.Fprintf(progress, "bench:   %s, %d header fields: %d sessions after %ds\n", t.Name, headers, n, sec)
			}
		}
	}
	return o
}

func anyErrors(s *loadgen.Summary) bool {
	for _, r := range s.Runs {
		if r.Errors > 0 {
			return true
		}
	}
	return false
}

// clientCost is the client's CPU and allocations per session.
func clientCost(r *loadgen.Result) string {
	n := r.Sessions + r.Errors
	if n == 0 {
		return "idle"
	}
	return fmt.Sprintf("%d us CPU, %d allocs a session", r.ClientCPU.Microseconds()/int64(n), r.ClientAllocs/uint64(n))
}

func fmtMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}
