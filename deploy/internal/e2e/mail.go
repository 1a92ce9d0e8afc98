package e2e

import "strings"

// AuthservID is the receiving server's authserv-id, in the config the daemon
// gets and in the Authentication-Results headers the tests look for.
const AuthservID = "mx.receiver.example"

// Message is one delivered message, however the MTA stored it.
type Message struct {
	Headers [][2]string // name, unfolded value, in order
	Raw     string
}

// ParseMessage reads the header section of raw, unfolding continuation lines.
func ParseMessage(raw string) Message {
	m := Message{Raw: raw}
	for _, l := range strings.Split(raw, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			break
		}
		if (l[0] == ' ' || l[0] == '\t') && len(m.Headers) > 0 {
			m.Headers[len(m.Headers)-1][1] += " " + strings.TrimSpace(l)
			continue
		}
		name, value, _ := strings.Cut(l, ":")
		m.Headers = append(m.Headers, [2]string{name, strings.TrimSpace(value)})
	}
	return m
}

// Get returns the values of the header name, in order.
func (m Message) Get(name string) []string {
	var out []string
	for _, h := range m.Headers {
		if strings.EqualFold(h[0], name) {
			out = append(out, h[1])
		}
	}
	return out
}

// AuthResults splits the Authentication-Results headers into those that carry
// our authserv-id and the others.
func (m Message) AuthResults() (ours, others []string) {
	for _, v := range m.Get("Authentication-Results") {
		id, _, _ := strings.Cut(v, ";")
		if strings.EqualFold(strings.TrimSpace(id), AuthservID) {
			ours = append(ours, v)
		} else {
			others = append(others, v)
		}
	}
	return
}

// Tagged returns the messages whose X-E2E-Case header is id: each test
// session tags its message so that its delivery can be told apart.
func Tagged(msgs []Message, id string) []Message {
	var out []Message
	for _, m := range msgs {
		for _, v := range m.Get("X-E2E-Case") {
			if v == id {
				out = append(out, m)
			}
		}
	}
	return out
}
