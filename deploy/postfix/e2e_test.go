// Package postfix_test is heloguard's end-to-end test through a real Postfix:
// swaks connects with the haproxy protocol, so Postfix (and through it
// heloguard) sees each scenario's client address, while all traffic stays on
// 127.0.0.1. The Postfix main.cf is built from main.cf.snippet, so the snippet
// that ships is the one tested.
//
// It skips unless Postfix and swaks are installed and it runs as root; with
// HELOGUARD_E2E=1 those are failures instead. deploy/install-test-deps.sh
// installs the tools on Debian.
package postfix_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario"
)

// world is everything the subtests share.
type world struct {
	sc    *scenario.File
	hg    *e2e.Daemon
	pf    *postfix
	swaks string
	port  atomic.Int32 // next proxied source port
	runs  []e2e.Run    // every SMTP session, for the one-line-per-decision check
}

func (w *world) client(name, ip, helo string, rcpts ...string) client {
	if len(rcpts) == 0 {
		rcpts = []string{"user@receiver.example"}
	}
	port := int(w.port.Add(1))
	w.runs = append(w.runs, e2e.Run{Name: name, IP: ip, Port: port})
	return client{name: name, ip: ip, port: port, helo: helo, rcpts: rcpts}
}

func TestPostfix(t *testing.T) {
	w := &world{swaks: e2e.Tool(t, "swaks")}
	e2e.Tool(t, "postfix")
	e2e.Tool(t, "postconf")
	e2e.RequireRoot(t, "a throw-away Postfix instance")
	w.port.Store(40000)

	// 1. the scenario world on a fake DNS server
	sc, dns := e2e.StartDNS(t)
	w.sc = sc
	// 2. heloguard, built from this tree, as a real process: TCP for the plain
	// smtpd, and the unix socket the snippet documents for the chrooted one.
	bin := e2e.Build(t)
	w.pf = newPostfix(t)
	sn := loadSnippet(t, "127.0.0.1:0") // for its unix socket; the TCP address comes below
	sockPath := w.pf.chrootPath(sn.unixSpec)
	mkdirSocketDir(t, sockPath)
	w.hg = e2e.StartDaemon(t, bin, e2e.Config{
		DNS:    dns.Addr,
		Listen: []string{"unix:" + sockPath},
		Extra:  "socket_group: postfix\nsocket_mode: \"0660\"\n",
	})
	// 3. Postfix, its main.cf built from the shipped snippet
	sn = loadSnippet(t, w.hg.Addr)
	w.pf.start(t, sn)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Postfix maillog (tail):\n%s", tail(w.pf.log(), 60))
			t.Logf("--- heloguard stderr:\n%s", tail(w.hg.Stderr(), 40))
			w.hg.LogDecisions(t)
		}
	})

	// 4. every scenario case through Postfix
	t.Run("scenarios", func(t *testing.T) {
		for _, c := range sc.Cases {
			t.Run(c.Name, func(t *testing.T) { w.scenarioCase(t, c) })
		}
	})
	// 5. postmaster@ is accepted from a refused client
	t.Run("postmaster-exempt", w.postmasterExempt)
	// 7. Authentication-Results: ours added, a forged one removed
	t.Run("authentication-results", w.authResults)
	// what Postfix negotiates with heloguard, from its own verbose log
	t.Run("milter-protocol-v6", w.milterProtocol)
	// the unix socket variant of the snippet, with a chrooted smtpd
	t.Run("chroot-unix-socket", w.chrootUnixSocket)
	// 6. SIGHUP reload into monitor mode
	t.Run("monitor-reload", w.monitorReload)
	// 8. one JSON line per decision
	t.Run("decision-log", w.decisionLog)
	// milter_default_action = tempfail: heloguard down means 451, not accept
	t.Run("milter-down-tempfails", w.milterDown)
}

