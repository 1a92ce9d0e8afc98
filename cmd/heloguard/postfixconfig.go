package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/heloguard/heloguard/config"
)

// heloguard postfix-config prints the postconf commands that add heloguard to
// an existing Postfix without disturbing its other milters: heloguard is
// appended to smtpd_milters, a non_smtpd_milters of "$smtpd_milters" is
// written out with the old list (local submission has no client to judge),
// and a milter_default_action chosen for the other milters is left alone.

// milterMacros are the macros heloguard reads, by parameter. heloguard asks
// for them itself (SMFIR_SETSYMLIST); they are listed in main.cf as well so
// that they are sent whatever the milter negotiates (main.cf.snippet).
var milterMacros = []struct{ param, macros string }{
	{"milter_connect_macros", "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} {client_port}"},
	{"milter_mail_macros", "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}"},
	{"milter_rcpt_macros", "i {rcpt_addr} {rcpt_host} {rcpt_mailer}"},
	{"milter_end_of_data_macros", "i"},
}

// postfixParams are read with one postconf -h, in this order.
var postfixParams = []string{"smtpd_milters", "non_smtpd_milters", "milter_default_action", "milter_protocol",
	"mail_version", "queue_directory", "milter_connect_macros", "milter_mail_macros", "milter_rcpt_macros", "milter_end_of_data_macros"}

func cmdPostfixConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("postfix-config", "postfix-config [--socket SPEC] [--config FILE] [-c DIR]", stderr)
	socket := fs.String("socket", "", "the milter `spec` as Postfix writes it, inet:HOST:PORT or unix:PATH (default: the config's first listen address, relative to smtpd's chroot)")
	cfgPath := fs.String("config", "", "config `file` whose listen address is used (default: built-in defaults, "+config.DefaultListen+")")
	confDir := fs.String("c", "", "Postfix configuration `directory` (postconf -c; default: Postfix's own, /etc/postfix)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "heloguard postfix-config: unexpected argument %q\n", pos[0])
		fs.Usage()
		return exitUsage
	}
	pc, err := findPostconf()
	if err != nil {
		fmt.Fprintf(stderr, "heloguard postfix-config: %v\n", err)
		return exitFailed
	}
	var cdir []string
	if *confDir != "" {
		cdir = []string{"-c", *confDir}
	}
	postconf := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		cmd := exec.Command(pc, append(append([]string(nil), cdir...), args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("postconf %s: %v: %s", strings.Join(cmd.Args[1:], " "), err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	}
	in := postfixState{Explicit: map[string]bool{}}
	out, err := postconf(append([]string{"-h"}, postfixParams...)...)
	if err == nil {
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(postfixParams) {
			err = fmt.Errorf("postconf -h printed %d lines for %d parameters:\n%s", len(lines), len(postfixParams), out)
		} else {
			in.Values = map[string]string{}
			for i, p := range postfixParams {
				in.Values[p] = strings.TrimSpace(lines[i])
			}
		}
	}
	if err == nil {
		out, err = postconf("-n")
		for _, l := range strings.Split(out, "\n") {
			if name, _, ok := strings.Cut(l, "="); ok {
				in.Explicit[strings.TrimSpace(name)] = true
			}
		}
	}
	if err == nil {
		in.Master, err = postconf("-M")
	}
	if err == nil {
		in.Overrides, err = postconf("-P")
	}
	if err != nil {
		fmt.Fprintf(stderr, "heloguard postfix-config: %v\n", err)
		return exitFailed
	}
	in.ConfDir = *confDir
	if *socket != "" {
		if !strings.HasPrefix(*socket, "inet:") && !strings.HasPrefix(*socket, "unix:") {
			fmt.Fprintf(stderr, "heloguard postfix-config: --socket %q: expected inet:HOST:PORT or unix:PATH, as in smtpd_milters\n", *socket)
			return exitUsage
		}
		in.Socket = *socket
	} else {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "heloguard: %v\n", err)
			return exitUsage
		}
		in.Listen = cfg.Listen
	}
	fmt.Fprint(stdout, postfixCommands(in))
	return exitOK
}

func findPostconf() (string, error) {
	if p, err := exec.LookPath("postconf"); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, "postconf")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("postconf is not installed (is Postfix?)")
}

// postfixState is what postconf said, and where heloguard listens.
type postfixState struct {
	ConfDir   string            // -c DIR, repeated in the commands
	Values    map[string]string // postconf -h of postfixParams
	Explicit  map[string]bool   // set in main.cf (postconf -n)
	Master    string            // postconf -M
	Overrides string            // postconf -P
	Socket    string            // --socket, as given
	Listen    []string          // else the config's listen addresses
}

