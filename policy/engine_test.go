package policy_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
)

// Tests of Evaluate through real DNS: a dnsworld server on loopback, read
// through dnscache, as the daemon does.

type dnsWorld struct {
	srv *dnsworld.Server
	eng *policy.Engine
}

// startWorld serves records (zone-file lines) with faults applied by setup,
// and builds an engine on the built-in rules, with no evidence cache so every
// decision does its own lookups.
func startWorld(t *testing.T, records []string, setup func(*dnsworld.Zone)) *dnsWorld {
	t.Helper()
	z := dnsworld.NewZone()
	for _, r := range records {
		if err := z.AddRR(r); err != nil {
			t.Fatalf("AddRR(%q): %v", r, err)
		}
	}
	if setup != nil {
		setup(z)
	}
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	opt := config.Default().PolicyOptions(res)
	opt.LocalNames = []string{"mx.receiver.example"}
	opt.EvidenceCacheSize = 0
	return &dnsWorld{srv: srv, eng: policy.New(opt)}
}

func (w *dnsWorld) evaluate(t *testing.T, ip, helo string) policy.Decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.eng.Evaluate(ctx, netip.MustParseAddr(ip), helo)
}

var oneToOne = []string{
	"25.2.0.192.in-addr.arpa. 300 IN PTR mail.one-to-one.example.",
	"mail.one-to-one.example. 300 IN A 192.0.2.25",
}

func TestEvaluateOneToOne(t *testing.T) {
	w := startWorld(t, oneToOne, nil)
	d := w.evaluate(t, "192.0.2.25", "MAIL.One-To-One.Example.")
	e := d.Evidence
	if d.Action != policy.ActionAccept || d.Rule != "helo-equals-ptr" || e.IPRev != policy.IPRevPass ||
		!slices.Equal(e.PTR, []string{"mail.one-to-one.example"}) || !slices.Equal(e.PTRConfirmed, e.PTR) ||
		!e.HeloMatchesPTR || !e.HeloAMatchesIP || !e.HeloAligned || e.SPFHelo != policy.SPFNone || e.HeloForm != policy.HeloFQDN {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, e)
	}
	if d.Duration <= 0 {
		t.Errorf("duration %v", d.Duration)
	}
}

