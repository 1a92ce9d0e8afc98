package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/heloguard/heloguard/deploy"
)

// heloguard man 8 and heloguard man 5 (not in the usage: the Debian package
// runs them at build time) write the manual pages heloguard(8) and
// heloguard.yaml(5). The flags come from the commands' own flag sets, the
// config keys and their explanations from the example config
// (deploy/heloguard.yaml, which TestExampleConfig holds to the defaults), so
// neither can fall behind the code. man_test.go checks both.

// manCommands are the commands heloguard(8) describes, in the usage's order.
var manCommands = []struct{ name, text string }{
	{"serve", `Run the milter daemon; the default command. It listens where the
config's listen: says, judges every SMTP session the MTA hands it (reverse DNS at
connect, the HELO checks at HELO, through its own caching resolver), delivers the
verdict at reject_at (RCPT by default) and writes one decision record per session
to the decision log. See SIGNALS.`},
	{"check", `Decide one client on live DNS and explain the decision: every evidence
field, the rule that decided and why, and the reply. An empty HELO ("") is a
client that sent none. With --json it prints the decision record the daemon would
log. Exits 0 whatever the verdict.`},
	{"spf", `Run RFC 7208 check_host(IP, DOMAIN, sender) with a trace of every DNS
lookup and mechanism.`},
	{"test", `Run scenario files against the configured rules. Each file's DNS world is
served from an in-process DNS server on loopback, so the rules are tested exactly as
the daemon runs them. Prints "N passed, M failed" and exits 1 when a case fails.`},
	{"validate", `Check a config file. Errors name file:line:column. The systemd unit
runs it before it starts the daemon.`},
	{"replay", `Re-decide the decision records of a log file with the configured rules,
without DNS, and report the decisions that change. Records written before an
evidence field existed are judged with every value it can take; a verdict that
depends on it is reported as undetermined.`},
	{"postfix-config", `Print the postconf -e commands that add heloguard to Postfix
without disturbing its other milters: heloguard is appended to smtpd_milters
(nothing happens when it is there already); a non_smtpd_milters of $smtpd_milters
is written out with the old list, so that heloguard is not in it; a
milter_default_action chosen for the other milters is left alone, and heloguard's
entry then carries its own default_action=tempfail. The current values are read
with postconf -h; nothing is changed. Review the commands, run them, then
postfix check and postfix reload.`},
	{"bench", `Load milters the way Postfix 3.7 drives them (protocol 6, or 2 with
--protocol 2): concurrent sessions of CONNECT with macros, HELO, MAIL, two RCPTs,
DATA, a realistic header of --headers fields, end of header, a body chunk, end of
message, ABORT and QUIT, over the clients of a scenario file, honouring the events
and replies each milter negotiated away. Without --target it sets up everything on
loopback and unix sockets in a temporary directory: a DNS server serving the
world, heloguard serve, and two do-nothing reference milters, one negotiating what
heloguard negotiated and one without header events; all are stopped at the end.
Prints sessions/s, latency percentiles per stage, the ratios to the reference
milters, verdicts and errors. Exits 1 when a session had a protocol error. It
refuses any address off loopback.`},
	{"version", `Print the version, the commit heloguard was built from (marked
"(modified)" when the tree had uncommitted changes) and the Go version. Also
heloguard --version.`},
}

func cmdMan(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || (args[0] != "8" && args[0] != "5") {
		fmt.Fprintln(stderr, "usage: heloguard man 8|5   (heloguard(8) or heloguard.yaml(5), roff, on stdout)")
		return exitUsage
	}
	v := currentVersion()
	date := manDate().Format("2006-01-02")
	if args[0] == "8" {
		page, err := manPage8(v.Version, date)
		if err != nil {
			fmt.Fprintf(stderr, "heloguard man: %v\n", err)
			return exitFailed
		}
		fmt.Fprint(stdout, page)
		return exitOK
	}
	fmt.Fprint(stdout, manPage5(v.Version, date, deploy.ExampleConfig))
	return exitOK
}

