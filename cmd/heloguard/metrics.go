package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is the one path the metrics listener serves.
const MetricsPath = "/metrics"

// observability is the daemon's metrics: one registry, built by serve, that
// every part registers its metrics in, and the HTTP listener Prometheus
// scrapes. A nil *observability (metrics off) counts nothing.
type observability struct {
	reg    *prometheus.Registry
	dns    *dnscache.Metrics
	policy *policy.Metrics
	srv    atomic.Pointer[milter.Server] // for the evidence cache's entries

	reloads      *prometheus.CounterVec // result
	lastReloadOK prometheus.Gauge
	lastReloadAt prometheus.Gauge

	http *http.Server
}

// Reload results, the result label of heloguard_config_reloads_total.
const (
	reloadSuccess = "success"
	reloadFailure = "failure"
)

// newObservability builds the registry and the metrics of everything but
// the milter server (instrument adds those), or returns nil when cfg has no
// metrics listener.
func newObservability(cfg *config.Config) *observability {
	if cfg.Metrics.Listen == "" {
		return nil
	}
	o := &observability{reg: prometheus.NewRegistry()}
	o.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	o.dns = dnscache.NewMetrics(o.reg)
	o.policy = policy.NewMetrics(o.reg, func() *policy.Engine {
		if s := o.srv.Load(); s != nil {
			return s.State().Engine
		}
		return nil
	})
	o.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "heloguard_config_reloads_total",
		Help: "Config reloads on SIGHUP, by result (success, failure: the previous config keeps running).",
	}, []string{"result"})
	o.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "heloguard_config_last_reload_successful",
		Help: "1 when the last config load (at start or on SIGHUP) succeeded, 0 when it failed and an older config runs.",
	})
	o.lastReloadAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "heloguard_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful config load (at start or on SIGHUP).",
	})
	o.reg.MustRegister(o.reloads, o.lastReloadOK, o.lastReloadAt)
	o.reloads.WithLabelValues(reloadSuccess)
	o.reloads.WithLabelValues(reloadFailure)
	o.lastReloadOK.Set(1)
	o.lastReloadAt.SetToCurrentTime()
	return o
}

// buildInfo is heloguard_build_info: the version, the VCS commit and the Go
// version the binary was built from (runtime/debug.ReadBuildInfo).
func buildInfo() prometheus.Collector {
	version, revision, goversion := "devel", "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		if bi.GoVersion != "" {
			goversion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "heloguard_build_info",
		Help:        "Always 1; the labels say what heloguard was built from: version, revision (the VCS commit) and goversion.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goversion},
	})
	g.Set(1)
	return g
}

// resolver makes res count into the DNS metrics; serve calls it for every
// resolver it puts to work, before the engine that uses it.
func (o *observability) resolver(res *dnscache.Resolver) {
	if o != nil {
		res.Instrument(o.dns)
	}
}

// engine builds the policy engine for cfg over res, its evidence cache
// counted.
func (o *observability) engine(cfg *config.Config, res *dnscache.Resolver, health *policy.ResolverHealth) *policy.Engine {
	opt := cfg.PolicyOptions(res)
	opt.Health = health
	if o != nil {
		opt.Metrics = o.policy
	}
	return policy.New(opt)
}

// watch exposes the resolver probes' verdict (heloguard_dns_resolver_broken).
func (o *observability) watch(h *policy.ResolverHealth) {
	if o == nil {
		return
	}
	o.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "heloguard_dns_resolver_broken",
		Help: "1 while the resolver looks broken (every probe of dns.probes that got an answer got no such name), 0 otherwise.",
	}, func() float64 {
		if broken, _ := h.Broken(); broken {
			return 1
		}
		return 0
	}))
}

// instrument adds the milter server's metrics; before srv serves.
func (o *observability) instrument(srv *milter.Server) {
	if o == nil {
		return
	}
	srv.Instrument(o.reg)
	o.srv.Store(srv)
}

// reloaded counts a SIGHUP reload: ok when the new config runs.
func (o *observability) reloaded(ok bool) {
	if o == nil {
		return
	}
	if !ok {
		o.reloads.WithLabelValues(reloadFailure).Inc()
		o.lastReloadOK.Set(0)
		return
	}
	o.reloads.WithLabelValues(reloadSuccess).Inc()
	o.lastReloadOK.Set(1)
	o.lastReloadAt.SetToCurrentTime()
}

// listen binds the metrics listener (IP:PORT) and serves /metrics on it, and
// nothing else, until close. It returns the address bound; nil when metrics
// are off.
func (o *observability) listen(addr string, ops *slog.Logger) (net.Addr, error) {
	if o == nil {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{ops},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	o.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(ops.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := o.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ops.Error("metrics listener", "err", err.Error())
		}
	}()
	ops.Info("metrics listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+MetricsPath)
	return ln.Addr(), nil
}

// close stops the metrics listener, letting a scrape in progress finish.
func (o *observability) close() {
	if o == nil || o.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = o.http.Shutdown(ctx)
}

// errorLog hands promhttp's errors (a metric that could not be gathered) to
// the operational log.
type errorLog struct{ ops *slog.Logger }

func (l errorLog) Println(v ...any) { l.ops.Error("serving metrics", "err", fmt.Sprint(v...)) }
