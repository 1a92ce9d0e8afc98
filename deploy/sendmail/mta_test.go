package sendmail_test

// A throw-away Sendmail 8.17: Debian's sendmail-bin, sendmail-base and
// sendmail-cf unpacked (not installed: sendmail-bin conflicts with postfix)
// by deploy/install-test-deps.sh. Its sendmail.cf is built with m4 from the
// extracted cf/ tree and deploy/sendmail/heloguard.mc; config, queue, pid file
// and delivered mail live under the test's temporary directory. It listens on
// 127.0.0.1 and ::1 only and does no DNS of its own.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

// EnvRoot names the directory Sendmail is unpacked in.
const EnvRoot = "HELOGUARD_SENDMAIL_ROOT"

const defaultRoot = "/var/cache/heloguard-test/sendmail"

// snippetSocket is the socket heloguard.mc names; the test substitutes its own.
const snippetSocket = "S=local:/run/heloguard/heloguard.sock"

// hostname is Sendmail's name. It runs in its own UTS namespace with this
// host name: with an unqualified system host name (a container's "vm"),
// Sendmail asks DNS to qualify it before it reads sendmail.cf (so before the
// hosts-only service switch applies), and without network that can hang.
const hostname = "mx.receiver.example"

type install struct {
	root, bin, cfDir, m4 string
}

func findSendmail(t *testing.T) install {
	t.Helper()
	root := os.Getenv(EnvRoot)
	if root == "" {
		root = defaultRoot
	}
	in := install{root: root, bin: filepath.Join(root, "usr/libexec/sendmail/sendmail"),
		cfDir: filepath.Join(root, "usr/share/sendmail/cf")}
	if fi, err := os.Stat(in.bin); err != nil || fi.Mode()&0o111 == 0 {
		e2e.SkipOrFail(t, "Sendmail is not unpacked in %s (%s=DIR to use another directory)", root, EnvRoot)
	}
	if _, err := os.Stat(filepath.Join(in.cfDir, "m4/cf.m4")); err != nil {
		e2e.SkipOrFail(t, "sendmail-cf is not unpacked in %s", root)
	}
	in.m4 = e2e.Tool(t, "m4")
	e2e.Tool(t, "hostname")
	return in
}

// loadSnippet returns heloguard.mc with the milter socket replaced by spec
// (e.g. "local:/tmp/x.sock", "inet:8894@127.0.0.1").
func loadSnippet(t *testing.T, spec string) string {
	t.Helper()
	b, err := os.ReadFile("heloguard.mc")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if n := strings.Count(text, snippetSocket); n != 1 {
		t.Fatalf("heloguard.mc must name %q exactly once, found %d", snippetSocket, n)
	}
	if n := regexp.MustCompile(`(?m)^INPUT_MAIL_FILTER\(`).FindAllStringIndex(text, -1); len(n) != 1 {
		t.Fatalf("heloguard.mc must have exactly one INPUT_MAIL_FILTER line, found %d", len(n))
	}
	for _, want := range []string{"F=T", "{client_addr}", "{auth_authen}"} {
		if !strings.Contains(text, want) {
			t.Errorf("heloguard.mc lacks %q", want)
		}
	}
	return strings.Replace(text, snippetSocket, "S="+spec, 1)
}

// sendmail is a running instance.
type sendmail struct {
	name    string
	dir     string
	mailDir string // one file per delivered message
	port    int    // on 127.0.0.1 and ::1
	v6      bool   // listening on ::1 too
	cfPath  string
	cmd     *exec.Cmd
	exited  chan struct{}
	out     string // stdout and stderr
}

