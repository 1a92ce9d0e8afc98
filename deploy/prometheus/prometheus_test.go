// Package prometheus_test proves heloguard's metrics with a real Prometheus:
// Debian's prometheus binary, run with its own config and data directory on
// loopback, scrapes a heloguard daemon (every second) while real milter
// sessions go through it: accepted, rejected, tempfailed, a monitor rule, a
// postmaster exemption, and config reloads good and bad. Then every PromQL
// expression of the Grafana dashboard (deploy/grafana/heloguard.json) is
// evaluated through Prometheus's HTTP API and must parse and return data, the
// counters Prometheus holds must equal what the sessions produced, and
// `promtool check metrics` must find nothing wrong with a scrape.
//
// It skips without prometheus and promtool, or fails under HELOGUARD_E2E=1;
// deploy/install-test-deps.sh installs them. All traffic is on 127.0.0.1.
package prometheus_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy/scenario"
)

// prom is a Prometheus server run by the test.
type prom struct {
	api string // http://127.0.0.1:port
}

// startPrometheus runs prometheus with a config that scrapes target every
// second, its data in a temporary directory, its web and API on a free port.
func startPrometheus(t *testing.T, bin, promtool, target string) *prom {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`# written by the heloguard Prometheus end-to-end test
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: heloguard
    static_configs:
      - targets: [%q]
`, target)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t))
	cmd := exec.Command(bin,
		"--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus's output:\n%s", logs.String())
		}
	})
	p := &prom{api: "http://" + addr}
	ready := e2e.WaitFor(30*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		resp, err := http.Get(p.api + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-exited:
		t.Fatalf("prometheus exited at start:\n%s", logs.String())
	default:
	}
	if !ready {
		t.Fatalf("prometheus not ready on %s within 30s:\n%s", addr, logs.String())
	}
	return p
}

// sample is one series of an instant query's result.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates expr at the current time through /api/v1/query. A parse or
// evaluation error is returned, not fatal.
func (p *prom) query(expr string) ([]sample, error) {
	resp, err := http.PostForm(p.api+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %v", resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	var out []sample
	switch r.Data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		for _, s := range v {
			f, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
			if err != nil {
				return nil, err
			}
			out = append(out, sample{s.Metric, f})
		}
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(r.Data.Result, &s); err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(fmt.Sprint(s[1]), 64)
		if err != nil {
			return nil, err
		}
		out = append(out, sample{nil, f})
	default:
		return nil, fmt.Errorf("result type %s", r.Data.ResultType)
	}
	return out, nil
}

func (p *prom) mustQuery(t *testing.T, expr string) []sample {
	t.Helper()
	s, err := p.query(expr)
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return s
}

// lastScrape is the time of the last scrape of heloguard that succeeded, or
// zero. (timestamp() gives a sample's own time only of a plain selector: of
// anything computed, such as up == 1, it gives the evaluation time.)
func (p *prom) lastScrape() time.Time {
	up, err := p.query(`up{job="heloguard"}`)
	if err != nil || len(up) != 1 || up[0].Value != 1 {
		return time.Time{}
	}
	s, err := p.query(`timestamp(up{job="heloguard"})`)
	if err != nil || len(s) != 1 {
		return time.Time{}
	}
	return time.Unix(0, int64(s[0].Value*1e9))
}

// waitScrapes waits until Prometheus has scraped heloguard n times after
// after: what the counters held at after is then in its database, sampled
// more than once.
func (p *prom) waitScrapes(t *testing.T, after time.Time, n int) {
	t.Helper()
	seen, last := 0, after
	if !e2e.WaitFor(30*time.Second, func() bool {
		if ts := p.lastScrape(); ts.After(last) {
			seen, last = seen+1, ts
		}
		return seen >= n
	}) {
		t.Fatalf("prometheus did not scrape heloguard %d times after %s within 30s (saw %d)", n, after.Format(time.RFC3339Nano), seen)
	}
}

