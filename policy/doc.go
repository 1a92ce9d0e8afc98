// Package policy decides whether an SMTP client's reverse DNS and HELO name are
// acceptable. It gathers evidence — RFC 8601 section 3 iprev (forward-confirmed
// reverse DNS), the RFC 5321 section 4.1.1.1 form of the HELO, RFC 7208 check_host
// of the HELO identity (section 2.3) and the organizational domains of both names —
// and evaluates an ordered list of rules over it.
//
// policy is pure: it opens no sockets and knows nothing of milters. It talks to DNS
// only through Resolver; dnscache implements that over the wire.
package policy