// mc is the test's sendmail.mc: an offline, loopback-only Sendmail with the
// shipped snippet spliced in.
func (s *sendmail) mc(in install, snippet string) string {
	d := s.dir
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("divert(-1)")
	w("# throw-away Sendmail for heloguard's end-to-end test (%s)", s.name)
	w("divert(0)dnl")
	w("include(`%s/m4/cf.m4')dnl", in.cfDir)
	w("VERSIONID(`heloguard e2e test')dnl")
	w("OSTYPE(`linux')dnl")
	w("define(`confDOMAIN_NAME', `%s')dnl", hostname)
	// No DNS from Sendmail: hosts come from files only.
	w("define(`confSERVICE_SWITCH_FILE', `%s/service.switch')dnl", d)
	w("define(`confHOSTS_FILE', `%s/hosts')dnl", d)
	w("define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl")
	w("define(`confDONT_PROBE_INTERFACES', `true')dnl")
	w("define(`confTO_IDENT', `0')dnl")
	// Its own files, nothing of /etc/mail.
	w("define(`QUEUE_DIR', `%s/queue')dnl", d)
	w("define(`confPID_FILE', `%s/sendmail.pid')dnl", d)
	w("define(`STATUS_FILE', `%s/statistics')dnl", d)
	w("define(`ALIAS_FILE', `')dnl")
	w("define(`confCW_FILE', `-o %s/local-host-names')dnl", d)
	w("define(`confCT_FILE', `-o %s/trusted-users')dnl", d)
	w("define(`confHELP_FILE', `')dnl")
	// A busy test machine must not make it queue or refuse.
	w("define(`confQUEUE_LA', `999')dnl")
	w("define(`confREFUSE_LA', `999')dnl")
	w("define(`confDELAY_LA', `0')dnl")
	w("define(`confDELIVERY_MODE', `background')dnl")
	w("define(`confLOG_LEVEL', `9')dnl")
	w("FEATURE(`nocanonify')dnl")
	w("FEATURE(`no_default_msa')dnl")
	w("FEATURE(`accept_unresolvable_domains')dnl")
	w("FEATURE(`accept_unqualified_senders')dnl")
	w("DAEMON_OPTIONS(`Family=inet, Name=MTA-v4, Port=%d, Addr=127.0.0.1')dnl", s.port)
	if s.v6 {
		w("DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6, Port=%d, Addr=::1')dnl", s.port)
	}
	w("LOCAL_DOMAIN(`receiver.example')dnl")
	w("dnl ---- deploy/sendmail/heloguard.mc, as shipped (socket substituted) ----")
	b.WriteString(snippet)
	w("dnl ---- end of heloguard.mc ----")
	w("MAILER(`local')dnl")
	// Senders in other domains must resolve to a mailer; nothing is sent out.
	w("MAILER(`smtp')dnl")
	// Every recipient in receiver.example goes to the file mailer: no
	// passwd users or aliases needed.
	w("LOCAL_RULE_0")
	w("R$+ < @ $=w . >\t$#filemail $@ localhost $: $1")
	w("MAILER_DEFINITIONS")
	w("Mfilemail, P=%s/deliver.sh, F=lsDFMS, S=EnvFromL/HdrFromL, R=EnvToL/HdrToL, T=DNS/RFC822/X-Unix, A=deliver.sh $u", d)
	return b.String()
}

