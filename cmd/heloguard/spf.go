package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

func cmdSPF(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("spf", "spf [--config FILE] [--json] IP DOMAIN [--sender ADDR] [--helo NAME]", stderr)
	cfgPath := fs.String("config", "", "config `file` (for dns settings; default: built-in defaults)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	sender := fs.String("sender", "", "MAIL FROM `address` (default postmaster@DOMAIN)")
	helo := fs.String("helo", "", "HELO `name` for the %{h} macro (default DOMAIN)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "heloguard spf: need IP and DOMAIN")
		fs.Usage()
		return exitUsage
	}
	ip, err := netip.ParseAddr(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "heloguard spf: %q is not an IP address\n", pos[0])
		return exitUsage
	}
	domain := pos[1]
	if *helo == "" {
		*helo = domain
	}
	cfg, res, code := loadWithResolver(*cfgPath, stderr)
	if cfg == nil {
		return code
	}
	var trace []string
	tally := &dnscache.Tally{}
	ctx := dnscache.WithTally(context.Background(), tally)
	result := policy.CheckHost(ctx, res, ip, domain, *sender, *helo, func(s string) { trace = append(trace, s) })
	// The lookups that failed, and why: what a temperror comes from.
	failures := tally.Failures()
	for _, f := range failures {
		trace = append(trace, "DNS failure: "+failureText(f))
	}
	if *asJSON {
		if trace == nil {
			trace = []string{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{
			"result": result, "ip": ip.Unmap().String(), "domain": domain,
			"sender": *sender, "helo": *helo, "trace": trace,
			"dns_failures": json.RawMessage(record.AppendFailures(nil, failures)),
		})
		return exitOK
	}
	for _, t := range trace {
		fmt.Fprintf(stdout, "  %s\n", t)
	}
	fmt.Fprintf(stdout, "spf: %s  (ip %s, domain %s)\n", result, ip.Unmap(), domain)
	return exitOK
}
