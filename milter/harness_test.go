package milter_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
	"github.com/heloguard/heloguard/policy/scenario"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
)

// world serves the Office 365 scenario world (the in-repo copy in
// policy/scenario/testdata), plus an IPv6 sender.
func world(t testing.TB) *dnsworld.Server {
	t.Helper()
	f, err := scenario.Load("../policy/scenario/testdata/seed-office365.yaml")
	if err != nil {
		t.Fatal(err)
	}
	z, err := f.Zone()
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range []string{
		"5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 3600 IN PTR mail6.one-to-one.example.",
		"mail6.one-to-one.example. 3600 IN AAAA 2001:db8::25",
	} {
		if err := z.AddRR(rr); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := dnsworld.Start(z)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// syncBuffer collects decision log lines from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns what was written so far, line by line.
func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// decisions returns the decision log lines so far.
func (b *syncBuffer) decisions(t *testing.T) []record.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []record.Record
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		r, err := record.Parse([]byte(line))
		if err != nil {
			t.Fatalf("log line is not a decision record: %v: %q", err, line)
		}
		out = append(out, r)
	}
	return out
}

type harness struct {
	addr string
	log  *syncBuffer
	ops  *syncBuffer // operational messages, JSON lines
	srv  *milter.Server
	dns  *dnsworld.Server
}

// start runs a milter server on loopback TCP with extra config YAML.
func start(t testing.TB, extra string) *harness {
	t.Helper()
	return startOn(t, "inet:127.0.0.1:0", extra)
}

// startOn runs a milter server listening on listen, with the scenario world
// as its DNS and extra config YAML.
func startOn(t testing.TB, listen, extra string) *harness {
	t.Helper()
	dns := world(t)
	yml := fmt.Sprintf("listen: %s\nlocal_names: [mx.receiver.example]\nauthserv_id: mx.receiver.example\ndns: {servers: [%q], timeout: 500ms}\n%s", listen, dns.Addr, extra)
	cfg, err := config.Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	res, err := dnscache.New(cfg.DNS)
	if err != nil {
		t.Fatal(err)
	}
	logs, ops := &syncBuffer{}, &syncBuffer{}
	srv := milter.New(&milter.State{Cfg: cfg, Engine: policy.New(cfg.PolicyOptions(res))}, logs, slog.New(slog.NewJSONHandler(ops, nil)))
	addr, err := srv.Listen(cfg.Listen[0])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{addr: addr.String(), log: logs, ops: ops, srv: srv, dns: dns}
}

// mta is one MTA connection, in Postfix's order of events. macros are the
// MTA's: the client sends those the milter asked for at each stage.
type mta struct {
	t      *testing.T
	cs     *gomilter.ClientSession
	macros *gomilter.MacroBag
}

// dial opens an MTA connection speaking milter protocol version 6, offering
// every action and protocol flag, as Postfix does.
func (h *harness) dial(t *testing.T) *mta {
	t.Helper()
	return h.dialVersion(t, 6)
}

// dialVersion opens an MTA connection speaking at most the given milter
// protocol version.
func (h *harness) dialVersion(t *testing.T, version uint32) *mta {
	t.Helper()
	opts := []gomilter.Option{gomilter.WithMaximumVersion(version)}
	if version < 6 { // what a version 2 MTA offers: the SMFIP_NO* flags of events
		opts = append(opts, gomilter.WithProtocols(gomilter.OptNoConnect|gomilter.OptNoHelo|gomilter.OptNoMailFrom|
			gomilter.OptNoRcptTo|gomilter.OptNoBody|gomilter.OptNoHeaders|gomilter.OptNoEOH))
	}
	return h.dialWith(t, opts...)
}

// dialWith opens an MTA connection with go-milter's client options.
func (h *harness) dialWith(t *testing.T, opts ...gomilter.Option) *mta {
	t.Helper()
	macros := gomilter.NewMacroBag()
	c := gomilter.NewClient("tcp", h.addr, opts...)
	cs, err := c.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &mta{t: t, cs: cs, macros: macros}
}

