package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

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
		// The decision record the daemon would log, without the session's
		// fields (port, queue id, stage).
		r := record.FromDecision(d, ip)
		r.Time = time.Now()
		r.Mode = record.ModeEnforce
		if d.Monitor {
			r.Mode = record.ModeMonitorRule
		} else if cfg.Mode == config.ModeMonitor {
			r.Mode = record.ModeMonitor
		}
		r.DNSLookups, r.DNSCacheHits = tally.Lookups.Load(), tally.Hits.Load()
		r.DNSFailures = tally.Failures()
		var out bytes.Buffer
		if err := json.Indent(&out, r.AppendJSON(nil), "", "  "); err != nil {
			fmt.Fprintf(stderr, "heloguard check: %v\n", err)
			return exitFailed
		}
		out.WriteByte('\n')
		_, _ = out.WriteTo(stdout)
		return exitOK
	}
	explain(stdout, ip.Unmap(), d)
	if fs := tally.Failures(); len(fs) > 0 {
		fmt.Fprintln(stdout, "DNS failures:")
		for _, f := range fs {
			fmt.Fprintf(stdout, "  %s\n", failureText(f))
		}
	}
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
func explain(w io.Writer, ip netip.Addr, d policy.Decision) {
	shown := d.Helo.Raw
	if shown == "" {
		shown = "(none sent)"
	}
	fmt.Fprintf(w, "client %s  HELO %s\n\n", ip, policy.ClientText(shown, 255))
	if d.Trusted {
		fmt.Fprintf(w, "%s is in trusted_networks: accepted without any DNS lookup\n", ip)
		return
	}
	fmt.Fprintln(w, "evidence:")
	for _, f := range policy.Fields() {
		v := f.String(&d.Evidence)
		if f.Kind == policy.KindNames && v == "" {
			v = "(none)"
		}
		fmt.Fprintf(w, "  %-24s %s%s\n", f.Name, policy.ClientText(v, 1000), fieldNote(f.Name, d))
	}
	fmt.Fprintln(w)
	verdict := string(d.Action)
	if d.Monitor {
		verdict += " (monitor: logged, not enforced)"
	}
	fmt.Fprintf(w, "decision: %s by rule %s\n", verdict, d.Rule)
	switch {
	case d.Matched != nil:
		fmt.Fprintf(w, "  because: %s  [%s]\n", d.Matched.Match.Describe(), d.Matched.Source)
	case d.Rule == policy.RuleTimeout:
		fmt.Fprintln(w, "  because: DNS did not answer within decision_timeout")
	case d.Rule == policy.RuleNoMatch:
		fmt.Fprintln(w, "  because: no rule matched")
	}
	if s := d.Reply.String(); s != "" {
		fmt.Fprintf(w, "  reply: %s\n", s)
	}
}

// fieldNote adds what makes a value readable: the words of an iprev result,
// the organizational domains behind helo_aligned and ptr_spf.
func fieldNote(name string, d policy.Decision) string {
	e := d.Evidence
	switch name {
	case "iprev":
		return "  " + iprevWords(e.IPRev)
	case "helo_aligned":
		if org, ok := policy.OrgDomain(d.Helo.Name); ok && d.Helo.Form == policy.HeloFQDN {
			return "  (HELO organizational domain " + org + ")"
		}
	case "ptr_spf":
		if len(e.PTRConfirmed) > 0 {
			if org, ok := policy.OrgDomain(e.PTRConfirmed[0]); ok {
				return "  (SPF of " + org + ")"
			}
		}
	}
	return ""
}

// failureText is a failed lookup for a person: "PTR 99.2.0.192.in-addr.arpa:
// servfail from 127.0.0.1:53".
func failureText(f dnscache.Failure) string {
	s := f.Type + " " + policy.ClientText(f.Name, 255) + ": " + string(f.Cause)
	switch {
	case f.Server != "":
		s += " from " + f.Server
	case f.Cause == dnscache.CauseTimeout:
		s += " (the decision's time ran out first)"
	}
	if f.Cached {
		s += " (cached failure, at most dns.failure_ttl old)"
	}
	return s
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