// startSendmail builds the configuration and runs `sendmail -bD` (daemon in
// the foreground) in its own process group until the test ends.
func startSendmail(t *testing.T, in install, name, milterSpec string, v6 bool) *sendmail {
	t.Helper()
	s := &sendmail{name: name, dir: e2e.WorldDir(t), port: e2e.FreePort(t), v6: v6, exited: make(chan struct{})}
	s.mailDir = filepath.Join(s.dir, "mail")
	s.cfPath = filepath.Join(s.dir, "sendmail.cf")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Join(s.dir, "queue"), 0o700}, {s.mailDir, 0o1777}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"service.switch":   "hosts\tfiles\naliases\tfiles\n",
		"hosts":            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n",
		"local-host-names": "receiver.example\n",
		"trusted-users":    "",
		// One file per message; the mailer runs with F=S (as root).
		// The recipient ($u) goes first, as an X-Test-Rcpt header.
		"deliver.sh": "#!/bin/sh\nf=$(mktemp " + s.mailDir + "/msg.XXXXXX) || exit 75\n" +
			"{ printf 'X-Test-Rcpt: %s\\n' \"$1\"; cat; } >\"$f\" || exit 75\nexit 0\n",
	}
	for n, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(s.dir, n), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	mc := s.mc(in, loadSnippet(t, milterSpec))
	mcPath := filepath.Join(s.dir, "sendmail.mc")
	if err := os.WriteFile(mcPath, []byte(mc), 0o644); err != nil {
		t.Fatal(err)
	}
	m4 := exec.Command(in.m4, mcPath)
	var stderr strings.Builder
	m4.Stderr = &stderr
	cf, err := m4.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("m4 %s: %v\n%s\n--- sendmail.mc:\n%s", mcPath, err, stderr.String(), mc)
	}
	if err := os.WriteFile(s.cfPath, cf, 0o644); err != nil {
		t.Fatal(err)
	}
	wantX := "Xheloguard, S=" + milterSpec + ", F=T, T=C:30s;S:10s;R:10s;E:5m"
	if !strings.Contains(string(cf), "\n"+wantX+"\n") || !strings.Contains(string(cf), "\nO InputMailFilters=heloguard\n") {
		t.Fatalf("sendmail.cf lacks %q or InputMailFilters=heloguard", wantX)
	}

	logPath := filepath.Join(s.dir, "sendmail.out")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// sh sets the namespace's host name, then becomes sendmail.
	s.cmd = s.command(logf, `hostname "$1" && exec "$2" -bD -C "$3" -L sm-heloguard-test`, in, syscall.CLONE_NEWUTS)
	if err := s.cmd.Start(); err != nil {
		// No UTS namespace here (a container without CAP_SYS_ADMIN): fine if
		// the system's host name is already qualified.
		h, _ := os.Hostname()
		if !strings.Contains(h, ".") {
			logf.Close()
			t.Fatalf("starting sendmail in a UTS namespace: %v (and the host name %q is unqualified)", err, h)
		}
		t.Logf("no UTS namespace (%v); Sendmail runs with the host name %q", err, h)
		s.cmd = s.command(logf, `exec "$2" -bD -C "$3" -L sm-heloguard-test`, in, 0)
		if err := s.cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("starting sendmail: %v", err)
		}
	}
	go func() {
		_ = s.cmd.Wait()
		logf.Close()
		b, _ := os.ReadFile(logPath)
		s.out = string(b)
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", s.port)}
	if v6 {
		addrs = append(addrs, fmt.Sprintf("[::1]:%d", s.port))
	}
	for _, a := range addrs {
		if !e2e.WaitPort(a, 15*time.Second) {
			select {
			case <-s.exited:
				t.Fatalf("sendmail (%s) exited at start:\n%s", name, s.out)
			default:
			}
			t.Fatalf("sendmail (%s) does not listen on %s within 15s", name, a)
		}
	}
	return s
}

func (s *sendmail) command(out *os.File, script string, in install, clone uintptr) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", script, "sh", hostname, in.bin, s.cfPath)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: clone}
	return cmd
}

// stop ends the whole process group: Sendmail's children that wait on a
// milter outlive a SIGTERM to the daemon alone.
func (s *sendmail) stop(t *testing.T) {
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("sendmail (%s) did not exit within 10s of SIGTERM; killing its process group", s.name)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.exited
	// Children may outlive the daemon for a moment; wait for the group to go.
	if !e2e.WaitFor(5*time.Second, func() bool { return syscall.Kill(-pgid, 0) != nil }) {
		t.Errorf("sendmail (%s): processes of group %d are left", s.name, pgid)
	}
}

// messages reads the delivered messages, one file each (see deliver.sh).
func (s *sendmail) messages() []e2e.Message {
	paths, _ := filepath.Glob(filepath.Join(s.mailDir, "msg.*"))
	sort.Strings(paths)
	var out []e2e.Message
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		out = append(out, e2e.ParseMessage(string(b)))
	}
	return out
}

func (s *sendmail) find(id string) []e2e.Message { return e2e.Tagged(s.messages(), id) }

// waitDelivered waits (bounded) for n messages tagged id.
func (s *sendmail) waitDelivered(t *testing.T, id string, n int) []e2e.Message {
	t.Helper()
	var got []e2e.Message
	if !e2e.WaitFor(20*time.Second, func() bool { got = s.find(id); return len(got) >= n }) {
		t.Errorf("%d message(s) %s were not delivered to %s within 20s (got %d)", n, id, s.mailDir, len(got))
		return got
	}
	time.Sleep(100 * time.Millisecond) // any extra copy
	if got = s.find(id); len(got) != n {
		t.Errorf("message %s was delivered %d times, want %d", id, len(got), n)
	}
	return got
}