// scenarioCase sends the case's client through Postfix and checks the RCPT
// reply against the scenario's expectation and the policy's own reply
// (`heloguard check` on the same DNS), delivery, headers and the log line.
func (w *world) scenarioCase(t *testing.T, c scenario.Case) {
	exp := w.hg.Check(t, c.IP, c.Helo)
	if exp.Action != c.Expect {
		t.Errorf("heloguard check says %s (rule %s), the scenario expects %s", exp.Action, exp.Rule, c.Expect)
	}
	if c.Rule != "" && exp.Rule != c.Rule {
		t.Errorf("heloguard check decides by rule %s, the scenario expects %s", exp.Rule, c.Rule)
	}
	cl := w.client(c.Name, c.IP, c.Helo)
	var s e2e.Session
	if c.Helo == "" {
		// swaks always sends a HELO; a client that sends none is judged at MAIL
		// with an empty HELO and refused at RCPT.
		s = rawSession(t, w.pf.port, cl, []string{
			"MAIL FROM:<x@sender.example>", "RCPT TO:<user@receiver.example>", "QUIT"})
	} else {
		s = swaks(t, w.swaks, w.pf.port, cl)
	}
	t.Logf("client %s:%d HELO %q: RCPT -> %s", c.IP, cl.port, c.Helo, s.Reply("RCPT"))
	if r := s.Reply("MAIL"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("MAIL got %q, want 250 (refusals are due at RCPT)\n%s", r, s.Out)
	}
	rcpt := s.Reply("RCPT")
	switch string(c.Expect) {
	case "accept":
		if !strings.HasPrefix(rcpt, "250 ") {
			t.Fatalf("RCPT got %q, want 250\n%s", rcpt, s.Out)
		}
		if r := s.Reply("."); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("end of data got %q, want 250\n%s", r, s.Out)
		}
		m, ok := w.pf.waitDelivered(t, cl.id())
		if ok && !isTrusted(c.IP) {
			checkOurAR(t, m, c.IP, c.Helo, exp)
		}
		w.checkDecision(t, cl, exp, "", "enforce", c.Evidence, s.QueueID(queuedRE))
	case "reject", "tempfail":
		wantPrefix := "550 5."
		if c.Expect == "tempfail" {
			wantPrefix = "451 4.7.2" // 4.7.25 reverse DNS, 4.7.24 SPF
		}
		if rcpt != exp.Reply || !strings.HasPrefix(rcpt, wantPrefix) {
			t.Errorf("RCPT got\n  %q\nwant the policy's reply (prefix %q)\n  %q\n%s", rcpt, wantPrefix, exp.Reply, s.Out)
		}
		if r := s.Reply("DATA"); r != "" {
			t.Errorf("DATA was accepted (%q) after the only recipient was refused", r)
		}
		w.checkDecision(t, cl, exp, "rcpt", "enforce", c.Evidence, "")
	default:
		t.Fatalf("scenario action %s is not covered by this test", c.Expect)
	}
}

func isTrusted(ip string) bool { return strings.HasPrefix(ip, "127.") || ip == "::1" }

// checkOurAR checks the RFC 8601 header heloguard added to an accepted message.
func checkOurAR(t *testing.T, m e2e.Message, ip, helo string, exp e2e.Expected) {
	t.Helper()
	ours, _ := m.AuthResults()
	if len(ours) != 1 {
		t.Errorf("want exactly one Authentication-Results: %s; ... header, got %q\n%s", e2e.AuthservID, ours, m.Raw)
		return
	}
	ar := ours[0]
	want := []string{
		fmt.Sprintf("iprev=%v", exp.Evidence.IPRev),
		"policy.iprev=" + ip,
	}
	if exp.Evidence.HeloForm == policy.HeloFQDN {
		want = append(want, fmt.Sprintf("spf=%v smtp.helo=%s", exp.Evidence.SPFHelo, strings.ToLower(strings.TrimSuffix(helo, "."))))
	}
	for _, s := range want {
		if !strings.Contains(ar, s) {
			t.Errorf("Authentication-Results %q lacks %q", ar, s)
		}
	}
}

