package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// metricsDaemon is the daemon's parts wired as serve wires them, in-process:
// a resolver, the engine, the milter server and the metrics listener.
type metricsDaemon struct {
	env  *env
	obs  *observability
	srv  *milter.Server
	res  *dnscache.Resolver
	ops  *slog.Logger
	url  string // of /metrics
	addr string // of the milter listener
}

func startMetricsDaemon(t *testing.T) *metricsDaemon {
	t.Helper()
	e := newEnv(t, "metrics: {listen: \"127.0.0.1:9894\"}\n")
	cfg, res, code := loadWithResolver(e.cfg, io.Discard)
	if cfg == nil {
		t.Fatalf("config: exit %d", code)
	}
	ops := slog.New(slog.NewTextHandler(io.Discard, nil))
	obs := newObservability(cfg)
	if obs == nil {
		t.Fatal("metrics.listen is set, and no metrics")
	}
	obs.resolver(res)
	health := &policy.ResolverHealth{}
	obs.watch(health)
	srv := milter.New(&milter.State{Cfg: cfg, Engine: obs.engine(cfg, res, health)}, io.Discard, ops)
	obs.instrument(srv)
	maddr, err := obs.listen("127.0.0.1:0", ops) // the config's port may be taken: any free one
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(obs.close)
	addr, err := srv.Listen("inet:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &metricsDaemon{env: e, obs: obs, srv: srv, res: res, ops: ops, url: "http://" + maddr.String() + MetricsPath, addr: addr.String()}
}

// session plays one MTA session to RCPT and closes it, then waits until the
// server has ended it (its decision is logged and counted by then).
func (d *metricsDaemon) session(t *testing.T, ip, helo string) {
	t.Helper()
	c := gomilter.NewClient("tcp", d.addr)
	cs, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return cs.Conn("["+ip+"]", gomilter.FamilyInet, 40000, ip) },
		func() (*gomilter.Action, error) { return cs.Helo(helo) },
		func() (*gomilter.Action, error) { return cs.Mail("<a@sender.example>", "") },
		func() (*gomilter.Action, error) { return cs.Rcpt("<user@receiver.example>", "") },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	cs.Close()
	for end := time.Now().Add(5 * time.Second); d.srv.Sessions() > 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
	}
	if n := d.srv.Sessions(); n > 0 {
		t.Fatalf("%d sessions still open", n)
	}
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The listener serves /metrics, and only that; the scrape holds every part's
// metrics, the build info with this binary's Go version, and passes the
// Prometheus linter (promtool check metrics runs the same checks; the
// end-to-end test in deploy/prometheus runs promtool itself).
func TestMetricsEndpoint(t *testing.T) {
	d := startMetricsDaemon(t)
	d.session(t, "192.0.2.66", "vps66.cheap-hosting.example")
	code, body := get(t, "GET", d.url)
	if code != 200 {
		t.Fatalf("GET %s: %d\n%s", d.url, code, body)
	}
	for _, want := range []string{
		`heloguard_build_info{goversion="` + runtime.Version() + `",revision="`,
		`heloguard_decisions_total{action="accept",enforcement="enforce",rule="helo-equals-ptr"} 1`,
		`heloguard_decision_duration_seconds_count 1`,
		`heloguard_milter_sessions_total 1`,
		`heloguard_milter_sessions_in_flight 0`,
		`heloguard_dns_upstream_queries_total{outcome="answer",type="PTR"} 1`,
		`heloguard_dns_upstream_duration_seconds_count{server="` + d.env.srv.Addr + `"}`,
		`heloguard_evidence_cache_misses_total 1`,
		`heloguard_config_reloads_total{result="failure"} 0`,
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape lacks %q", want)
		}
	}
	base := strings.TrimSuffix(d.url, MetricsPath)
	for _, u := range []string{base + "/", base + "/metrics/", base + "/metricsx", base + "/debug/pprof/"} {
		if code, _ := get(t, "GET", u); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", u, code)
		}
	}
	if code, _ := get(t, "POST", d.url); code == http.StatusOK {
		t.Errorf("POST %s: %d, want a refusal", d.url, code)
	}
	problems, err := testutil.GatherAndLint(d.obs.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A reload is counted by result: a bad file is a failure and leaves the last
// success's time; a good one is a success. A new dns section puts a new
// resolver to work, counted in the same metrics.
func TestMetricsReload(t *testing.T) {
	d := startMetricsDaemon(t)
	value := func(name, label string) float64 {
		mfs, err := d.obs.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if label == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == label }) {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no %s{%s}", name, label)
		return 0
	}
	started := value("heloguard_config_last_reload_success_timestamp_seconds", "")
	if started < float64(time.Now().Add(-time.Minute).Unix()) || value("heloguard_config_last_reload_successful", "") != 1 {
		t.Fatalf("at start: last success %v, successful %v", started, value("heloguard_config_last_reload_successful", ""))
	}
	reloadOnce := func() {
		before := d.srv.State()
		d.res = reload(d.srv, d.env.cfg, d.res, d.ops, d.obs, nil)
		d.obs.reloaded(d.srv.State() != before)
	}
	good, _ := os.ReadFile(d.env.cfg)
	d.env.write(t, "heloguard.yaml", "mode: sideways\n")
	reloadOnce()
	if f, s := value("heloguard_config_reloads_total", reloadFailure), value("heloguard_config_reloads_total", reloadSuccess); f != 1 || s != 0 {
		t.Errorf("after a bad reload: failure %v success %v", f, s)
	}
	if value("heloguard_config_last_reload_successful", "") != 0 || value("heloguard_config_last_reload_success_timestamp_seconds", "") != started {
		t.Error("a failed reload changed the last success")
	}
	d.session(t, "192.0.2.66", "vps66.cheap-hosting.example") // one entry in the DNS cache, or more
	if value("heloguard_dns_cache_entries", "") == 0 {
		t.Fatal("no DNS cache entries after a session")
	}
	d.env.write(t, "heloguard.yaml", strings.Replace(string(good), "timeout: 1s", "timeout: 2s", 1))
	reloadOnce()
	if f, s := value("heloguard_config_reloads_total", reloadFailure), value("heloguard_config_reloads_total", reloadSuccess); f != 1 || s != 1 {
		t.Errorf("after a good reload: failure %v success %v", f, s)
	}
	if value("heloguard_config_last_reload_successful", "") != 1 {
		t.Error("a good reload did not set heloguard_config_last_reload_successful")
	}
	// The new dns section: a new resolver, whose empty cache is reported,
	// and the counters go on.
	if got := value("heloguard_dns_cache_entries", ""); got != 0 {
		t.Errorf("entries %v after the resolver was replaced, want the new one's 0", got)
	}
	misses := value("heloguard_dns_cache_misses_total", "")
	d.session(t, "192.0.2.66", "vps66.cheap-hosting.example")
	if value("heloguard_dns_cache_misses_total", "") <= misses || value("heloguard_dns_cache_entries", "") == 0 {
		t.Error("the new resolver does not count")
	}
	if got := value("heloguard_evidence_cache_entries", ""); got != 1 {
		t.Errorf("evidence cache entries %v, want the new engine's 1", got)
	}
}

// Without metrics.listen there is no registry and nothing listens.
func TestMetricsOff(t *testing.T) {
	cfg := config.Default()
	if o := newObservability(cfg); o != nil {
		t.Fatal("metrics on without metrics.listen")
	}
	var o *observability
	if a, err := o.listen("", nil); a != nil || err != nil {
		t.Errorf("listen with metrics off: %v %v", a, err)
	}
	o.reloaded(true)
	o.close()
}

// The README's table of metrics is the registry's: every heloguard_ metric,
// its type, labels and help text.
func TestReadmeMetricsTable(t *testing.T) {
	d := startMetricsDaemon(t)
	d.session(t, "192.0.2.66", "vps66.cheap-hosting.example") // decisions have a series
	mfs, err := d.obs.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "heloguard_") {
			continue
		}
		var labels []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, "`"+l.GetName()+"`")
		}
		sort.Strings(labels)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", mf.GetName(), strings.ToLower(mf.GetType().String()), strings.Join(labels, ", "), mf.GetHelp())
	}
	if got := section(t, "docs/reference.md", "metrics-table"); got != b.String() {
		t.Errorf("docs/reference.md's metrics table differs from the metrics registered; it should read:\n%s", b.String())
	}
}
