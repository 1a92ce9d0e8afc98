package postfix_test

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

// queuedRE finds Postfix's queue id in the reply to the end of data.
var queuedRE = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

// client is who connects through the haproxy protocol.
type client struct {
	name    string
	ip      string
	port    int // the proxied source port; unique per session, so log lines can be told apart
	helo    string
	rcpts   []string
	headers []string // added to the message after its X-E2E-Case
	proxyV  int      // 1 or 2
}

func (c client) id() string { return fmt.Sprintf("%s-%d", c.name, c.port) }

// swaks runs one SMTP session with swaks against 127.0.0.1:port, the client's
// address carried in a haproxy header.
func swaks(t *testing.T, bin string, port int, c client) e2e.Session {
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
		"--proxy-version", fmt.Sprint(v), "--proxy-family", family,
		"--proxy-source", c.ip, "--proxy-source-port", fmt.Sprint(c.port),
		"--proxy-dest", "127.0.0.1", "--proxy-dest-port", fmt.Sprint(port),
	}
	headers := append([]string{"X-E2E-Case: " + c.id()}, c.headers...)
	return e2e.Swaks(t, bin, append(args, e2e.MessageArgs(c.helo, c.rcpts, headers)...))
}

// rawSession speaks SMTP itself, for what swaks cannot do (no HELO at all):
// the haproxy v1 header, then each command, collecting the replies.
func rawSession(t *testing.T, port int, c client, cmds []string) e2e.Session {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	var s e2e.Session
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
		s.Out += " -> " + line + "\n"
		if _, err := fmt.Fprintf(conn, "%s\r\n", line); err != nil {
			t.Fatal(err)
		}
	}
	proxy := fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 %d %d", c.ip, c.port, port)
	send(proxy)
	greeting := readReply()
	s.Out += "<-  " + greeting + "\n"
	s.Exchanges = append(s.Exchanges, e2e.Exchange{Reply: greeting})
	for _, cmd := range cmds {
		send(cmd)
		reply := readReply()
		s.Out += "<-  " + reply + "\n"
		s.Exchanges = append(s.Exchanges, e2e.Exchange{Cmd: e2e.Verb(cmd), Line: cmd, Reply: reply})
	}
	return s
}
