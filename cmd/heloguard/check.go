package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
)

// checkJSON is the shape of `check --json`: one object, stable field names.
type checkJSON struct {
	Action     policy.Action   `json:"action"`
	Rule       string          `json:"rule"`
	Monitor    bool            `json:"monitor"`
	Reply      string          `json:"reply"`
	IP         string          `json:"ip"`
	Helo       string          `json:"helo"`
	Evidence   policy.Evidence `json:"evidence"`
	DurationMS float64         `json:"duration_ms"`
	DNSLookups int64           `json:"dns_lookups"`
	DNSHits    int64           `json:"dns_cache_hits"`
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "check [--config FILE] [--json] IP HELO", stderr)
	cfgPath := fs.String("config", "", "config `file` (default: built-in defaults)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "heloguard check: need IP and HELO (use \"\" for a client that sent no HELO)")
		fs.Usage()
		return exitUsage
	}
	ip, err := netip.ParseAddr(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "heloguard check: %q is not an IP address\n", pos[0])
		return exitUsage
	}
	cfg, res, code := loadWithResolver(*cfgPath, stderr)
	if cfg == nil {
		return code
	}
	eng := policy.New(cfg.PolicyOptions(res))
	tally := &dnscache.Tally{}
	ctx, cancel := context.WithTimeout(dnscache.WithTally(context.Background(), tally), cfg.DecisionTimeout)
	defer cancel()
	d := eng.Evaluate(ctx, ip, pos[1])
	if *asJSON {
		out := checkJSON{
			Action: d.Action, Rule: d.Rule, Monitor: d.Monitor, Reply: d.Reply.String(),
			IP: ip.Unmap().String(), Helo: pos[1], Evidence: d.Evidence,
			DurationMS: float64(d.Duration.Microseconds()) / 1000,
			DNSLookups: tally.Lookups.Load(), DNSHits: tally.Hits.Load(),
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return exitOK
	}
	explain(stdout, eng, ip.Unmap(), pos[1], d)
	fmt.Fprintf(stdout, "took %s, %d DNS lookups (%d answered from cache)\n",
		d.Duration.Round(time.Millisecond/10), tally.Lookups.Load(), tally.Hits.Load())
	return exitOK
}

// loadWithResolver loads the config and builds its resolver, reporting errors.
func loadWithResolver(path string, stderr io.Writer) (*config.Config, *dnscache.Resolver, int) {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "heloguard: %v\n", err)
		return nil, nil, exitUsage
	}
	res, err := dnscache.New(cfg.DNS)
	if err != nil {
		fmt.Fprintf(stderr, "heloguard: dns: %v\n", err)
		return nil, nil, exitUsage
	}
	return cfg, res, exitOK
}

// explain prints a decision for a person: the evidence, the rule and why.
func explain(w io.Writer, eng *policy.Engine, ip netip.Addr, helo string, d policy.Decision) {
	shown := helo
	if shown == "" {
		shown = "(none sent)"
	}
	fmt.Fprintf(w, "client %s  HELO %s\n\n", ip, policy.ClientText(shown, 255))
	if d.Trusted {
		fmt.Fprintf(w, "%s is in trusted_networks: accepted without any DNS lookup\n", ip)
		return
	}
	e := d.Evidence
	rows := [][2]string{
		{"iprev", string(e.IPRev) + "  " + iprevWords(e.IPRev)},
		{"ptr", listOrNone(e.PTR)},
		{"ptr_confirmed", listOrNone(e.PTRConfirmed)},
		{"ptr_generic", fmt.Sprint(e.PTRGeneric)},
		{"helo_form", string(e.HeloForm)},
		{"helo_matches_ptr", fmt.Sprint(e.HeloMatchesPTR)},
		{"helo_a_matches_ip", fmt.Sprint(e.HeloAMatchesIP)},
		{"helo_literal_matches_ip", fmt.Sprint(e.HeloLiteralMatchesIP)},
		{"helo_aligned", fmt.Sprint(e.HeloAligned) + alignWords(helo, e)},
		{"spf_helo", string(e.SPFHelo)},
		{"helo_is_local", fmt.Sprint(e.HeloIsLocal)},
	}
	fmt.Fprintln(w, "evidence:")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-24s %s\n", r[0], r[1])
	}
	fmt.Fprintln(w)
	verdict := string(d.Action)
	if d.Monitor {
		verdict += " (monitor: logged, not enforced)"
	}
	fmt.Fprintf(w, "decision: %s by rule %s\n", verdict, d.Rule)
	for _, r := range eng.Rules() {
		if r.Name == d.Rule {
			fmt.Fprintf(w, "  because: %s  [%s]\n", r.Match.Describe(), r.Source)
		}
	}
	if d.Rule == policy.RuleTimeout {
		fmt.Fprintln(w, "  because: DNS did not answer within decision_timeout")
	}
	if s := d.Reply.String(); s != "" {
		fmt.Fprintf(w, "  reply: %s\n", s)
	}
}

func iprevWords(r policy.IPRevResult) string {
	switch r {
	case policy.IPRevPass:
		return "(a PTR name resolves back to the IP)"
	case policy.IPRevFail:
		return "(PTR names exist, none resolves back to the IP)"
	case policy.IPRevPermError:
		return "(no PTR record)"
	case policy.IPRevTempError:
		return "(DNS failed temporarily)"
	}
	return ""
}

func alignWords(helo string, e policy.Evidence) string {
	h := policy.ParseHelo(helo)
	org, ok := policy.OrgDomain(h.Name)
	if h.Form != policy.HeloFQDN || !ok {
		return ""
	}
	return "  (HELO organizational domain " + org + ")"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}