// client is one scenario client and what its sessions do.
type client struct {
	scenario string // case name in the scenario files
	rcpt     string // the recipient
	wantCode int    // SMTP code at RCPT; 0 = continue
	wantRule string
	wantKey  string // rule/action/enforcement the decision is counted under
	perRound int
	c        scenario.Case
	accepted bool // the message is sent (headers, body, end of message)
}

// clients are the sessions of one round. The daemon's config makes
// generic-ptr a monitor rule.
func clients() []*client {
	return []*client{
		{scenario: "office365-generic-helo-blog-example", rcpt: "<user@receiver.example>", wantRule: "generic-helo", wantKey: "generic-helo/accept/enforce", perRound: 3, accepted: true},
		{scenario: "forged-office365-helo", rcpt: "<user@receiver.example>", wantCode: 550, wantRule: "helo-spf-fail", wantKey: "helo-spf-fail/reject/enforce", perRound: 4},
		{scenario: "reverse-dns-servfail", rcpt: "<user@receiver.example>", wantCode: 451, wantRule: "reverse-dns-temperror", wantKey: "reverse-dns-temperror/tempfail/enforce", perRound: 2},
		{scenario: "cable-modem-helo-as-ptr", rcpt: "<user@receiver.example>", wantRule: "generic-ptr", wantKey: "generic-ptr/reject/monitor", perRound: 2, accepted: true},
		{scenario: "forged-office365-helo", rcpt: "<postmaster@receiver.example>", wantRule: "helo-spf-fail", wantKey: "helo-spf-fail/reject/exempt", perRound: 1, accepted: true},
	}
}

// session plays one Postfix-shaped milter session and returns the RCPT
// answer.
func session(t *testing.T, addr string, cl *client, port uint16) *gomilter.Action {
	t.Helper()
	c := gomilter.NewClient("tcp", addr)
	cs, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	step := func(what string, a *gomilter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s %s: %v", cl.scenario, what, err)
		}
		if a.Type != gomilter.ActionContinue && !(what == "eom" && a.Type == gomilter.ActionAccept) {
			t.Fatalf("%s %s: %v %d %s, want continue", cl.scenario, what, a, a.SMTPCode, a.SMTPReply)
		}
	}
	a, err := cs.Conn("["+cl.c.IP+"]", gomilter.FamilyInet, port, cl.c.IP)
	step("connect", a, err)
	a, err = cs.Helo(cl.c.Helo)
	step("helo", a, err)
	a, err = cs.Mail("<sender@sender.example>", "")
	step("mail", a, err)
	rcpt, err := cs.Rcpt(cl.rcpt, "")
	if err != nil {
		t.Fatalf("%s rcpt: %v", cl.scenario, err)
	}
	if cl.accepted && rcpt.Type == gomilter.ActionContinue {
		a, err = cs.DataStart()
		step("data", a, err)
		a, err = cs.HeaderField("Subject", "metrics", nil)
		step("header", a, err)
		a, err = cs.HeaderEnd()
		step("eoh", a, err)
		a, err = cs.BodyChunk([]byte("metrics\r\n"))
		step("body", a, err)
		_, a, err = cs.End()
		step("eom", a, err)
	}
	cs.Abort(nil)
	return rcpt
}

