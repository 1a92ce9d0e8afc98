// Package milter is the thin glue between an MTA's milter protocol (Sendmail
// libmilter protocol version 2 as spoken by github.com/emersion/go-milter, used by
// Postfix smtpd_milters and Sendmail INPUT_MAIL_FILTER) and the policy engine.
//
// Data flows one way: a session collects the client address at connect (starting
// the reverse lookups), asks the engine for a decision at HELO, delivers it at the
// configured stage (connect, helo, mail or rcpt) unless an exemption applies, adds
// an RFC 8601 Authentication-Results header at end of message, and writes one JSON
// decision log line.
//
// Traps of go-milter v0.5.0 handled here (see docs/milter.md): any response other
// than continue or a 'y' reply replaces the backend, so refusals are always 'y'
// replies and EOM answers continue; every macro packet replaces the macro map, so
// values are copied when they arrive; there are no deadlines, so the conn wrapper
// sets them.
package milter