func (m *mta) step(what string) func(*gomilter.Action, error) {
	return func(a *gomilter.Action, err error) { m.check(what, a, err) }
}

func (m *mta) check(what string, a *gomilter.Action, err error) *gomilter.Action {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("%s: %v", what, err)
	}
	return a
}

func (m *mta) connect(ip string) *gomilter.Action {
	m.t.Helper()
	fam := gomilter.FamilyInet
	if strings.Contains(ip, ":") {
		fam = gomilter.FamilyInet6
	}
	a, err := m.cs.Conn("["+ip+"]", fam, 40000, ip)
	return m.check("connect", a, err)
}

func (m *mta) helo(name string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Helo(name)
	return m.check("helo", a, err)
}

func (m *mta) mail(from string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Mail(from, "")
	return m.check("mail", a, err)
}

func (m *mta) rcpt(to string) *gomilter.Action {
	m.t.Helper()
	a, err := m.cs.Rcpt(to, "")
	return m.check("rcpt", a, err)
}

// message sends headers and a body and returns the EOM modifications and the
// final reply.
func (m *mta) message(headers ...string) ([]gomilter.ModifyAction, *gomilter.Action) {
	m.t.Helper()
	m.step("data")(m.cs.DataStart())
	for i := 0; i+1 < len(headers); i += 2 {
		m.step("header")(m.cs.HeaderField(headers[i], headers[i+1], nil))
	}
	m.step("eoh")(m.cs.HeaderEnd())
	m.step("body")(m.cs.BodyChunk([]byte("hello\r\n")))
	mods, a, err := m.cs.End()
	m.check("eom", a, err)
	if err := m.cs.Abort(nil); err != nil { // Postfix aborts after every message
		m.t.Fatal(err)
	}
	return mods, a
}

func wantContinue(t *testing.T, what string, a *gomilter.Action) {
	t.Helper()
	if a.Type != gomilter.ActionContinue {
		t.Fatalf("%s: got %v, want continue", what, a)
	}
}

// wantAccept checks the reply at end of message: accept (continue there is
// the same to the MTA; go-milter sends accept).
func wantAccept(t *testing.T, what string, a *gomilter.Action) {
	t.Helper()
	if a.Type != gomilter.ActionAccept {
		t.Fatalf("%s: got %v, want accept", what, a)
	}
}

func wantReply(t *testing.T, what string, a *gomilter.Action, code int, prefix string, contains ...string) {
	t.Helper()
	if a.Type != gomilter.ActionRejectWithCode || int(a.SMTPCode) != code || !strings.HasPrefix(replyText(a), prefix) {
		t.Fatalf("%s: got %v, want %d %s…", what, a, code, prefix)
	}
	for _, s := range contains {
		if !strings.Contains(replyText(a), s) {
			t.Errorf("%s: reply %q does not mention %q", what, a.SMTPReply, s)
		}
	}
}

// replyText is a reply without its code: "5.7.1 text".
func replyText(a *gomilter.Action) string {
	_, text, _ := strings.Cut(a.SMTPReply, " ")
	return text
}

func header(mods []gomilter.ModifyAction, name string) (string, bool) {
	for _, m := range mods {
		if (m.Type == gomilter.ActionInsertHeader || m.Type == gomilter.ActionAddHeader) && strings.EqualFold(m.HeaderName, name) {
			return m.HeaderValue, true
		}
	}
	return "", false
}

const (
	o365IP     = "104.47.38.131"
	o365Helo   = "NAM02-BL2-obe.outbound.protection.outlook.com"
	forgerIP   = "192.0.2.66"
	oneToOneIP = "192.0.2.25"
)

// deletedAuthResults lists the positions of the Authentication-Results that
// the milter deleted, in the order it deleted them.
func deletedAuthResults(mods []gomilter.ModifyAction) []uint32 {
	var deleted []uint32
	for _, mod := range mods {
		if mod.Type == gomilter.ActionChangeHeader && strings.EqualFold(mod.HeaderName, "Authentication-Results") && mod.HeaderValue == "" {
			deleted = append(deleted, mod.HeaderIndex)
		}
	}
	return deleted
}
