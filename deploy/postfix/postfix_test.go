package postfix_test

// A throw-away Postfix instance: its own config directory, queue and data
// directories under the test's temporary directory, started with
// `postfix -c DIR start`. The system's /etc/postfix and /var/spool/postfix are
// not touched and the system Postfix is not started.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

// snippetAddr is the milter address the shipped snippet names; the test
// substitutes its own.
const snippetAddr = "inet:127.0.0.1:8894"

// snippet is main.cf.snippet with the milter address replaced, and the unix
// socket variant it documents (commented out), for the chrooted smtpd.
type snippet struct {
	text     string // to append to main.cf
	unixSpec string // e.g. unix:/heloguard/heloguard.sock, relative to the chroot
}

var (
	activeMilterRE = regexp.MustCompile(`(?m)^smtpd_milters\s*=\s*(\S+)\s*$`)
	unixMilterRE   = regexp.MustCompile(`(?m)^#\s*smtpd_milters\s*=\s*(unix:\S+)\s*$`)
)

func loadSnippet(t *testing.T, milterAddr string) snippet {
	t.Helper()
	b, err := os.ReadFile("main.cf.snippet")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	active := activeMilterRE.FindAllStringSubmatch(text, -1)
	if len(active) != 1 || active[0][1] != snippetAddr {
		t.Fatalf("main.cf.snippet must have exactly one active line `smtpd_milters = %s`; found %q", snippetAddr, active)
	}
	for _, want := range []string{"milter_default_action = tempfail", "milter_protocol = 6", "{client_addr}", "{auth_authen}"} {
		if !strings.Contains(text, want) {
			t.Errorf("main.cf.snippet lacks %q", want)
		}
	}
	unix := unixMilterRE.FindStringSubmatch(text)
	if unix == nil {
		t.Fatalf("main.cf.snippet must document the chrooted unix socket as `#smtpd_milters = unix:/...`")
	}
	text = activeMilterRE.ReplaceAllString(text, "smtpd_milters = inet:"+milterAddr)
	return snippet{text: text, unixSpec: unix[1]}
}

// postfix is a running instance.
type postfix struct {
	bin     string // /usr/sbin/postfix
	base    string
	confDir string
	queue   string
	mbox    string // every accepted message ends up here (local(8), alias to a file)
	maillog string
	port    int // non-chrooted smtpd, haproxy protocol, milter over TCP
	chPort  int // chrooted smtpd, haproxy protocol, milter over the unix socket
	vPort   int // as port, with smtpd -v: it logs the milter negotiation and events
}

// newPostfix lays out the directories; start writes the config and starts it.
func newPostfix(t *testing.T) *postfix {
	t.Helper()
	base := e2e.WorldDir(t)
	p := &postfix{
		bin:     e2e.Tool(t, "postfix"),
		base:    base,
		confDir: filepath.Join(base, "etc"),
		queue:   filepath.Join(base, "queue"),
		mbox:    filepath.Join(base, "mail", "mbox"),
		maillog: filepath.Join(base, "maillog"),
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		e2e.SkipOrFail(t, "the postfix user does not exist (is Postfix installed?)")
	}
	uid, _ := strconv.Atoi(pf.Uid)
	for _, d := range []struct {
		path  string
		mode  os.FileMode
		owner int
	}{
		{p.confDir, 0o755, 0},
		{p.queue, 0o755, 0}, // post-install creates the queue's subdirectories
		{filepath.Join(base, "data"), 0o700, uid},
		// local(8) writes to files as default_privs (nobody).
		{filepath.Join(base, "mail"), 0o1777, 0},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d.path, d.owner, -1); err != nil {
			t.Fatal(err)
		}
	}
	p.port = e2e.FreePort(t)
	p.chPort = e2e.FreePort(t)
	for p.chPort == p.port {
		p.chPort = e2e.FreePort(t)
	}
	p.vPort = e2e.FreePort(t)
	for p.vPort == p.port || p.vPort == p.chPort {
		p.vPort = e2e.FreePort(t)
	}
	return p
}

// chrootPath is where a unix socket named in smtpd_milters really is for the
// chrooted smtpd: under the queue directory (unix:/heloguard/x.sock is
// QUEUE/heloguard/x.sock).
func (p *postfix) chrootPath(spec string) string {
	return filepath.Join(p.queue, strings.TrimPrefix(spec, "unix:"))
}

