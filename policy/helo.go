package policy

import (
	"net/netip"
	"strings"
)

// HeloForm is the RFC 5321 syntactic form of a HELO/EHLO argument
// (section 4.1.1.1: "Domain / address-literal").
type HeloForm string

const (
	// HeloFQDN is a domain name of at least two LDH labels, each 1 to 63
	// bytes, at most 253 bytes in all, whose top label is not all digits
	// (RFC 1123 section 2.1, so that "1.2.3.4" is not a name). One trailing
	// dot is tolerated and ignored: some clients send the absolute form.
	HeloFQDN HeloForm = "fqdn"
	// HeloAddressLiteral is "[IPv4]" or "[IPv6:...]" (RFC 5321 section
	// 4.1.3). The general form "[tag:content]" is invalid: nothing we could
	// compare with the client IP.
	HeloAddressLiteral HeloForm = "address-literal"
	// HeloBare is one LDH label, such as "localhost": syntactically a
	// Domain, but it names no host that anyone else can look up.
	HeloBare HeloForm = "bare"
	// HeloInvalid is anything else, including an IP address without
	// brackets and names with underscores or other non-LDH bytes.
	HeloInvalid HeloForm = "invalid"
	// HeloEmpty means no HELO was sent, or it was empty or only white space.
	HeloEmpty HeloForm = "empty"
)

// Helo is a parsed HELO/EHLO argument.
type Helo struct {
	Raw     string     // as the client sent it, untrimmed; client-controlled, pass it through ClientText before replying or logging
	Form    HeloForm   // syntactic form
	Name    string     // lowercased, trailing dot removed; "" unless Form is HeloFQDN or HeloBare
	Literal netip.Addr // IPv4-mapped IPv6 unmapped; valid only when Form is HeloAddressLiteral
}

// Length limits of RFC 1035 section 2.3.4, as text without the trailing dot:
// 255 octets on the wire is 253 characters of dotted name.
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// ParseHelo classifies s, the argument of HELO or EHLO ("" if none was sent).
// Surrounding white space (space, tab, CR, LF, VT, FF) is trimmed first:
// MTAs differ in whether they pass it on, and it says nothing about the client.
//
// Decisions where the RFCs leave room:
//   - Underscores make a name invalid: RFC 5321's sub-domain is LDH only, and
//     a HELO is a host name, not a service label.
//   - A single all-digit label ("12345") is invalid, not bare: it is a top
//     label that is all digits, and resolvers read such strings as addresses.
//   - "IPv6:" is matched without regard to case (RFC 5234 section 2.3 makes
//     ABNF strings case-insensitive). The IPv6 text is what net/netip accepts
//     (RFC 4291 section 2.2 forms, embedded IPv4 allowed), without a zone; that
//     is a little more liberal than RFC 5321's ABNF, which does not let "::"
//     stand for a single group.
//   - IPv4 literals with leading zeros ("[010.0.0.1]") are invalid: RFC 5321
//     allows 1*3DIGIT, but such octets are read as octal by some software, so
//     the client's intent is ambiguous.
//   - "[IPv6:::ffff:192.0.2.1]" has Literal 192.0.2.1, since IPv4-mapped
//     addresses are treated as IPv4 throughout; "[IPv6:192.0.2.1]" is invalid.
func ParseHelo(s string) Helo {
	h := Helo{Raw: s}
	t := strings.Trim(s, " \t\r\n\v\f")
	switch {
	case t == "":
		h.Form = HeloEmpty
	case t[0] == '[':
		if ip, ok := parseAddressLiteral(t); ok {
			h.Form = HeloAddressLiteral
			h.Literal = ip
		} else {
			h.Form = HeloInvalid
		}
	default:
		h.Form, h.Name = parseHeloName(t)
	}
	return h
}

// parseAddressLiteral parses "[IPv4]" or "[IPv6:addr]".
func parseAddressLiteral(t string) (netip.Addr, bool) {
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
		return netip.Addr{}, false
	}
	inner := t[1 : len(t)-1]
	const tag = "IPv6:"
	if len(inner) >= len(tag) && strings.EqualFold(inner[:len(tag)], tag) {
		ip, err := netip.ParseAddr(inner[len(tag):])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return netip.Addr{}, false
		}
		return ip.Unmap(), true
	}
	// netip rejects leading zeros in IPv4 octets and accepts only the
	// dotted-quad form, as RFC 5321's IPv4-address-literal requires.
	ip, err := netip.ParseAddr(inner)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, false
	}
	return ip, true
}

// parseHeloName classifies a HELO that is not an address literal, returning the
// normalized name for the fqdn and bare forms.
func parseHeloName(t string) (HeloForm, string) {
	t = strings.TrimSuffix(t, ".")
	if t == "" || len(t) > maxNameLen {
		return HeloInvalid, ""
	}
	labels := 0
	top := ""
	for rest := t; ; {
		label, after, more := strings.Cut(rest, ".")
		if !ldhLabel(label) {
			return HeloInvalid, ""
		}
		labels++
		if !more {
			top = label
			break
		}
		rest = after
	}
	// The top label must not be all digits (RFC 1123 section 2.1): that
	// rules out dotted IPv4 addresses without brackets, and single numbers.
	if digitsOnly(top) {
		return HeloInvalid, ""
	}
	form := HeloFQDN
	if labels == 1 {
		form = HeloBare
	}
	return form, lowerASCII(t)
}

// ldhLabel reports whether s is an LDH label: 1 to 63 letters, digits and
// hyphens, neither starting nor ending with a hyphen (RFC 5321 sub-domain,
// RFC 1123 section 2.1 lets it start with a digit).
func ldhLabel(s string) bool {
	if len(s) == 0 || len(s) > maxLabelLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// digitsOnly reports whether s is non-empty and all ASCII digits.
func digitsOnly(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
