package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "[serve] [--config FILE]", stderr)
	cfgPath := fs.String("config", "", "config `file` (default: built-in defaults, listen on "+config.DefaultListen+")")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 { // parseInterspersed consumes them all: fs.NArg() is always 0
		fmt.Fprintf(stderr, "heloguard serve: unexpected argument %q\n", pos[0])
		fs.Usage()
		return exitUsage
	}
	// Operational messages are JSON, like the decision records that share
	// stderr by default: one format on a stream.
	ops := slog.New(slog.NewJSONHandler(stderr, nil))
	// Catch signals before anything else: a reload or log rotation that comes
	// while we start must not kill the daemon with the default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	cfg, res, code := loadWithResolver(*cfgPath, stderr)
	if cfg == nil {
		return code
	}
	// The same host checks as validate: serve refuses what validate refuses.
	hostErrs, warnings := cfg.CheckHost()
	if len(hostErrs) > 0 {
		fmt.Fprintf(stderr, "heloguard: %v\n", hostErrs)
		return exitUsage
	}
	for _, w := range warnings {
		ops.Warn(w, "config", nameOr(cfg.File, "built-in defaults"))
	}
	logw, err := openLog(cfg.LogFile, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "heloguard: log: %v\n", err)
		return exitUsage
	}
	obs := newObservability(cfg) // nil: metrics off
	obs.resolver(res)
	health := &policy.ResolverHealth{ // the resolver's state, for every engine
		OnChange: func(broken bool, reason string) {
			if broken {
				ops.Warn("the DNS resolver looks broken: nearly every recent client has no PTR record at all; refusals that rest on DNS are deferred (451) until that changes (dns.on_broken_resolver)", "evidence", reason)
			} else {
				ops.Info("the DNS resolver looks healthy again", "evidence", reason)
			}
		},
	}
	obs.watch(health)
	// go-milter logs through the standard log package: into the same
	// structured stream, escaped. Set once the daemon is sure to serve.
	log.SetFlags(0)
	log.SetOutput(milter.LibraryLog{Log: ops})
	srv := milter.New(&milter.State{Cfg: cfg, Engine: obs.engine(cfg, res, health)}, logw, ops)
	stopProbes := probeLoop(srv, ops)
	defer stopProbes()
	obs.instrument(srv)
	if _, err := obs.listen(cfg.Metrics.Listen, ops); err != nil {
		fmt.Fprintf(stderr, "heloguard: %v\n", err)
		return exitUsage
	}
	defer obs.close()
	for _, spec := range cfg.Listen {
		addr, err := srv.Listen(spec)
		if err != nil {
			fmt.Fprintf(stderr, "heloguard: %v\n", err)
			return exitUsage
		}
		ops.Info("listening", "addr", addr.String(), "postfix", "smtpd_milters = "+postfixSpec(spec), "mode", cfg.Mode, "reject_at", cfg.RejectAt, "config", nameOr(cfg.File, "built-in defaults"))
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	for {
		select {
		case err := <-served:
			if err != nil {
				ops.Error("serve", "err", err)
				return exitFailed
			}
			return exitOK
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				before := srv.State()
				res = reload(srv, *cfgPath, res, ops, obs, health)
				obs.reloaded(srv.State() != before)
			case syscall.SIGUSR1:
				if err := logw.Reopen(); err != nil {
					ops.Error("reopening the decision log", "err", err)
				} else {
					ops.Info("decision log reopened", "file", cfg.LogFile)
				}
			default:
				timeout := srv.State().Cfg.DrainTimeout
				ops.Info("stopping: draining sessions", "sessions", srv.Sessions(), "deadline", timeout.String())
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				err := srv.Shutdown(ctx)
				cancel()
				if err != nil {
					ops.Warn("drain deadline passed", "err", err)
				}
				<-served
				ops.Info("stopped")
				return exitOK
			}
		}
	}
}

// reload reads the config again; a bad file is logged and the running config
// stays. The resolver, and its cache, is kept unless the dns section changed.
// Listeners, max_sessions and the log file need a restart.
func reload(srv *milter.Server, path string, res *dnscache.Resolver, ops *slog.Logger, obs *observability, health *policy.ResolverHealth) *dnscache.Resolver {
	cfg, err := config.Load(path)
	if err != nil {
		ops.Error("reload failed; the previous config keeps running", "err", err.Error())
		return res
	}
	old := srv.State().Cfg
	// A new resolver (and an empty cache) only when the dns section changed,
	// or, without dns.servers, when /etc/resolv.conf names other servers now.
	nr, err := dnscache.New(cfg.DNS)
	if err != nil {
		ops.Error("reload failed; the previous config keeps running", "err", err.Error())
		return res
	}
	if !reflect.DeepEqual(cfg.DNS, old.DNS) || !slices.Equal(nr.Servers(), res.Servers()) {
		res = nr
		obs.resolver(res)
	}
	if !reflect.DeepEqual(cfg.Listen, old.Listen) || cfg.MaxSessions != old.MaxSessions || cfg.LogFile != old.LogFile || cfg.Metrics != old.Metrics {
		ops.Warn("listen, max_sessions, log and metrics changes take effect at the next restart")
	}
	srv.SetState(&milter.State{Cfg: cfg, Engine: obs.engine(cfg, res, health)})
	ops.Info("config reloaded", "config", nameOr(path, "built-in defaults"), "rules", len(cfg.Rules), "mode", cfg.Mode)
	return res
}

// probeInterval is how often the resolver probes run.
const probeInterval = time.Minute

// probeLoop runs the current engine's resolver probes at start and every
// probeInterval, and logs when the verdict changes: a resolver that answers
// "no such name" to names that exist would make every client look like it has
// no reverse DNS, and the engine defers such refusals while it looks broken.
func probeLoop(srv *milter.Server, ops *slog.Logger) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(probeInterval)
		defer t.Stop()
		for {
			st := srv.State()
			ctx, cancel := context.WithTimeout(context.Background(), st.Cfg.DecisionTimeout)
			broken, changed, reason := st.Engine.Probe(ctx)
			cancel()
			switch {
			case changed && broken:
				ops.Warn("the DNS resolver looks broken: every probe that got an answer got no such name; refusals that rest on DNS are deferred (451) until it recovers (dns.on_broken_resolver)",
					"servers", strings.Join(st.Cfg.DNS.Servers, " "), "evidence", reason)
			case changed:
				ops.Info("the DNS resolver answers the probes again", "evidence", reason)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}

// postfixSpec writes a listen spec the way Postfix's smtpd_milters wants it.
func postfixSpec(spec string) string {
	network, addr, err := config.SplitListen(spec)
	if err != nil {
		return spec
	}
	if network == "unix" {
		return "unix:" + addr
	}
	return "inet:" + addr
}

func nameOr(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// logWriter is the decision log's destination; a file is reopened on SIGUSR1
// so logrotate can move it away.
type logWriter struct {
	mu   sync.Mutex
	path string
	w    io.Writer
	f    *os.File
}

func openLog(dest string, stdout, stderr io.Writer) (*logWriter, error) {
	switch dest {
	case "stderr", "":
		return &logWriter{w: stderr}, nil
	case "stdout":
		return &logWriter{w: stdout}, nil
	}
	l := &logWriter{path: dest}
	return l, l.Reopen()
}

func (l *logWriter) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f, l.w = f, f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
