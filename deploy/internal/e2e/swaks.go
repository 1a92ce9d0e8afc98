package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Exchange is one client command and the server's reply to it.
type Exchange struct {
	Cmd   string // "EHLO", "MAIL", "RCPT", "DATA", "." (end of data), "QUIT", "" (greeting)
	Line  string // the command as sent
	Reply string // the reply; lines of a multi-line reply joined with "\n"
}

// Session is the transcript of one SMTP session, as the tests assert on it
// whichever MTA answered.
type Session struct {
	Out       string
	Exchanges []Exchange
	Elapsed   time.Duration // connect to QUIT, as swaks runs it
}

// Replies are the replies to every cmd, in order (several RCPTs).
func (s Session) Replies(cmd string) []string {
	var out []string
	for _, e := range s.Exchanges {
		if e.Cmd == cmd {
			out = append(out, e.Reply)
		}
	}
	return out
}

// Reply is the reply to the first cmd, or "" if it was not sent.
func (s Session) Reply(cmd string) string {
	if r := s.Replies(cmd); len(r) > 0 {
		return r[0]
	}
	return ""
}

// QueueID is the queue id in the reply to the end of data; each MTA words
// that reply its own way, so re (one group, the id) comes from its test.
func (s Session) QueueID(re *regexp.Regexp) string {
	if m := re.FindStringSubmatch(s.Reply(".")); m != nil {
		return m[1]
	}
	return ""
}

// Verb is the command word of an SMTP line: "MAIL FROM:<x>" is "MAIL".
func Verb(line string) string {
	word := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
	if i := strings.IndexByte(word, ':'); i >= 0 {
		word = word[:i]
	}
	return word
}

// MessageArgs are the swaks arguments for one message from x@sender.example;
// the caller adds how to reach the MTA, which differs between them.
func MessageArgs(helo string, rcpts, headers []string) []string {
	args := []string{
		"--timeout", "20s",
		"--ehlo", helo,
		"--from", "x@sender.example",
		"--to", strings.Join(rcpts, ","),
	}
	for _, h := range headers {
		args = append(args, "--add-header", h)
	}
	return args
}

// Swaks runs swaks with args and parses its transcript. The session must at
// least get a greeting; what follows is for the test to judge.
func Swaks(t testing.TB, bin string, args []string) Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("swaks did not finish within 60s:\n%s", out)
	}
	s := ParseSwaks(string(out))
	s.Elapsed = elapsed
	if len(s.Exchanges) == 0 || s.Exchanges[0].Reply == "" {
		t.Fatalf("swaks %s: %v: no SMTP greeting\n%s", strings.Join(args, " "), err, out)
	}
	return s
}

// The PROXY header gets no reply of its own, so it is not an exchange.
var smtpCommands = map[string]bool{"EHLO": true, "HELO": true, "MAIL": true, "RCPT": true, "DATA": true, "QUIT": true, "RSET": true, ".": true}

// ParseSwaks reads swaks' transcript: " -> " lines are what it sent, "<- "
// and "<** " lines (the latter for error replies) what the server answered.
func ParseSwaks(out string) Session {
	s := Session{Out: out}
	s.Exchanges = append(s.Exchanges, Exchange{}) // the greeting
	cur, inData := 0, false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, " -> "):
			sent := line[4:]
			word := Verb(sent)
			if inData && sent != "." {
				continue // message text
			}
			if !smtpCommands[word] {
				continue
			}
			if word == "." {
				inData = false
			}
			s.Exchanges = append(s.Exchanges, Exchange{Cmd: word, Line: sent})
			cur = len(s.Exchanges) - 1
		case strings.HasPrefix(line, "<- ") || strings.HasPrefix(line, "<** "):
			r := strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(line, "<** "), "<-"), " ")
			e := &s.Exchanges[cur]
			if e.Reply != "" {
				e.Reply += "\n"
			}
			e.Reply += r
			if e.Cmd == "DATA" && strings.HasPrefix(r, "354") {
				inData = true
			}
		}
	}
	return s
}