func (p *postfix) mainCF(sn snippet) string {
	b := p.base
	return fmt.Sprintf(`# throw-away Postfix for heloguard's end-to-end test
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.receiver.example
mydomain = receiver.example
myorigin = $mydomain
mydestination = receiver.example
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
# No DNS from Postfix: the proxied client addresses are not looked up.
smtpd_peername_lookup = no
# Accepted mail goes to one mbox file.
alias_maps = inline:{ {user=%[2]s}, {postmaster=%[2]s}, {abuse=%[2]s} }
alias_database =
allow_mail_to_files = alias
local_recipient_maps = $alias_maps
# Nothing ever leaves this machine (bounces included).
default_transport = error:outbound mail is disabled in this test
relay_transport = error:outbound mail is disabled in this test
biff = no

# ---- deploy/postfix/main.cf.snippet, as shipped (milter port substituted) ----
%[3]s`, b, p.mbox, sn.text)
}

func (p *postfix) masterCF(sn snippet) string {
	return fmt.Sprintf(`# throw-away Postfix for heloguard's end-to-end test
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:%d inet n - n - - smtpd
  -o smtpd_upstream_proxy_protocol=haproxy
127.0.0.1:%d inet n - y - - smtpd
  -o smtpd_upstream_proxy_protocol=haproxy
  -o smtpd_milters=%s
127.0.0.1:%d inet n - n - - smtpd -v
  -o smtpd_upstream_proxy_protocol=haproxy
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, p.port, p.chPort, sn.unixSpec, p.vPort)
}

// start writes main.cf and master.cf and starts the instance; Cleanup stops
// it and makes sure no master process is left.
func (p *postfix) start(t *testing.T, sn snippet) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.confDir, "main.cf"), []byte(p.mainCF(sn)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.confDir, "master.cf"), []byte(p.masterCF(sn)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	if out, err := p.run("start"); err != nil {
		t.Fatalf("postfix -c %s start: %v\n%s\n--- maillog:\n%s", p.confDir, err, out, p.log())
	}
	for _, port := range []int{p.port, p.chPort, p.vPort} {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if !e2e.WaitPort(addr, 15*time.Second) {
			t.Fatalf("Postfix does not listen on %s within 15s\n--- maillog:\n%s", addr, p.log())
		}
	}
}

func (p *postfix) run(args ...string) (string, error) {
	cmd := exec.Command(p.bin, append([]string{"-c", p.confDir}, args...)...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return string(out), fmt.Errorf("postfix %s: no exit within 60s", strings.Join(args, " "))
	}
	return string(out), err
}

// masterPID is the running master's pid, or 0.
func (p *postfix) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.queue, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// running reports whether pid is a live process (a zombie counts as gone).
func running(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func (p *postfix) stop(t *testing.T) {
	pid := p.masterPID()
	if !running(pid) {
		return
	}
	if out, err := p.run("stop"); err != nil {
		t.Errorf("postfix -c %s stop: %v\n%s", p.confDir, err, out)
	}
	if e2e.WaitFor(15*time.Second, func() bool { return !running(pid) }) {
		return
	}
	// The master runs in its own session and process group: kill that group
	// (this instance's processes only).
	t.Errorf("Postfix master %d still runs 15s after `postfix stop`; killing its process group", pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	e2e.WaitFor(5*time.Second, func() bool { return !running(pid) })
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(p.maillog)
	return string(b)
}

// messages parses the mbox file local(8) writes.
func (p *postfix) messages() []e2e.Message {
	f, err := os.Open(p.mbox)
	if err != nil {
		return nil
	}
	defer f.Close()
	var msgs []e2e.Message
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			msgs = append(msgs, e2e.ParseMessage(strings.Join(cur, "\n")))
		}
		cur = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	prevBlank := true
	for sc.Scan() {
		line := sc.Text()
		if prevBlank && strings.HasPrefix(line, "From ") {
			flush()
			prevBlank = false
			continue
		}
		cur = append(cur, line)
		prevBlank = line == ""
	}
	flush()
	return msgs
}

// find returns the delivered messages whose X-E2E-Case is id.
func (p *postfix) find(id string) []e2e.Message { return e2e.Tagged(p.messages(), id) }

// waitDelivered waits (bounded) for the message tagged id to reach the mbox.
func (p *postfix) waitDelivered(t *testing.T, id string) (e2e.Message, bool) {
	t.Helper()
	var got []e2e.Message
	if !e2e.WaitFor(20*time.Second, func() bool { got = p.find(id); return len(got) > 0 }) {
		t.Errorf("message %s was not delivered to %s within 20s\n--- maillog:\n%s", id, p.mbox, tail(p.log(), 30))
		return e2e.Message{}, false
	}
	if len(got) > 1 {
		t.Errorf("message %s was delivered %d times", id, len(got))
	}
	return got[0], true
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mkdirSocketDir makes the directory of heloguard's unix socket inside the
// queue directory: root-owned, group postfix may traverse it.
func mkdirSocketDir(t *testing.T, sock string) {
	t.Helper()
	dir := filepath.Dir(sock)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup("postfix")
	if err != nil {
		e2e.SkipOrFail(t, "the postfix group does not exist (is Postfix installed?)")
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.Chown(dir, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
}
