package main

import (
	"slices"
	"strings"
	"testing"
)

// postfixDefaults are what postconf -h prints on a Postfix 3.7 main.cf that
// sets nothing about milters.
func postfixDefaults() map[string]string {
	return map[string]string{
		"smtpd_milters": "", "non_smtpd_milters": "", "milter_default_action": "tempfail", "milter_protocol": "6",
		"mail_version": "3.7.11", "queue_directory": "/var/spool/postfix",
		"milter_connect_macros":     "j {daemon_name} {daemon_addr} v _",
		"milter_mail_macros":        "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
		"milter_rcpt_macros":        "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
		"milter_end_of_data_macros": "i",
	}
}

const debianMaster = `smtp       inet  n       -       y       -       -       smtpd
pickup     unix  n       -       y       60      1       pickup
`

// commands are the postconf lines of postfixCommands' output.
func commands(out string) []string {
	var cmds []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "postconf ") {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

func TestPostfixCommands(t *testing.T) {
	connect := "postconf -e 'milter_connect_macros = j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} {client_port}'"
	tests := []struct {
		name     string
		values   map[string]string // over postfixDefaults
		explicit []string
		master   string
		socket   string
		listen   []string
		want     []string // the postconf commands, in order
		comments []string // text the comments must hold
	}{
		{name: "no milters yet", listen: []string{"inet:127.0.0.1:8894"},
			want:     []string{"postconf -e 'smtpd_milters = inet:127.0.0.1:8894'", "postconf -e 'milter_default_action = tempfail'", connect},
			comments: []string{"smtpd_milters was empty", "tempfail, Postfix's default, spelled out"}},
		{name: "OpenDKIM, $smtpd_milters, accept", listen: []string{"inet:127.0.0.1:8894"},
			values:   map[string]string{"smtpd_milters": "inet:localhost:8891", "non_smtpd_milters": "$smtpd_milters", "milter_default_action": "accept"},
			explicit: []string{"smtpd_milters", "non_smtpd_milters", "milter_default_action"},
			want: []string{"postconf -e 'smtpd_milters = inet:localhost:8891, { inet:127.0.0.1:8894, default_action=tempfail }'",
				"postconf -e 'non_smtpd_milters = inet:localhost:8891'", connect},
			comments: []string{"smtpd_milters was: inet:localhost:8891", "non_smtpd_milters was: $smtpd_milters", "milter_default_action = accept applies to your other milters and is left alone"}},
		{name: "two milters, ${smtpd_milters} and more, tempfail set", socket: "inet:[::1]:8894",
			values: map[string]string{"smtpd_milters": "unix:/opendkim/opendkim.sock,{ inet:127.0.0.1:8893, connect_timeout=10s }", "non_smtpd_milters": "${smtpd_milters} inet:127.0.0.1:9999",
				"milter_default_action": "tempfail", "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} {client_port}"},
			explicit: []string{"smtpd_milters", "non_smtpd_milters", "milter_default_action"},
			want: []string{"postconf -e 'smtpd_milters = unix:/opendkim/opendkim.sock, { inet:127.0.0.1:8893, connect_timeout=10s }, inet:[::1]:8894'",
				"postconf -e 'non_smtpd_milters = unix:/opendkim/opendkim.sock, { inet:127.0.0.1:8893, connect_timeout=10s }, inet:127.0.0.1:9999'"},
			comments: []string{"milter_default_action = tempfail (for every milter)"}},
		{name: "already there, heloguard in non_smtpd_milters", listen: []string{"inet:127.0.0.1:8894"},
			values:   map[string]string{"smtpd_milters": "inet:127.0.0.1:8894", "non_smtpd_milters": "inet:127.0.0.1:8894"},
			explicit: []string{"smtpd_milters", "non_smtpd_milters", "milter_default_action"},
			want:     []string{"postconf -e 'non_smtpd_milters = '", connect},
			comments: []string{"is already in smtpd_milters"}},
		{name: "already there with settings: nothing to do", listen: []string{"inet:127.0.0.1:8894"},
			values: map[string]string{"smtpd_milters": "inet:localhost:8891 { inet:127.0.0.1:8894, default_action=tempfail }", "non_smtpd_milters": "inet:localhost:8891",
				"milter_default_action": "accept", "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} {client_port}"},
			explicit: []string{"smtpd_milters", "non_smtpd_milters", "milter_default_action"},
			comments: []string{"is already in smtpd_milters", "nothing to change"}},
		{name: "unix socket, chrooted smtpd", listen: []string{"unix:/var/spool/postfix/heloguard/heloguard.sock"}, master: debianMaster,
			want:     []string{"postconf -e 'smtpd_milters = unix:/heloguard/heloguard.sock'", "postconf -e 'milter_default_action = tempfail'", connect},
			comments: []string{"smtpd runs chrooted in /var/spool/postfix (master.cf)"}},
		{name: "unix socket, smtpd not chrooted", listen: []string{"unix:/var/spool/postfix/heloguard/heloguard.sock", "inet:127.0.0.1:8894"},
			master:   strings.Replace(debianMaster, "-       y       -       -       smtpd", "-       n       -       -       smtpd", 1),
			want:     []string{"postconf -e 'smtpd_milters = unix:/var/spool/postfix/heloguard/heloguard.sock'", "postconf -e 'milter_default_action = tempfail'", connect},
			comments: []string{"the first one is used"}},
		{name: "unix socket outside the chroot", listen: []string{"unix:/run/heloguard/heloguard.sock"}, master: debianMaster,
			want:     []string{"postconf -e 'smtpd_milters = unix:/run/heloguard/heloguard.sock'", "postconf -e 'milter_default_action = tempfail'", connect},
			comments: []string{"cannot reach /run/heloguard/heloguard.sock"}},
		{name: "Postfix 2.11 with accept, old protocol", listen: []string{"inet:127.0.0.1:8894"},
			values:   map[string]string{"mail_version": "2.11.3", "smtpd_milters": "inet:localhost:8891", "milter_default_action": "accept", "milter_protocol": "2"},
			explicit: []string{"smtpd_milters", "milter_default_action", "milter_protocol"},
			want: []string{"postconf -e 'smtpd_milters = inet:localhost:8891, inet:127.0.0.1:8894'",
				"postconf -e 'milter_protocol = 6'", connect},
			comments: []string{"applies to every milter, heloguard included, and is left\nalone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := postfixState{Values: postfixDefaults(), Explicit: map[string]bool{}, Master: tc.master, Socket: tc.socket, Listen: tc.listen}
			for k, v := range tc.values {
				in.Values[k] = v
			}
			for _, k := range tc.explicit {
				in.Explicit[k] = true
			}
			out := postfixCommands(in)
			if got := commands(out); !slices.Equal(got, tc.want) {
				t.Errorf("commands:\n%s\nwant:\n%s\n--- output:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), out)
			}
			flat := strings.ReplaceAll(out, "\n# ", "\n")
			for _, c := range tc.comments {
				if !strings.Contains(flat, c) {
					t.Errorf("output lacks %q:\n%s", c, out)
				}
			}
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if !strings.HasPrefix(l, "# ") && !strings.HasPrefix(l, "postconf ") {
					t.Errorf("neither a comment nor a command: %q", l)
				}
			}
		})
	}
}

func TestPostfixCommandsConfDir(t *testing.T) {
	in := postfixState{Values: postfixDefaults(), Explicit: map[string]bool{}, Listen: []string{"inet:127.0.0.1:8894"}, ConfDir: "/tmp/it's here"}
	got := commands(postfixCommands(in))
	if len(got) == 0 || got[0] != `postconf -c '/tmp/it'\''s here' -e 'smtpd_milters = inet:127.0.0.1:8894'` {
		t.Errorf("-c DIR is not passed on, quoted: %q", got)
	}
}

func TestSplitMilters(t *testing.T) {
	for in, want := range map[string][]string{
		"":                    nil,
		"inet:localhost:8891": {"inet:localhost:8891"},
		" a, b\tc ,d ":        {"a", "b", "c", "d"},
		"a,{ inet:x:1, default_action=accept },b": {"a", "{ inet:x:1, default_action=accept }", "b"},
		"{inet:x:1,connect_timeout=1s}{b}":        {"{inet:x:1,connect_timeout=1s}", "{b}"},
	} {
		if got := splitMilters(in); !slices.Equal(got, want) {
			t.Errorf("splitMilters(%q) = %q, want %q", in, got, want)
		}
	}
	if a := milterAddr("{ inet:127.0.0.1:8894, default_action=tempfail }"); a != "inet:127.0.0.1:8894" {
		t.Errorf("milterAddr = %q", a)
	}
}

func TestPostfixConfigUsage(t *testing.T) {
	if code, _, errs := runCmd("postfix-config", "--socket", "127.0.0.1:8894", "-c", t.TempDir()); code == 0 {
		t.Errorf("a --socket without inet: or unix: is accepted (stderr %q)", errs)
	}
	if code, _, errs := runCmd("postfix-config", "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("postfix-config extra: exit %d %s", code, errs)
	}
}
