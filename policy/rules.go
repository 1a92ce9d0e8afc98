package policy

import (
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Action is what a rule tells the MTA to do with the client.
type Action string

const (
	ActionAccept     Action = "accept"     // let the client through
	ActionReject     Action = "reject"     // refuse with a 5xx reply
	ActionTempfail   Action = "tempfail"   // refuse with a 4xx reply; the client retries
	ActionQuarantine Action = "quarantine" // accept, and hold the message in the MTA's quarantine
	ActionTag        Action = "tag"        // accept, and mark the message with a header
)

// Actions lists every action, for validation messages.
func Actions() []Action {
	return []Action{ActionAccept, ActionReject, ActionTempfail, ActionQuarantine, ActionTag}
}

// Refuses reports whether the action refuses the client.
func (a Action) Refuses() bool { return a == ActionReject || a == ActionTempfail }

// Reply is an SMTP reply: code, RFC 3463 enhanced status code and text. Text may
// hold placeholders until the rule fires: {ip}, {helo}, {ptr}, {rule}, {iprev},
// {spf}.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

// String gives the reply as the client sees it: "550 5.7.25 text".
func (r Reply) String() string {
	if r.Code == 0 {
		return ""
	}
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Pattern matches a DNS name: a glob (path.Match syntax, case-insensitive) or a
// regular expression written between slashes, "/^mail[0-9]+\.example\.com$/".
type Pattern struct {
	Source string
	glob   string
	re     *regexp.Regexp
}

// ParsePattern compiles a glob or a /regexp/.
func ParsePattern(s string) (Pattern, error) {
	if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
		re, err := regexp.Compile("(?i)" + s[1:len(s)-1])
		if err != nil {
			return Pattern{}, err
		}
		return Pattern{Source: s, re: re}, nil
	}
	g := normName(s)
	if _, err := path.Match(g, ""); err != nil {
		return Pattern{}, err
	}
	return Pattern{Source: s, glob: g}, nil
}

// Match reports whether name (any case, trailing dot or not) matches.
func (p Pattern) Match(name string) bool {
	name = normName(name)
	if p.re != nil {
		return p.re.MatchString(name)
	}
	ok, _ := path.Match(p.glob, name)
	return ok
}

// Match is a rule's condition. Every condition that is set must hold (and); a
// list of values or patterns holds when any one matches (or). A zero Match holds
// always.
type Match struct {
	IP   []netip.Prefix // client IP in one of these networks
	PTR  []Pattern      // a forward-confirmed PTR name matches (unconfirmed names are forgeable)
	Helo []Pattern      // the HELO name matches

	Is []Cond // evidence conditions (fields.go), in the order written

	All []Match
	Any []Match
	Not *Match
}

// Facts is what a Match is evaluated against. The evidence is held by value:
// a pointer in here would leak to the heap through the patterns' matching,
// and take the evidence with it on every decision.
type Facts struct {
	IP       netip.Addr
	Helo     Helo
	Evidence Evidence
}

// Holds reports whether m holds for f.
func (m *Match) Holds(f *Facts) bool {
	e := &f.Evidence
	if len(m.IP) > 0 && !anyPrefix(m.IP, f.IP) {
		return false
	}
	if len(m.PTR) > 0 && !anyPattern(m.PTR, e.PTRConfirmed...) {
		return false
	}
	if len(m.Helo) > 0 && (f.Helo.Name == "" || !anyPattern(m.Helo, f.Helo.Name)) {
		return false
	}
	for i := range m.Is {
		if !m.Is[i].Holds(e) {
			return false
		}
	}
	for i := range m.All {
		if !m.All[i].Holds(f) {
			return false
		}
	}
	if len(m.Any) > 0 {
		ok := false
		for i := range m.Any {
			if m.Any[i].Holds(f) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return m.Not == nil || !m.Not.Holds(f)
}

func anyPrefix(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func anyPattern(ps []Pattern, names ...string) bool {
	for _, n := range names {
		for _, p := range ps {
			if p.Match(n) {
				return true
			}
		}
	}
	return false
}

// Rule is one entry of the ordered rule list; the first rule whose Match holds
// decides.
type Rule struct {
	Name    string
	Match   Match
	Action  Action
	Reply   Reply  // template; zero means the action's default reply
	Monitor bool   // log-only: the decision is logged and tagged, but not enforced
	Source  string // where the rule was written, "file:line", for explanations
}

// DefaultReply is the reply of a refusing rule that names none.
func DefaultReply(a Action) Reply {
	switch a {
	case ActionReject:
		return Reply{Code: 550, Enhanced: "5.7.1", Text: "rejected by policy rule {rule}: client {ip}, HELO {helo}"}
	case ActionTempfail:
		return Reply{Code: 451, Enhanced: "4.7.1", Text: "temporarily refused by policy rule {rule}: client {ip}, HELO {helo}"}
	}
	return Reply{}
}
