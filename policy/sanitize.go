package policy

// ClientText makes a client-controlled string safe to put into an SMTP reply
// text and into a log line: every byte outside printable ASCII (0x20 to 0x7e),
// CR, LF and TAB included, becomes '?', so a client cannot end a reply line,
// inject a log line or smuggle bytes an MTA would refuse (RFC 5321 section
// 4.2: reply text is printable US-ASCII). Bytes are replaced one for one, so a
// multi-byte UTF-8 character becomes several '?'.
//
// The result is at most maxLen bytes long, "..." included: when s does not
// fit, it is cut at maxLen-3 bytes and "..." appended, so a reader sees it was
// cut. A maxLen below 4 leaves only dots ("..." cut to maxLen bytes); maxLen <= 0
// gives "".
//
// '%' is left alone: doubling it for the milter's reply is the wire encoder's
// job, and a log line wants it as sent.
func ClientText(s string, maxLen int) string {
	if maxLen <= 0 {
		return ""
	}
	const ellipsis = "..."
	cut := len(s) > maxLen
	n := len(s)
	if cut {
		n = maxLen - len(ellipsis)
		if n <= 0 {
			return ellipsis[:maxLen]
		}
	}
	clean := true
	for i := 0; i < n; i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			clean = false
			break
		}
	}
	if clean && !cut {
		return s
	}
	b := make([]byte, n, n+len(ellipsis))
	for i := 0; i < n; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b[i] = c
	}
	if cut {
		b = append(b, ellipsis...)
	}
	return string(b)
}
