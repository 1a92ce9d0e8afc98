// Package milter is the thin glue between an MTA's milter protocol (Sendmail
// libmilter protocol version 6, falling back to 2, as spoken by
// github.com/d--j/go-milter; used by Postfix smtpd_milters and Sendmail
// INPUT_MAIL_FILTER) and the policy engine.
//
// Data flows one way: a session collects the client address at connect (starting
// the reverse lookups), asks the engine for a decision at HELO, delivers it at the
// configured stage (connect, helo, mail or rcpt) unless an exemption applies, adds
// an RFC 8601 Authentication-Results header at end of message, and writes one JSON
// decision log line.
//
// What is negotiated (negotiate.go): header fields without replies
// (SMFIP_NR_HDR), no DATA, end-of-header, body or unknown events, and no replies
// at the stages before reject_at. The conn (conn.go) frames the packet stream
// before go-milter reads it: deadlines, packet limits, header fields other than
// Authentication-Results discarded as they arrive, replies written in one system
// call. See docs/milter.md.
package milter