// checkDecision waits for the session's decision log line and checks its fields.
func (w *world) checkDecision(t *testing.T, cl client, exp e2e.Expected, stage, mode string, evidence map[string]any, queueID string) *e2e.Decision {
	t.Helper()
	ds, raw := w.hg.WaitDecision(t, cl.ip, cl.port)
	if len(ds) != 1 {
		t.Errorf("want one decision log line for %s:%d, got %d:\n%s", cl.ip, cl.port, len(ds), strings.Join(raw, "\n"))
		if len(ds) == 0 {
			return nil
		}
	}
	d := ds[0]
	if d.Time.IsZero() {
		t.Errorf("decision log line has no time: %s", raw[0])
	}
	check := func(field, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("decision log %s = %q, want %q\n%s", field, got, want, raw[0])
		}
	}
	check("client_ip", d.ClientIP.String(), cl.ip)
	if d.Helo != cl.helo {
		t.Errorf("decision log helo = %q, want %q (the HELO the client sent; a trusted client's line must carry it too)\n%s", d.Helo, cl.helo, raw[0])
	}
	check("rule", d.Rule, exp.Rule)
	check("action", string(d.Action), string(exp.Action))
	check("stage", d.Stage, stage)
	check("mode", d.Mode, mode)
	if stage != "" {
		check("reply", d.Reply, exp.Reply)
	}
	if queueID != "" {
		check("queue_id", d.QueueID, queueID)
	}
	if !isTrusted(cl.ip) && d.Evidence.IPRev == "" {
		t.Errorf("decision log line has no evidence.iprev: %s", raw[0])
	}
	for k, v := range evidence {
		f, ok := policy.FieldByName(k)
		if !ok {
			t.Errorf("the scenario expects evidence %q, which is no evidence field", k)
			continue
		}
		check("evidence."+k, f.String(&d.Evidence), e2e.ValueText(v))
	}
	return &d
}

// postmasterExempt: the forger is refused for user@ but postmaster@ gets
// through (RFC 5321 4.5.1), in the same transaction.
func (w *world) postmasterExempt(t *testing.T) {
	const ip, helo = "192.0.2.66", "NAM02-BL2-obe.outbound.protection.outlook.com"
	exp := w.hg.Check(t, ip, helo)
	if exp.Action != "reject" {
		t.Fatalf("heloguard check: the forger should be refused, got %+v", exp)
	}
	cl := w.client("postmaster-exempt", ip, helo, "postmaster@receiver.example", "user@receiver.example")
	s := swaks(t, w.swaks, w.pf.port, cl)
	r := s.Replies("RCPT")
	if len(r) != 2 || !strings.HasPrefix(r[0], "250 ") || r[1] != exp.Reply {
		t.Fatalf("RCPT replies %q, want [250 ..., %q]\n%s", r, exp.Reply, s.Out)
	}
	if d := s.Reply("."); !strings.HasPrefix(d, "250 ") {
		t.Fatalf("end of data got %q, want 250\n%s", d, s.Out)
	}
	m, ok := w.pf.waitDelivered(t, cl.id())
	if ok {
		if to := m.Get("X-Original-To"); len(to) != 1 || to[0] != "postmaster@receiver.example" {
			t.Errorf("delivered to %q, want only postmaster@receiver.example", to)
		}
		ours, _ := m.AuthResults()
		if len(ours) != 1 || !strings.Contains(ours[0], "spf=fail") {
			t.Errorf("want our Authentication-Results with spf=fail on the postmaster message, got %q", ours)
		}
	}
	d := w.checkDecision(t, cl, exp, "rcpt", "enforce", nil, "")
	if d != nil && !strings.Contains(d.Exemption, "postmaster") {
		t.Errorf("decision log exemption = %q, want it to name postmaster", d.Exemption)
	}
}

var officeAR = regexp.MustCompile(`^mx\.receiver\.example; iprev=pass (reason="[^"]*" )?policy\.iprev=104\.47\.38\.131( [^;]*)?; spf=pass smtp\.helo=nam02-bl2-obe\.outbound\.protection\.outlook\.com$`)