// postfixCommands computes the commands and their comments.
func postfixCommands(in postfixState) string {
	var b strings.Builder
	comment := func(format string, args ...any) {
		for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
			b.WriteString("# " + l + "\n")
		}
	}
	changes := 0
	set := func(param, value string) {
		changes++
		b.WriteString("postconf ")
		if in.ConfDir != "" {
			b.WriteString("-c " + shellQuote(in.ConfDir) + " ")
		}
		b.WriteString("-e " + shellQuote(param+" = "+value) + "\n")
	}
	where := "Postfix's own configuration (postconf)"
	if in.ConfDir != "" {
		where = "the Postfix configuration in " + in.ConfDir
	}
	comment("heloguard postfix-config: adds heloguard to %s,\nkeeping the other milters. Review, run these commands (or pipe them into sh),\nthen: postfix check && postfix reload", where)

	major, _ := postfixVersion(in.Values["mail_version"])
	spec := in.Socket
	if spec == "" {
		spec = postfixSpec(in.Listen[0])
		if len(in.Listen) > 1 {
			comment("heloguard listens on %s; the first one is used (--socket SPEC for another)", strings.Join(in.Listen, ", "))
		}
		if path, ok := strings.CutPrefix(spec, "unix:"); ok {
			spec = chrootSpec(path, in, major, comment)
		}
	}

	// smtpd_milters: append heloguard, keep the others and their order.
	old := in.Values["smtpd_milters"]
	milters := splitMilters(old)
	var others []string
	present := false
	for _, m := range milters {
		if milterAddr(m) == spec {
			present = true
		} else {
			others = append(others, m)
		}
	}
	action := in.Values["milter_default_action"]
	if action == "" {
		action = "tempfail"
	}
	ours := spec
	// A milter_default_action other than tempfail was chosen for the other
	// milters (OpenDKIM's guides say accept): leave it, and give heloguard
	// its own default_action (Postfix >= 3.0).
	perMilter := action != "tempfail" && (major >= 3 || major == 0)
	if perMilter {
		ours = "{ " + spec + ", default_action=tempfail }"
	}
	if present {
		comment("heloguard (%s) is already in smtpd_milters = %s", spec, old)
	} else {
		if old == "" {
			comment("smtpd_milters was empty")
		} else {
			comment("smtpd_milters was: %s\nheloguard is appended; the other milters keep their order (heloguard's verdict\nis delivered at RCPT wherever it stands in the list)", old)
		}
		set("smtpd_milters", strings.Join(append(append([]string(nil), milters...), ours), ", "))
	}

	// non_smtpd_milters: write out $smtpd_milters with the old list, so that
	// heloguard is not in it.
	nonOld := in.Values["non_smtpd_milters"]
	var non []string
	expanded, dropped := false, false
	for _, m := range splitMilters(nonOld) {
		switch {
		case m == "$smtpd_milters" || m == "${smtpd_milters}" || m == "$(smtpd_milters)":
			expanded = true
			non = append(non, others...)
		case milterAddr(m) == spec:
			dropped = true
		default:
			non = append(non, m)
		}
	}
	if expanded || dropped {
		comment("non_smtpd_milters was: %s\nheloguard must not be in it: local submission (sendmail(1), pickup) has no client\naddress or HELO to judge", nonOld)
		set("non_smtpd_milters", strings.Join(non, ", "))
	}

	// milter_default_action.
	switch {
	case perMilter:
		comment("milter_default_action = %s applies to your other milters and is left alone.\nheloguard's entry carries its own default_action=tempfail: while heloguard is down\nor slow, mail waits (451 4.7.1) and the senders retry, instead of getting in unjudged.\nTo fail open for heloguard too, write default_action=accept in its entry.", action)
		if major == 0 {
			comment("(could not read Postfix's version; per-milter settings need Postfix >= 3.0)")
		}
	case !in.Explicit["milter_default_action"] && len(others) == 0:
		comment("milter_default_action: tempfail, Postfix's default, spelled out: while heloguard is\ndown, mail waits (451 4.7.1) instead of getting in unjudged")
		set("milter_default_action", "tempfail")
	case action != "tempfail":
		// Postfix < 3.0 has no per-milter default_action.
		comment("milter_default_action = %s applies to every milter, heloguard included, and is left\nalone: with accept, mail gets in unjudged while heloguard is down. tempfail (451,\nsenders retry) is what heloguard wants; choose it if your other milters can live with it.", action)
	default:
		comment("milter_default_action = tempfail (for every milter): while heloguard is down, mail\nwaits (451 4.7.1) instead of getting in unjudged")
	}

	// milter_protocol: 6 (Postfix >= 2.6); Postfix narrows it per milter.
	if p, err := strconv.Atoi(in.Values["milter_protocol"]); err == nil && p < 6 {
		comment("milter_protocol was %d; heloguard speaks 6, and Postfix narrows it to what each milter offers", p)
		set("milter_protocol", "6")
	}

	// The macros heloguard reads, appended where missing.
	for _, m := range milterMacros {
		have := in.Values[m.param]
		var missing []string
		for _, want := range strings.Fields(m.macros) {
			if !containsField(have, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) > 0 {
			comment("%s: add %s (heloguard asks for them itself; listed so they are always sent)", m.param, strings.Join(missing, " "))
			set(m.param, strings.TrimSpace(have+" "+strings.Join(missing, " ")))
		}
	}

	// master.cf overrides are not changed.
	for _, l := range strings.Split(in.Overrides, "\n") {
		if name, val, ok := strings.Cut(l, "="); ok {
			name = strings.TrimSpace(name)
			if strings.HasSuffix(name, "/smtpd_milters") || strings.HasSuffix(name, "/non_smtpd_milters") {
				comment("master.cf: %s overrides %s =%s (not changed; postconf -P)", strings.Join(strings.Split(name, "/")[:2], "/"), name[strings.LastIndex(name, "/")+1:], val)
			}
		}
	}
	if changes == 0 {
		comment("nothing to change")
	}
	return b.String()
}

