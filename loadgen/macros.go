package loadgen

import (
	"strconv"
	"strings"
)

// Macro stages (SMFIM_*), the numbers of a milter's symbol list.
const (
	stageConnect = iota
	stageHelo
	stageMail
	stageRcpt
	stageData
	stageEOM
	stageEOH
	numStages
)

var stageNames = [numStages]string{"connect", "helo", "mail", "rcpt", "data", "eom", "eoh"}

func stageByName(s string) int {
	for i, n := range stageNames {
		if n == s {
			return i
		}
	}
	return -1
}

// postfixMacros are Postfix 3.7's default milter_*_macros, sent at a stage
// whose list the milter did not replace.
var postfixMacros = [numStages][]string{
	stageConnect: {"j", "{daemon_name}", "{daemon_addr}", "v", "_"},
	stageHelo:    {"{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"},
	stageMail:    {"i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}"},
	stageRcpt:    {"i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"},
	stageData:    {"i"},
	stageEOM:     {"i"},
	stageEOH:     {"i"},
}

// Fixed macro values: the receiving MTA.
const (
	mtaName    = "mx.receiver.example"
	mtaAddr    = "198.51.100.25"
	mtaVersion = "Postfix 3.7.11"
)

// macroEnv holds what one session's macros are made of.
type macroEnv struct {
	id       *Identity
	port     string
	queueID  string
	mailAddr string
	rcptAddr string
}

// value is a macro's value in this session as Postfix would give it; ok is
// false for one it would not send (no value: no TLS, no AUTH, unknown names).
func (e *macroEnv) value(name string) (string, bool) {
	switch strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}") {
	case "j", "daemon_name":
		return mtaName, true
	case "daemon_addr":
		return mtaAddr, true
	case "v":
		return mtaVersion, true
	case "_":
		return e.id.clientName() + " [" + e.id.Addr + "]", true
	case "client_addr":
		return e.id.Addr, true
	case "client_name":
		return e.id.clientName(), true
	case "client_ptr":
		return e.id.ptrOrUnknown(), true
	case "client_port":
		return e.port, true
	case "client_resolve":
		return e.id.resolve(), true
	case "i":
		return e.queueID, e.queueID != ""
	case "mail_addr":
		return e.mailAddr, e.mailAddr != ""
	case "rcpt_addr":
		return e.rcptAddr, e.rcptAddr != ""
	}
	return "", false
}

// appendMacros writes the D packet Postfix sends before an event: the event's
// command, then name and value of every macro of the stage's list that has a
// value (possibly none).
func appendMacros(p *packet, event byte, names []string, env *macroEnv) []byte {
	p.begin(cmdMacro)
	p.b = append(p.b, event)
	for _, name := range names {
		if v, ok := env.value(name); ok {
			p.str(name)
			p.str(v)
		}
	}
	return p.end()
}

// queueID makes a Postfix-looking queue id (11 upper-case hex digits) from a
// number.
func queueID(n uint64) string {
	var buf [16]byte
	b := strconv.AppendUint(buf[:0], n&(1<<40-1)|1<<40, 16)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