// TestEvaluateMappedIPv4: ::ffff:192.0.2.25 is 192.0.2.25: the PTR is looked
// up under in-addr.arpa, never ip6.arpa, and the A record confirms it.
func TestEvaluateMappedIPv4(t *testing.T) {
	w := startWorld(t, oneToOne, nil)
	d := w.evaluate(t, "::ffff:192.0.2.25", "mail.one-to-one.example")
	if d.Rule != "helo-equals-ptr" || d.Evidence.IPRev != policy.IPRevPass || !d.Evidence.HeloAMatchesIP {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
	if n := w.srv.QueriesFor("25.2.0.192.in-addr.arpa.", dns.TypePTR); n != 1 {
		t.Errorf("%d PTR queries for 25.2.0.192.in-addr.arpa.", n)
	}
	// A literal of the mapped form matches the IPv4 client too.
	d = w.evaluate(t, "::ffff:192.0.2.25", "[IPv6:::ffff:192.0.2.25]")
	if d.Rule != "helo-literal" || !d.Evidence.HeloLiteralMatchesIP {
		t.Errorf("mapped literal: %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
	d = w.evaluate(t, "::ffff:192.0.2.25", "[192.0.2.25]")
	if d.Rule != "helo-literal" {
		t.Errorf("IPv4 literal from a mapped client: %s by %s", d.Action, d.Rule)
	}
}

func TestEvaluateIPv6(t *testing.T) {
	ptr, _ := dns.ReverseAddr("2001:db8::25")
	w := startWorld(t, []string{
		ptr + " 300 IN PTR mail6.sender.example.",
		"mail6.sender.example. 300 IN AAAA 2001:db8::25",
	}, nil)
	d := w.evaluate(t, "2001:db8::25", "mail6.sender.example")
	if d.Rule != "helo-equals-ptr" || d.Evidence.IPRev != policy.IPRevPass || !d.Evidence.HeloAMatchesIP {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
}

// TestEvaluateManyPTRNames: at most 10 PTR names are forward-checked.
func TestEvaluateManyPTRNames(t *testing.T) {
	var records []string
	var names []string
	for i := 1; i <= 14; i++ {
		name := fmt.Sprintf("n%02d.many.example.", i)
		names = append(names, name)
		records = append(records,
			"40.2.0.192.in-addr.arpa. 300 IN PTR "+name,
			name+" 300 IN A 198.51.100.1") // none comes back
	}
	w := startWorld(t, records, nil)
	d := w.evaluate(t, "192.0.2.40", "")
	if d.Evidence.IPRev != policy.IPRevFail {
		t.Errorf("iprev %s", d.Evidence.IPRev)
	}
	if len(d.Evidence.PTR) != 14 {
		t.Errorf("evidence lists %d PTR names, want all 14: %v", len(d.Evidence.PTR), d.Evidence.PTR)
	}
	checked := 0
	for _, n := range names {
		if w.srv.QueriesFor(n, dns.TypeA) > 0 {
			checked++
		}
	}
	if checked != 10 {
		t.Errorf("%d PTR names forward-checked, want 10", checked)
	}
	d = w.evaluate(t, "192.0.2.40", "n01.many.example")
	if d.Evidence.IPRev != policy.IPRevFail || d.Rule != "ptr-not-confirmed" {
		t.Errorf("got %s by %s, iprev %s", d.Action, d.Rule, d.Evidence.IPRev)
	}
}

// TestEvaluateRFC2317: classless reverse delegation puts a CNAME in front of
// the PTR; it must be followed.
func TestEvaluateRFC2317(t *testing.T) {
	w := startWorld(t, []string{
		"70.2.0.192.in-addr.arpa. 300 IN CNAME 70.64-127.2.0.192.in-addr.arpa.",
		"70.64-127.2.0.192.in-addr.arpa. 300 IN PTR mail.classless.example.",
		"mail.classless.example. 300 IN A 192.0.2.70",
	}, nil)
	d := w.evaluate(t, "192.0.2.70", "mail.classless.example")
	if d.Evidence.IPRev != policy.IPRevPass || !slices.Equal(d.Evidence.PTRConfirmed, []string{"mail.classless.example"}) || d.Rule != "helo-equals-ptr" {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
}

// TestEvaluateForwardTemperror: when no PTR name is confirmed and a forward
// lookup failed temporarily, iprev is temperror, not fail; a confirmed name
// elsewhere still makes it pass.
func TestEvaluateForwardTemperror(t *testing.T) {
	records := []string{
		"80.2.0.192.in-addr.arpa. 300 IN PTR broken.example.",
		"80.2.0.192.in-addr.arpa. 300 IN PTR wrong.example.",
		"broken.example. 300 IN A 192.0.2.80",
		"wrong.example. 300 IN A 198.51.100.80",
		"81.2.0.192.in-addr.arpa. 300 IN PTR broken.example.",
		"81.2.0.192.in-addr.arpa. 300 IN PTR good.example.",
		"good.example. 300 IN A 192.0.2.81",
	}
	w := startWorld(t, records, func(z *dnsworld.Zone) { z.AddFault("broken.example.", dns.TypeA, dnsworld.FaultServfail) })
	d := w.evaluate(t, "192.0.2.80", "wrong.example")
	if d.Evidence.IPRev != policy.IPRevTempError || len(d.Evidence.PTRConfirmed) != 0 || d.Rule != "reverse-dns-temperror" || d.Action != policy.ActionTempfail {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
	if w.srv.QueriesFor("broken.example.", dns.TypeA) == 0 {
		t.Errorf("broken.example was not looked up")
	}
	d = w.evaluate(t, "192.0.2.81", "good.example")
	if d.Evidence.IPRev != policy.IPRevPass || !slices.Equal(d.Evidence.PTRConfirmed, []string{"good.example"}) || d.Rule != "helo-equals-ptr" {
		t.Errorf("one name confirmed: %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
}

// An address of the client in the A records is a match, even when the AAAA
// lookup of the same name fails (a broken server that SERVFAILs on AAAA): for
// the PTR name (iprev pass, not temperror) and for the HELO
// (helo_a_matches_ip, not helo_a_temperror).
func TestEvaluateAddressDespiteFailedSibling(t *testing.T) {
	records := []string{
		"40.2.0.192.in-addr.arpa. 300 IN PTR mail.v4.example.",
		"mail.v4.example. 300 IN A 192.0.2.40",
		"relay.v4.example. 300 IN A 192.0.2.40",
		"other.v4.example. 300 IN A 192.0.2.41",
	}
	w := startWorld(t, records, func(z *dnsworld.Zone) {
		for _, n := range []string{"mail.v4.example.", "relay.v4.example.", "other.v4.example."} {
			z.AddFault(n, dns.TypeAAAA, dnsworld.FaultServfail)
		}
	})
	d := w.evaluate(t, "192.0.2.40", "relay.v4.example")
	if d.Evidence.IPRev != policy.IPRevPass || !d.Evidence.HeloAMatchesIP || d.Evidence.HeloATempError || d.Rule != "helo-a-matches" {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
	// Without the client's address, the failure leaves the match unknown.
	d = w.evaluate(t, "192.0.2.40", "other.v4.example")
	if d.Evidence.HeloAMatchesIP || !d.Evidence.HeloATempError || d.Rule != "helo-a-temperror" || d.Action != policy.ActionTempfail {
		t.Errorf("no address of the client: %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
}

func TestEvaluatePTRTemperror(t *testing.T) {
	w := startWorld(t, []string{"90.2.0.192.in-addr.arpa. 300 IN PTR x.example."}, func(z *dnsworld.Zone) {
		z.AddFault("90.2.0.192.in-addr.arpa.", dns.TypePTR, dnsworld.FaultServfail)
	})
	if d := w.evaluate(t, "192.0.2.90", "x.example"); d.Evidence.IPRev != policy.IPRevTempError || d.Rule != "reverse-dns-temperror" {
		t.Errorf("got %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
	if d := w.evaluate(t, "192.0.2.91", "x.example"); d.Evidence.IPRev != policy.IPRevPermError || d.Rule != "no-ptr" {
		t.Errorf("no PTR: %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
}

// TestEvaluateTrustedNoDNS: a client in trusted_networks costs no query.
func TestEvaluateTrustedNoDNS(t *testing.T) {
	w := startWorld(t, oneToOne, nil)
	for _, ip := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.2"} {
		d := w.evaluate(t, ip, "mail.one-to-one.example")
		if !d.Trusted || d.Rule != policy.RuleTrusted || d.Action != policy.ActionAccept {
			t.Errorf("%s: %+v", ip, d)
		}
	}
	if n := w.srv.Queries(); n != 0 {
		t.Errorf("%d DNS queries for trusted clients", n)
	}
}

// TestDecideUnknownClient: a client without an address gets
// UnknownClientAction, tempfail by default, with a reply that says why.
func TestDecideUnknownClient(t *testing.T) {
	for _, tc := range []struct {
		action policy.Action
		reply  string
	}{
		{"", "451 4.7.1 client address unknown to the MTA; try again later"},
		{policy.ActionTempfail, "451 4.7.1 client address unknown to the MTA; try again later"},
		{policy.ActionReject, "550 5.7.1 client address unknown to the MTA"},
		{policy.ActionAccept, ""},
	} {
		e := policy.New(policy.Options{UnknownClientAction: tc.action})
		d := e.DecideUnknownClient("mail.example")
		want := tc.action
		if want == "" {
			want = policy.ActionTempfail
		}
		if d.Rule != policy.RuleUnknownClient || d.Action != want || d.Reply.String() != tc.reply || d.Trusted ||
			d.Helo.Raw != "mail.example" || d.Evidence.HeloForm != policy.HeloFQDN {
			t.Errorf("%q: %+v", tc.action, d)
		}
	}
}

func TestEvaluateOffice365(t *testing.T) {
	w := startWorld(t, []string{
		"131.38.47.104.in-addr.arpa. 3600 IN PTR mail-bl2nam02on0131.outbound.protection.outlook.com.",
		"mail-bl2nam02on0131.outbound.protection.outlook.com. 3600 IN A 104.47.38.131",
		"NAM02-BL2-obe.outbound.protection.outlook.com. 3600 IN A 207.46.163.79",
		`NAM02-BL2-obe.outbound.protection.outlook.com. 3600 IN TXT "v=spf1 ip4:104.47.0.0/17 -all"`,
		"66.2.0.192.in-addr.arpa. 3600 IN PTR vps66.cheap-hosting.example.",
		"vps66.cheap-hosting.example. 3600 IN A 192.0.2.66",
	}, nil)
	d := w.evaluate(t, "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com")
	if d.Rule != "generic-helo" || d.Action != policy.ActionAccept || d.Evidence.SPFHelo != policy.SPFPass || !d.Evidence.HeloAligned || d.Evidence.HeloAMatchesIP {
		t.Errorf("Office 365: %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
	d = w.evaluate(t, "192.0.2.66", "NAM02-BL2-obe.outbound.protection.outlook.com")
	if d.Rule != "helo-spf-fail" || d.Action != policy.ActionReject || d.Evidence.HeloAligned {
		t.Errorf("forger: %s by %s, evidence %+v", d.Action, d.Rule, d.Evidence)
	}
}

// TestEvaluateTimeout: evidence not complete within the budget gives the
// timeout action, with a 4.4.3 reply.
func TestEvaluateTimeout(t *testing.T) {
	w := startWorld(t, oneToOne, nil)
	w.srv.SetDelay(700 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	d := w.eng.Evaluate(ctx, netip.MustParseAddr("192.0.2.25"), "mail.one-to-one.example")
	if took := time.Since(start); took > 600*time.Millisecond {
		t.Errorf("Evaluate took %v with a 100ms budget", took)
	}
	if d.Rule != policy.RuleTimeout || d.Action != policy.ActionTempfail || d.Reply.Code != 451 || d.Reply.Enhanced != "4.4.3" {
		t.Errorf("got %+v", d)
	}
}

// TestDecideWithPendingReverse: reverse lookups started at connect give the
// same decision as a fresh Evaluate, and are not repeated.
func TestDecideWithPendingReverse(t *testing.T) {
	w := startWorld(t, oneToOne, nil)
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.25")
	pending := w.eng.StartReverse(ctx, ip)
	rev, ok := pending.Wait(ctx)
	if !ok || rev.IPRev != policy.IPRevPass {
		t.Fatalf("reverse %+v %v", rev, ok)
	}
	d := w.eng.Decide(ctx, ip, "mail.one-to-one.example", pending)
	if d.Rule != "helo-equals-ptr" {
		t.Errorf("got %s by %s", d.Action, d.Rule)
	}
	if n := w.srv.QueriesFor("25.2.0.192.in-addr.arpa.", dns.TypePTR); n != 1 {
		t.Errorf("%d PTR queries", n)
	}
}
