// Package policy decides whether an SMTP client's reverse DNS and HELO name are
// acceptable, in two halves:
//
//   - Gathering the evidence (engine.go, iprev.go, spf.go, evcache.go): RFC 8601
//     section 3 iprev (forward-confirmed reverse DNS), RFC 7208 check_host of the
//     HELO identity (section 2.3) and of the PTR name's organizational domain
//     (ptr_spf), A/AAAA of the HELO. This half talks to DNS, only through the
//     Resolver interface (dnscache implements it over the wire), reads the clock
//     and keeps the evidence cache.
//   - Judging it (fields.go, rules.go, placeholders.go, helo.go, generic.go,
//     orgdomain.go, early.go): the RFC 5321 section 4.1.1.1 form of the HELO,
//     generic-PTR patterns, organizational domains (Public Suffix List) and the
//     ordered rules, first match wins. This half is pure: Engine.Judge and
//     JudgeEarly need no resolver, which is how replay re-decides logged
//     evidence.
//
// Neither half opens a socket of its own, logs, or knows anything of milters.
// fields.go holds the one table of evidence fields the rest of the program
// derives its vocabulary from.
package policy
