package sendmail_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/deploy/internal/e2e"
)

// Sendmail: "250 2.0.0 5AMBN0xS012345 Message accepted for delivery".
var queuedRE = regexp.MustCompile(`^250 2\.0\.0 (\S+) Message accepted`)

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

// swaks runs one SMTP session against Sendmail on port, from c.ip:c.port.
func swaks(t *testing.T, bin string, port int, c client) e2e.Session {
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
	)
	headers := append([]string{"X-E2E-Case: " + c.id()}, c.headers...)
	return e2e.Swaks(t, bin, append(args, e2e.MessageArgs(c.helo, c.rcpts, headers)...))
}