// manDate is SOURCE_DATE_EPOCH (reproducible builds), else the commit's time,
// else now.
func manDate() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC()
				}
			}
		}
	}
	return time.Now().UTC()
}

// flagCollector is the stderr a command is run with to learn its flags:
// newFlags hands it the command's FlagSet.
type flagCollector struct {
	bytes.Buffer
	fs       *flag.FlagSet
	synopsis string
}

// commandFlags runs `heloguard NAME -h` to collect its flag set and synopsis.
func commandFlags(name string) (*flag.FlagSet, string, error) {
	c := &flagCollector{}
	if code := run([]string{name, "-h"}, strings.NewReader(""), io.Discard, c); code != exitOK || c.fs == nil {
		return nil, "", fmt.Errorf("heloguard %s -h: exit %d, no flag set:\n%s", name, code, c.String())
	}
	return c.fs, c.synopsis, nil
}

// roff escapes text for a roff line: backslashes, and a leading . or '.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffText is roff for running text: hyphens stay hyphens, but --flags and
// leading dots are escaped.
func roffText(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line = strings.ReplaceAll(line, `\`, `\e`)
		line = dashFlagRE.ReplaceAllStringFunc(line, func(m string) string { return strings.ReplaceAll(m, "-", `\-`) })
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

var dashFlagRE = regexp.MustCompile(`(^|[\s(])--?[a-z]+`)

func manPage8(version, date string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH HELOGUARD 8 %q %q \"System Manager's Manual\"\n", date, "heloguard "+version)
	b.WriteString(`.SH NAME
heloguard \- reverse\-DNS and HELO policy milter for Postfix and Sendmail
.SH SYNOPSIS
`)
	type cmd struct {
		name, text, synopsis string
		fs                   *flag.FlagSet
	}
	var cmds []cmd
	for _, c := range manCommands {
		fs, syn, err := commandFlags(c.name)
		if err != nil {
			return "", err
		}
		cmds = append(cmds, cmd{c.name, c.text, syn, fs})
		fmt.Fprintf(&b, ".B heloguard\n%s\n.br\n", roff(syn))
	}
	b.WriteString(`.SH DESCRIPTION
.B heloguard
is a milter for Postfix and Sendmail that judges the connecting client's reverse
DNS and its HELO/EHLO name. For every client outside trusted_networks it gathers
the evidence concurrently \(em iprev (forward\-confirmed reverse DNS, RFC 8601),
the PTR names, whether a PTR name looks like a pool address and whether the PTR
domain's SPF authorizes the client, the HELO's syntax, whether it matches the PTR
name or the client address, its alignment with the PTR name's organizational
domain and its SPF result \(em then applies the rules, first match wins. A client
whose HELO shares the organizational domain of its forward\-confirmed PTR name and
whose HELO's SPF record authorizes it is accepted (the Office 365 model); a
forger who copies such a HELO fails SPF and is refused, with a reply that says
why.
.PP
Accepted mail gets an Authentication\-Results header (iprev and spf, RFC 8601);
incoming ones that claim heloguard's authserv\-id are removed. Mail to
postmaster@ and abuse@ (exempt_recipients) and authenticated clients are never
refused.
.PP
The configuration is described in
.BR heloguard.yaml (5);
without a file the built\-in defaults apply (listen on inet:127.0.0.1:8894, the
system's resolvers, the built\-in rules, mode enforce).
.SH COMMANDS
`)
	for _, c := range cmds {
		fmt.Fprintf(&b, ".SS %s\n.B heloguard\n%s\n.PP\n%s", c.name, roff(c.synopsis), roffText(c.text))
		var flags []*flag.Flag
		c.fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
		for _, f := range flags {
			arg, usage := flag.UnquoteUsage(f)
			dash := "\\-\\-"
			if len(f.Name) == 1 {
				dash = "\\-"
			}
			b.WriteString(".TP\n")
			if arg == "" {
				fmt.Fprintf(&b, ".B %s%s\n", dash, roff(f.Name))
			} else {
				fmt.Fprintf(&b, ".BI %s%s \" \"%s\n", dash, roff(f.Name), roff(arg))
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				usage += " (default " + f.DefValue + ")"
			}
			b.WriteString(roffText(usage))
		}
	}
	b.WriteString(`.SH SIGNALS
.TP
.B SIGHUP
Reload the configuration atomically (systemctl reload heloguard). A bad file is
logged and the running configuration stays. The DNS cache survives unless the dns
section changed. listen, max_sessions and log need a restart.
.TP
.BR SIGTERM ", " SIGINT
Stop accepting connections, let the sessions in flight finish for up to
drain_timeout (30 s), then exit.
.TP
.B SIGUSR1
Reopen the decision log file (log:), after logrotate moved it away.
.SH EXIT STATUS
0 on success (check and spf whatever the verdict); 1 when a scenario case fails
or the daemon fails while serving; 2 for a usage or configuration error.
.SH FILES
.TP
.I /etc/heloguard/heloguard.yaml
The configuration, see
.BR heloguard.yaml (5).
.TP
.I /lib/systemd/system/heloguard.service
The systemd unit: runs heloguard validate, then heloguard serve, as the user
heloguard, hardened (ProtectSystem=strict). Reload is SIGHUP.
.TP
.I /var/spool/postfix/heloguard/
For a unix socket that Postfix's chrooted smtpd can reach (owner heloguard, group
postfix, mode 0750): listen on unix:/var/spool/postfix/heloguard/heloguard.sock
with socket_group: postfix, add SupplementaryGroups=postfix to the unit with
systemctl edit heloguard, and write smtpd_milters = unix:/heloguard/heloguard.sock
(heloguard postfix\-config does).
.TP
.I /run/heloguard/
The unit's runtime directory, for a unix socket outside Postfix's chroot
(Sendmail: S=local:/run/heloguard/heloguard.sock).
.TP
.I /var/log/heloguard/
For a decision log file (log: /var/log/heloguard/decisions.log); the unit creates
it, /etc/logrotate.d/heloguard rotates the file and sends SIGUSR1.
.TP
.I /usr/share/doc/heloguard/
README, the admin guide, the rules guide and the reference (admin.md.gz,
rules.md.gz, reference.md.gz), the Postfix and Sendmail snippets (examples/).
.SH SEE ALSO
.BR heloguard.yaml (5),
.BR postconf (5),
.BR postconf (1),
.BR systemctl (1),
.BR logrotate (8)
`)
	return b.String(), nil
}

var (
	sectionRE   = regexp.MustCompile(`^# -+ (.*?) -+$`)
	activeKeyRE = regexp.MustCompile(`^([a-z_]+):(?:\s+(.*))?$`)
	exampleRE   = regexp.MustCompile(`^#([a-z_]+):(?:\s+(.*))?$`)
)

// manPage5 writes heloguard.yaml(5) from the example config: each section
// ("# --- name ---") is a subsection, each key (set, or a commented-out
// example "#key: value") an entry, with the comment above it as its text.
func manPage5(version, date string, example []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH HELOGUARD.YAML 5 %q %q \"File Formats Manual\"\n", date, "heloguard "+version)
	b.WriteString(`.SH NAME
heloguard.yaml \- configuration of the heloguard milter
.SH SYNOPSIS
.I /etc/heloguard/heloguard.yaml
.SH DESCRIPTION
The configuration of
.BR heloguard (8)
is one YAML document. Every key is optional: a missing key takes the default
shown below, and no file at all gives working defaults. Unknown keys are errors.
Check a file with
.B heloguard validate \-\-config
.IR FILE ;
errors name file:line:column. The daemon reads it at start and again on SIGHUP
(systemctl reload heloguard); a file that does not validate is logged and the
running configuration stays. Keys marked "needs a restart" take effect at the next
start only.
.PP
Durations are written like 8s, 15m or 2h; lists as [a, b] or one "\- item" per
line.
.SH KEYS
`)
	var para []string    // the current paragraph of comment text
	var pending []string // finished paragraphs since the last key
	parent := ""
	lastKey := "" // the entry just written, when no blank line followed it
	inSection := false
	flushPara := func() {
		if len(para) > 0 {
			pending = append(pending, strings.Join(para, "\n"))
			para = nil
		}
	}
	// prose emits paragraphs that belong to no key.
	prose := func(ps []string) {
		for _, p := range ps {
			b.WriteString(".PP\n" + roffText(p))
		}
	}
	entry := func(key, value string, example []string) {
		flushPara()
		if n := len(pending); n > 1 {
			prose(pending[:n-1])
			pending = pending[n-1:]
		}
		fmt.Fprintf(&b, ".TP\n.B %s\n", roff(key))
		hadText := len(pending) > 0
		switch {
		case len(pending) > 0:
			b.WriteString(roffText(pending[0]))
		case value == "" && example == nil:
			fmt.Fprintf(&b, "A mapping: the keys %s.KEY below are written KEY, indented under %s:.\n", roff(key), roff(key))
		case lastKey != "":
			fmt.Fprintf(&b, "See\n.BR %s .\n", roff(lastKey))
		}
		pending = nil
		if hadText || lastKey == "" {
			lastKey = key // the first of a group of keys under one comment
		}
		switch {
		case example != nil:
			b.WriteString(".IP\nExample:\n.RS\n.nf\n")
			for _, l := range example {
				b.WriteString(roff(l) + "\n")
			}
			b.WriteString(".fi\n.RE\n")
		case value != "":
			fmt.Fprintf(&b, ".IP\nDefault: %s\n", roff(value))
		}
	}
	lines := strings.Split(string(example), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		if indent == 0 && !strings.HasPrefix(trimmed, "#") {
			parent = ""
		}
		name := func(k string) string {
			if indent > 0 && parent != "" {
				return parent + "." + k
			}
			return k
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") && !exampleRE.MatchString(trimmed) {
			lastKey = ""
		}
		switch {
		case trimmed == "":
			flushPara()
		case sectionRE.MatchString(trimmed):
			flushPara()
			if inSection {
				prose(pending)
			}
			pending = nil
			inSection = true
			fmt.Fprintf(&b, ".SS %s\n", roff(capitalize(sectionRE.FindStringSubmatch(trimmed)[1])))
		case !inSection:
			// the file's own header: the DESCRIPTION above says it for the page
		case trimmed == "#":
			flushPara()
		case exampleRE.MatchString(trimmed):
			m := exampleRE.FindStringSubmatch(trimmed)
			ex := []string{strings.TrimPrefix(trimmed, "#")}
			prefix := strings.Repeat(" ", indent) + "#  "
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], prefix) {
				i++
				ex = append(ex, strings.TrimPrefix(lines[i][indent:], "#"))
			}
			entry(name(m[1]), "", ex)
		case strings.HasPrefix(trimmed, "# "):
			para = append(para, strings.TrimPrefix(trimmed, "# "))
		case activeKeyRE.MatchString(trimmed):
			m := activeKeyRE.FindStringSubmatch(trimmed)
			if m[2] == "" && indent == 0 {
				parent = m[1] // a section such as dns:, its keys below
				entry(m[1], "", nil)
				continue
			}
			entry(name(m[1]), m[2], nil)
		}
	}
	flushPara()
	prose(pending)
	b.WriteString(`.SH FILES
.TP
.I /etc/heloguard/heloguard.yaml
The configuration the systemd unit passes to heloguard serve \-\-config. The
Debian package installs this file as a conffile: it is kept on upgrades when
changed, and removed on purge.
.SH SEE ALSO
.BR heloguard (8);
the evidence fields, the built\-in rules, the match syntax of rules and the reply
placeholders are described in the rules guide and the reference,
/usr/share/doc/heloguard/rules.md.gz and /usr/share/doc/heloguard/reference.md.gz;
the admin guide is /usr/share/doc/heloguard/admin.md.gz.
`)
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
