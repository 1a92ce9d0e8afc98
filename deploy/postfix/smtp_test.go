package postfix_test

import (
	"bufio"
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
	cmd   string // "PROXY", "EHLO", "MAIL", "RCPT", "DATA", "." (end of data), "QUIT", "" (greeting)
	line  string // the command as sent
	reply string // the reply; lines of a multi-line reply joined with "\n"
}

// session is the transcript of one SMTP session.
type session struct {
	out       string
	exchanges []exchange
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

var queuedRE = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

// queueID is Postfix's queue id from the reply to the end of data.
func (s session) queueID() string {
	if m := queuedRE.FindStringSubmatch(s.reply(".")); m != nil {
		return m[1]
	}
	return ""
}

// client is who connects through the haproxy protocol.
type client struct {
	ip      string
	port    int // the proxied source port; unique per session, so log lines can be told apart
	helo    string
	rcpts   []string
	headers []string // added to the message
	proxyV  int      // 1 or 2
}

// The PROXY header gets no reply of its own, so it is not an exchange.
var smtpCommands = map[string]bool{"EHLO": true, "HELO": true, "MAIL": true, "RCPT": true, "DATA": true, "QUIT": true, "RSET": true, ".": true}

// swaks runs one SMTP session with swaks against 127.0.0.1:port and parses its
// transcript.
func swaks(t *testing.T, bin string, port int, c client) session {
	t.Helper()
	v := c.proxyV
	if v == 0 {
		v = 1
	}
	family := "TCP4"
	if v == 2 {
		family = "AF_INET"
	}
	args := []string{
		"--server", fmt.Sprintf("127.0.0.1:%d", port),
		"--timeout", "20s",
		"--proxy-version", fmt.Sprint(v), "--proxy-family", family,
		"--proxy-source", c.ip, "--proxy-source-port", fmt.Sprint(c.port),
		"--proxy-dest", "127.0.0.1", "--proxy-dest-port", fmt.Sprint(port),
		"--ehlo", c.helo,
		"--from", "x@sender.example",
		"--to", strings.Join(c.rcpts, ","),
	}
	for _, h := range c.headers {
		args = append(args, "--add-header", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("swaks did not finish within 60s:\n%s", out)
	}
	s := parseSwaks(string(out))
	if len(s.exchanges) == 0 || s.exchanges[0].reply == "" {
		t.Fatalf("swaks %s: %v: no SMTP greeting\n%s", strings.Join(args, " "), err, out)
	}
	return s
}

// parseSwaks reads swaks' transcript: " -> " lines are what it sent, "<- "
// and "<** " lines (the latter for error replies) what the server answered.
func parseSwaks(out string) session {
	s := session{out: out}
	s.exchanges = append(s.exchanges, exchange{}) // the greeting
	cur := 0
	inData := false
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
				continue // message text
			}
			if !smtpCommands[word] {
				continue
			}
			if word == "." {
				inData = false
			}
			s.exchanges = append(s.exchanges, exchange{cmd: word, line: sent})
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

// rawSession speaks SMTP itself, for what swaks cannot do (no HELO at all):
// the haproxy v1 header, then each command, collecting the replies.
func rawSession(t *testing.T, port int, c client, cmds []string) session {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	var s session
	readReply := func() string {
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading an SMTP reply: %v (so far %q)", err, lines)
			}
			l = strings.TrimRight(l, "\r\n")
			lines = append(lines, l)
			if len(l) < 4 || l[3] != '-' {
				return strings.Join(lines, "\n")
			}
		}
	}
	send := func(line string) {
		s.out += " -> " + line + "\n"
		if _, err := fmt.Fprintf(conn, "%s\r\n", line); err != nil {
			t.Fatal(err)
		}
	}
	proxy := fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 %d %d", c.ip, c.port, port)
	send(proxy)
	greeting := readReply()
	s.out += "<-  " + greeting + "\n"
	s.exchanges = append(s.exchanges, exchange{reply: greeting})
	for _, cmd := range cmds {
		send(cmd)
		reply := readReply()
		s.out += "<-  " + reply + "\n"
		word := strings.ToUpper(strings.SplitN(cmd, " ", 2)[0])
		if i := strings.IndexByte(word, ':'); i >= 0 {
			word = word[:i]
		}
		s.exchanges = append(s.exchanges, exchange{cmd: word, line: cmd, reply: reply})
	}
	return s
}