// authResults: the Office 365 message carries our header; an incoming header
// that claims our authserv-id is removed, one from another server kept.
func (w *world) authResults(t *testing.T) {
	const ip, helo = "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com"
	cl := w.client("authentication-results", ip, helo)
	cl.proxyV = 2 // and the binary haproxy header, for once
	cl.headers = append(cl.headers,
		"Authentication-Results: mx.receiver.example; spf=pass smtp.helo=forged.example",
		"Authentication-Results: other.example; spf=fail smtp.helo=kept.example",
	)
	s := swaks(t, w.swaks, w.pf.port, cl)
	if r := s.Reply("."); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("end of data got %q, want 250\n%s", r, s.Out)
	}
	m, ok := w.pf.waitDelivered(t, cl.id())
	if !ok {
		return
	}
	ours, others := m.AuthResults()
	if len(ours) != 1 || !officeAR.MatchString(ours[0]) {
		t.Errorf("want exactly one Authentication-Results matching\n  %s\ngot %q", officeAR, ours)
	}
	if strings.Contains(m.Raw, "forged.example") {
		t.Errorf("the forged Authentication-Results: %s header was not removed:\n%s", e2e.AuthservID, m.Raw)
	}
	if len(others) != 1 || !strings.Contains(others[0], "kept.example") {
		t.Errorf("another server's Authentication-Results should be kept, got %q", others)
	}
	t.Logf("Authentication-Results: %s", strings.Join(ours, " | "))
	w.checkDecision(t, cl, w.hg.Check(t, ip, helo), "", "enforce", nil, s.QueueID(queuedRE))
}

// milterProtocol: Postfix speaks milter protocol version 6 with heloguard and
// takes its events and no-reply flags, as smtpd -v logs them (milter8.c): no
// DATA, unknown-command, end-of-header or body events; header fields, and the
// stages before reject_at (rcpt), without replies; Postfix then skips the
// reply at CONNECT, HELO and MAIL, and still waits for it at RCPT.
func (w *world) milterProtocol(t *testing.T) {
	const ip, helo = "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com"
	cl := w.client("milter-protocol", ip, helo)
	s := swaks(t, w.swaks, w.pf.vPort, cl)
	if r := s.Reply("."); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("end of data got %q, want 250\n%s", r, s.Out)
	}
	if _, ok := w.pf.waitDelivered(t, cl.id()); !ok {
		return
	}
	log := w.pf.log()
	want := []*regexp.Regexp{
		regexp.MustCompile(`milter8_connect: milter inet:\S+ version 6\n`),
		regexp.MustCompile(`milter8_connect: events SMFIP_NOBODY SMFIP_NOEOH SMFIP_NR_HDR SMFIP_NOUNKNOWN SMFIP_NODATA SMFIP_NR_CONN SMFIP_NR_HELO SMFIP_NR_MAIL\n`),
		regexp.MustCompile(`milter8_connect: requests SMFIF_ADDHDRS SMFIF_CHGHDRS SMFIF_QUARANTINE SMFIF_SETSYMLIST\n`),
		regexp.MustCompile(`skipping reply for event SMFIC_CONNECT from milter inet:`),
		regexp.MustCompile(`skipping reply for event SMFIC_HELO from milter inet:`),
		regexp.MustCompile(`skipping reply for event SMFIC_MAIL from milter inet:`),
		regexp.MustCompile(`skipping event SMFIC_DATA for milter inet:`),
	}
	for _, re := range want {
		if m := re.FindString(log); m == "" {
			t.Errorf("Postfix's verbose log has no line matching %s", re)
		} else {
			t.Logf("postfix: %s", strings.TrimSpace(m))
		}
	}
	if strings.Contains(log, "skipping reply for event SMFIC_RCPT") {
		t.Error("Postfix skipped the reply at RCPT, where heloguard's refusals are delivered")
	}
	w.checkDecision(t, cl, w.hg.Check(t, ip, helo), "", "enforce", nil, s.QueueID(queuedRE))
}