func TestPrometheus(t *testing.T) {
	promBin := e2e.Tool(t, "prometheus")
	promtool := e2e.Tool(t, "promtool")
	sc, dns := e2e.StartDNS(t)
	byName := map[string]scenario.Case{}
	for _, c := range sc.Cases {
		byName[c.Name] = c
	}
	cls := clients()
	for _, cl := range cls {
		c, ok := byName[cl.scenario]
		if !ok {
			t.Fatalf("no scenario case %s", cl.scenario)
		}
		cl.c = c
	}
	bin := e2e.Build(t)
	cfg := e2e.Config{
		DNS:     dns.Addr,
		Metrics: fmt.Sprintf("127.0.0.1:%d", e2e.FreePort(t)),
		Extra:   "overrides:\n  generic-ptr: {monitor: true}\n",
	}
	d := e2e.StartDaemon(t, bin, cfg)
	p := startPrometheus(t, promBin, promtool, cfg.Metrics)
	p.waitScrapes(t, time.Time{}, 1) // the target is up
	// StartDaemon's wait for the milter port was a connection, and so a
	// session: the sessions before ours.
	before := p.mustQuery(t, `heloguard_milter_sessions_total`)
	if len(before) != 1 {
		t.Fatalf("heloguard_milter_sessions_total: %v", before)
	}

	want := map[string]float64{}
	sessions := 0
	port := uint16(41000)
	round := func(n int) {
		for _, cl := range cls {
			for range cl.perRound {
				port++
				a := session(t, d.Addr, cl, port)
				switch {
				case cl.wantCode == 0 && a.Type != gomilter.ActionContinue,
					cl.wantCode != 0 && (a.Type != gomilter.ActionRejectWithCode || int(a.SMTPCode) != cl.wantCode):
					t.Fatalf("round %d, %s RCPT %s: %v %d %s, want %d", n, cl.scenario, cl.rcpt, a, a.SMTPCode, a.SMTPReply, cl.wantCode)
				}
				got, raw := d.WaitDecision(t, cl.c.IP, int(port))
				if len(got) != 1 || got[0].Rule != cl.wantRule {
					t.Fatalf("round %d, %s: decision lines %v, want one by %s", n, cl.scenario, raw, cl.wantRule)
				}
				want[cl.wantKey]++
				sessions++
			}
		}
	}

	// Round one, a scrape, the reloads (a bad one, then a good one), a
	// scrape, round two: every counter moves between scrapes, so every rate
	// in the dashboard has something to say.
	round(1)
	p.waitScrapes(t, time.Now(), 1)
	good, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.ConfigPath, []byte("mode: sideways\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGHUP)
	if !e2e.WaitFor(10*time.Second, func() bool { return strings.Contains(d.Stderr(), "reload failed") }) {
		t.Fatalf("no failed reload reported:\n%s", d.Stderr())
	}
	if err := os.WriteFile(d.ConfigPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	d.Reload(t, d.Cfg)
	p.waitScrapes(t, time.Now(), 1)
	round(2)
	p.waitScrapes(t, time.Now(), 2)

	t.Run("counters", func(t *testing.T) {
		got := map[string]float64{}
		for _, s := range p.mustQuery(t, `heloguard_decisions_total{job="heloguard"}`) {
			got[s.Metric["rule"]+"/"+s.Metric["action"]+"/"+s.Metric["enforcement"]] = s.Value
		}
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
			t.Errorf("heloguard_decisions_total in Prometheus:\n got %v\nwant %v", sorted(got), sorted(want))
		}
		// The decision log says the same, line by line.
		all, _, bad := d.Decisions()
		if len(bad) > 0 || len(all) != sessions {
			t.Errorf("%d decision lines (%d bad), want %d", len(all), len(bad), sessions)
		}
		for _, c := range []struct {
			expr string
			want float64
		}{
			{`heloguard_decisions_total{rule="helo-spf-fail",action="reject",enforcement="enforce"}`, 8},
			{`sum(heloguard_decisions_total)`, float64(sessions)},
			{`heloguard_decision_duration_seconds_count`, float64(sessions)},
			{`heloguard_milter_sessions_total`, before[0].Value + float64(sessions)},
			{`heloguard_milter_sessions_in_flight`, 0},
			{`sum(heloguard_milter_protocol_errors_total)`, 0},
			{`heloguard_config_reloads_total{result="success"}`, 1},
			{`heloguard_config_reloads_total{result="failure"}`, 1},
			{`heloguard_config_last_reload_successful`, 1},
			{`count(heloguard_build_info{version!="",revision!="",goversion=~"go.+"})`, 1},
			{`sum(heloguard_evidence_cache_hits_total) > 0`, -1},
			{`sum(heloguard_evidence_cache_misses_total) > 0`, -1},
			{`sum(heloguard_dns_cache_hits_total) > 0`, -1},
			{`sum(heloguard_dns_upstream_queries_total{outcome="answer",type="PTR"}) > 0`, -1},
			{`sum(heloguard_dns_upstream_queries_total{outcome="servfail",type="PTR"}) > 0`, -1},
			{`sum(heloguard_dns_upstream_duration_seconds_count{server="` + dns.Addr + `"}) == sum(heloguard_dns_upstream_queries_total)`, -1},
		} {
			s := p.mustQuery(t, c.expr)
			switch {
			case len(s) != 1:
				t.Errorf("%s: %d series, want 1: %v", c.expr, len(s), s)
			case c.want >= 0 && s[0].Value != c.want:
				t.Errorf("%s = %v, want %v", c.expr, s[0].Value, c.want)
			}
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		exprs, vars := dashboard(t, "../grafana/heloguard.json")
		if len(exprs) < 10 {
			t.Fatalf("only %d expressions in the dashboard", len(exprs))
		}
		answered := 0
		for _, e := range exprs {
			s, err := p.query(e.expr)
			switch {
			case err != nil:
				t.Errorf("panel %q: %s\n  %v", e.panel, e.expr, err)
			case len(s) == 0:
				t.Errorf("panel %q: no data from %s", e.panel, e.expr)
			case !anyFinite(s):
				t.Errorf("panel %q: only NaN or Inf from %s: %v", e.panel, e.expr, s)
			default:
				answered++
				t.Logf("panel %q: %d series from %s", e.panel, len(s), e.expr)
			}
		}
		// The instance variable's label_values(metric, label).
		for _, v := range vars {
			m := labelValuesRE.FindStringSubmatch(v)
			if m == nil {
				t.Errorf("template variable query %q is not label_values(metric, label)", v)
				continue
			}
			s := p.mustQuery(t, fmt.Sprintf("count by (%s) (%s)", m[2], m[1]))
			if len(s) == 0 || s[0].Metric[m[2]] == "" {
				t.Errorf("template variable %s: no values", v)
			}
		}
		t.Logf("Prometheus answered %d of the dashboard's %d expressions", answered, len(exprs))
	})

	t.Run("promtool-check-metrics", func(t *testing.T) {
		page := d.Scrape(t)
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(page)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
		if !strings.Contains(page, "heloguard_decisions_total{") {
			t.Errorf("the scrape has no decisions:\n%s", page)
		}
		for _, l := range strings.Split(page, "\n") {
			if strings.HasPrefix(l, "heloguard_") && !strings.Contains(l, "_bucket{") && !strings.HasSuffix(l, " 0") {
				t.Logf("scrape: %s", l)
			}
		}
	})
}

// labelValuesRE reads a Grafana label_values(metric, label) variable query.
var labelValuesRE = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

type expr struct{ panel, expr string }

// dashboard reads every target's expression of every panel (in rows too),
// with Grafana's variables as Grafana would substitute them here: the rate
// interval a minute, every instance. It fails on a variable it does not know.
func dashboard(t *testing.T, path string) ([]expr, []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	subst := strings.NewReplacer("$__rate_interval", "1m", "${instance}", ".*", "$instance", ".*")
	var out []expr
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				e := subst.Replace(tg.Expr)
				if strings.Contains(e, "$") {
					t.Errorf("panel %q: a variable the test does not know in %s", p.Title, tg.Expr)
				}
				out = append(out, expr{p.Title, e})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	var vars []string
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if json.Unmarshal(v.Query, &s) != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
			q.Query = s
		}
		vars = append(vars, q.Query)
	}
	return out, vars
}

func anyFinite(s []sample) bool {
	for _, x := range s {
		if !math.IsNaN(x.Value) && !math.IsInf(x.Value, 0) {
			return true
		}
	}
	return false
}

func sorted(m map[string]float64) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%g", k, v))
	}
	sort.Strings(out)
	return out
}
