package milter

import (
	"strconv"
	"strings"
)

// Limits on client-controlled text a session keeps and logs. Longer strings
// are cut (clip): a session holds a few hundred bytes of each, whatever the
// MTA passes on, and a decision line stays short.
const (
	// maxName bounds the HELO and the MTA's host name for the client: RFC 5321
	// 4.5.3.1.2 limits a domain to 255 octets, so a longer HELO is invalid
	// whatever its text, and the cut one is judged as such.
	maxName = 255
	// maxQueueID bounds the MTA's queue id: Postfix's long ids have 15 to 20
	// characters, Sendmail's 14.
	maxQueueID = 64
	// maxAuthUser bounds the SASL user name ({auth_authen}), of which only
	// whether it is empty counts.
	maxAuthUser = 255
	// maxPath is RFC 5321 4.5.3.1.3's limit on a path (<local@domain>): a
	// longer recipient is never exempt, since cutting it could make it look
	// like postmaster@ when it is not.
	maxPath = 256
)

// clip returns s if it has at most max bytes, else its first max bytes and a
// marker that says how many were cut: "…[cut 59745 bytes]". The marker holds a
// space and brackets, so a clipped HELO never parses as a name or an address
// literal. A cut result is a new string: it does not hold on to s.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "…[cut " + strconv.Itoa(len(s)-max) + " bytes]"
}

// keep is clip for values that must not hold on to the string they came in:
// go-milter splits each macro packet into substrings of one string, so keeping
// a short macro value would keep the whole packet.
func keep(s string, max int) string {
	if len(s) <= max {
		return strings.Clone(s)
	}
	return clip(s, max)
}