// chrootUnixSocket: a chrooted smtpd reaches heloguard on the unix socket as
// the snippet's commented variant writes it.
func (w *world) chrootUnixSocket(t *testing.T) {
	for _, c := range []struct{ name, ip, helo string }{
		{"chroot-forger", "192.0.2.66", "NAM02-BL2-obe.outbound.protection.outlook.com"},
		{"chroot-office365", "157.56.110.65", "na01-bn1-obe.outbound.protection.outlook.com"},
	} {
		exp := w.hg.Check(t, c.ip, c.helo)
		cl := w.client(c.name, c.ip, c.helo)
		s := swaks(t, w.swaks, w.pf.chPort, cl)
		rcpt := s.Reply("RCPT")
		if exp.Action == "accept" {
			if !strings.HasPrefix(rcpt, "250 ") {
				t.Fatalf("%s: RCPT got %q, want 250\n%s", c.name, rcpt, s.Out)
			}
			if m, ok := w.pf.waitDelivered(t, cl.id()); ok {
				checkOurAR(t, m, c.ip, c.helo, exp)
			}
			w.checkDecision(t, cl, exp, "", "enforce", nil, s.QueueID(queuedRE))
		} else {
			if rcpt != exp.Reply {
				t.Fatalf("%s: RCPT got %q, want %q\n%s", c.name, rcpt, exp.Reply, s.Out)
			}
			w.checkDecision(t, cl, exp, "rcpt", "enforce", nil, "")
		}
	}
}

// monitorReload: SIGHUP with mode: monitor; the forger then gets 250, the
// decision still says reject, and the message says so in X-Heloguard.
func (w *world) monitorReload(t *testing.T) {
	cfg := w.hg.Cfg
	cfg.Mode = "monitor"
	w.hg.Reload(t, cfg)
	const ip, helo = "192.0.2.66", "NAM02-BL2-obe.outbound.protection.outlook.com"
	exp := w.hg.Check(t, ip, helo)
	cl := w.client("monitor-forger", ip, helo)
	s := swaks(t, w.swaks, w.pf.port, cl)
	if r := s.Reply("RCPT"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("monitor mode: RCPT got %q, want 250\n%s", r, s.Out)
	}
	if r := s.Reply("."); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("monitor mode: end of data got %q, want 250\n%s", r, s.Out)
	}
	if m, ok := w.pf.waitDelivered(t, cl.id()); ok {
		x := m.Get("X-Heloguard")
		if len(x) != 1 || !strings.Contains(x[0], exp.Rule) || !strings.Contains(x[0], "reject") {
			t.Errorf("want one X-Heloguard header naming reject and rule %s, got %q\n%s", exp.Rule, x, m.Raw)
		} else {
			t.Logf("X-Heloguard: %s", x[0])
		}
		ours, _ := m.AuthResults()
		if len(ours) != 1 || !strings.Contains(ours[0], "spf=fail") {
			t.Errorf("want our Authentication-Results with spf=fail, got %q", ours)
		}
	}
	d := w.checkDecision(t, cl, exp, "", "monitor", nil, s.QueueID(queuedRE))
	if d != nil && d.Action != "reject" {
		t.Errorf("monitor mode must still log action reject, got %q", d.Action)
	}
}

// decisionLog: every session so far has exactly one JSON decision line, and
// the log holds nothing else.
func (w *world) decisionLog(t *testing.T) {
	all, raw := w.hg.CheckOnePerRun(t, w.runs, "%s:%d")
	for i, d := range all {
		if d.Action == "reject" && d.Stage == "rcpt" {
			t.Logf("example decision line: %s", raw[i])
			break
		}
	}
}

// milterDown: with heloguard stopped, Postfix applies the snippet's
// milter_default_action = tempfail.
func (w *world) milterDown(t *testing.T) {
	w.hg.Stop(t)
	cl := w.client("milter-down", "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com")
	w.runs = w.runs[:len(w.runs)-1] // heloguard is not there to log it
	s := swaks(t, w.swaks, w.pf.port, cl)
	var refused string
	for _, cmd := range []string{"MAIL", "RCPT"} {
		if r := s.Reply(cmd); r != "" && !strings.HasPrefix(r, "250") {
			refused = r
			break
		}
	}
	if !strings.HasPrefix(refused, "451 4.7.1 ") {
		t.Errorf("with the milter down, want 451 4.7.1 at MAIL or RCPT, got %q\n%s", refused, s.Out)
	}
	if len(w.pf.find(cl.id())) > 0 {
		t.Errorf("a message was delivered while the milter was down")
	}
}