// chrootSpec writes a unix socket path for Postfix's smtpd: relative to the
// queue directory when smtpd runs chrooted there (Debian's master.cf).
func chrootSpec(path string, in postfixState, major int, comment func(string, ...any)) string {
	queue := strings.TrimSuffix(in.Values["queue_directory"], "/")
	chrooted, plain := 0, 0
	for _, l := range strings.Split(in.Master, "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || f[7] != "smtpd" {
			continue
		}
		// The chroot column's default "-" is n since Postfix 3.0.
		if f[4] == "y" || f[4] == "-" && major != 0 && major < 3 {
			chrooted++
		} else {
			plain++
		}
	}
	if chrooted == 0 {
		return "unix:" + path
	}
	rel, ok := strings.CutPrefix(path, queue+"/")
	if queue == "" || !ok {
		comment("smtpd runs chrooted in %s (master.cf) and cannot reach %s:\nlisten under %s/heloguard/ instead (heloguard.yaml listen:)", in.Values["queue_directory"], path, queue)
		return "unix:" + path
	}
	comment("smtpd runs chrooted in %s (master.cf): the socket %s is written relative to it", queue, path)
	if plain > 0 {
		comment("some smtpd services in master.cf are not chrooted: they need the full path\n(-o smtpd_milters=unix:%s)", path)
	}
	return "unix:/" + rel
}

// splitMilters splits a milter list on commas and white space, keeping a
// "{ ... }" entry (a milter with settings) and a "${name}" whole.
func splitMilters(s string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	inVar := false // in ${name} or ${name?value}
	prev := rune(0)
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		p := prev
		prev = r
		switch {
		case inVar:
			cur.WriteRune(r)
			inVar = r != '}'
		case r == '{' && p == '$':
			cur.WriteRune(r)
			inVar = true
		case r == '{':
			if depth == 0 {
				flush()
			}
			depth++
			cur.WriteRune(r)
		case r == '}' && depth > 0:
			cur.WriteRune(r)
			if depth--; depth == 0 {
				flush()
			}
		case depth == 0 && (r == ',' || r == ' ' || r == '\t' || r == '\n'):
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

// milterAddr is the address of a milter list entry: the entry itself, or
// the first element of "{ address, settings... }".
func milterAddr(m string) string {
	if inner, ok := strings.CutPrefix(m, "{"); ok {
		inner = strings.TrimSuffix(inner, "}")
		first, _, _ := strings.Cut(inner, ",")
		return strings.TrimSpace(first)
	}
	return m
}

func containsField(list, want string) bool {
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if f == want {
			return true
		}
	}
	return false
}

// postfixVersion reads "3.7.11"; 0, 0 when it cannot.
func postfixVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return major, minor
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
