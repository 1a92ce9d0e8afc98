package sendmail_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exchange is one client command and the server's reply to it.
type exchange struct {
	cmd   string // "EHLO", "MAIL", "RCPT", "DATA", "." (end of data), "QUIT", "" (greeting)
	reply string // lines of a multi-line reply joined with "\n"
}

// session is the transcript of one SMTP session.
type session struct {
	out       string
	exchanges []exchange
	elapsed   time.Duration // connect to QUIT, as swaks runs it
}

func (s session) replies(cmd string) []string {
	var out []string
	for _, e := range s.exchanges {
		if e.cmd == cmd {
			out = append(out, e.reply)
		}
	}
	return out
}

func (s session) reply(cmd string) string {
	if r := s.replies(cmd); len(r) > 0 {
		return r[0]
	}
	return ""
}

// Sendmail: "250 2.0.0 5AMBN0xS012345 Message accepted for delivery".
var queuedRE = regexp.MustCompile(`^250 2\.0\.0 (\S+) Message accepted`)

func (s session) queueID() string {
	if m := queuedRE.FindStringSubmatch(s.reply(".")); m != nil {
		return m[1]
	}
	return ""
}

// client is who connects: from a loopback address of its own, with a source
// port that tells its decision log line apart.
type client struct {
	name    string
	ip      string // 127.x.y.z or ::1
	port    int
	helo    string
	rcpts   []string
	headers []string
}

func (c client) id() string { return fmt.Sprintf("%s-%d", c.name, c.port) }

// freeSourcePort returns a port on ip that was free a moment ago.
func freeSourcePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var smtpCommands = map[string]bool{"EHLO": true, "HELO": true, "MAIL": true, "RCPT": true, "DATA": true, "QUIT": true, "RSET": true, ".": true}

// swaks runs one SMTP session against Sendmail on port, from c.ip:c.port.
func swaks(t *testing.T, bin string, port int, c client) session {
	t.Helper()
	server := "127.0.0.1"
	args := []string{}
	if strings.Contains(c.ip, ":") {
		server = "::1"
		args = append(args, "-6")
	}
	args = append(args,
		"--server", server, "--port", fmt.Sprint(port),
		"--local-interface", c.ip, "--local-port", fmt.Sprint(c.port),
		"--timeout", "20s",
		"--ehlo", c.helo,
		"--from", "x@sender.example",
		"--to", strings.Join(c.rcpts, ","),
		"--add-header", "X-E2E-Case: "+c.id(),
	)
	for _, h := range c.headers {
		args = append(args, "--add-header", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("swaks did not finish within 60s:\n%s", out)
	}
	s := parseSwaks(string(out))
	s.elapsed = elapsed
	if len(s.exchanges) == 0 || s.exchanges[0].reply == "" {
		t.Fatalf("swaks %s: %v: no SMTP greeting\n%s", strings.Join(args, " "), err, out)
	}
	return s
}

// parseSwaks reads swaks' transcript: " -> " lines are what it sent, "<- "
// and "<** " lines what the server answered.
func parseSwaks(out string) session {
	s := session{out: out}
	s.exchanges = append(s.exchanges, exchange{})
	cur, inData := 0, false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, " -> "):
			sent := line[4:]
			word := strings.ToUpper(strings.SplitN(sent, " ", 2)[0])
			if i := strings.IndexByte(word, ':'); i >= 0 {
				word = word[:i]
			}
			if inData && sent != "." {
				continue
			}
			if !smtpCommands[word] {
				continue
			}
			if word == "." {
				inData = false
			}
			s.exchanges = append(s.exchanges, exchange{cmd: word})
			cur = len(s.exchanges) - 1
		case strings.HasPrefix(line, "<- ") || strings.HasPrefix(line, "<** "):
			r := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(line, "<** "), "<-"), " ")
			e := &s.exchanges[cur]
			if e.reply != "" {
				e.reply += "\n"
			}
			e.reply += r
			if e.cmd == "DATA" && strings.HasPrefix(r, "354") {
				inData = true
			}
		}
	}
	return s
}
