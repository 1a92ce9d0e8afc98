package policy

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// OrgDomain returns the organizational domain of name: its eTLD+1 under the
// Public Suffix List as golang.org/x/net/publicsuffix has it, the whole list
// including the private section, so that each blogspot.com blog or
// *.compute-1.amazonaws.com instance is its own organization rather than
// everybody's. The result is lowercased, without trailing dot.
//
// ok is false when name has no organizational domain: it is itself a public
// suffix ("co.uk", "blogspot.com", "ec2-1-2-3-4.compute-1.amazonaws.com" under
// the wildcard rule *.compute-1.amazonaws.com), a single label, or not a host
// name at all. Names under TLDs missing from the list, such as .example and
// .test, fall to the list's default rule "*": "vps66.cheap-hosting.example" has
// organizational domain "cheap-hosting.example".
//
// name may carry one trailing dot and any case. Its labels must be 1 to 63
// letters, digits, hyphens or underscores (at most 253 bytes in all) and its
// top label must not be all digits. That is looser than the HELO syntax check,
// on purpose: PTR names in the wild sometimes hold underscores or misplaced
// hyphens, and still belong to an organization; whether a HELO is acceptable
// is ParseHelo's question, not this one.
func OrgDomain(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if !orgDomainSyntax(name) {
		return "", false
	}
	org, err := publicsuffix.EffectiveTLDPlusOne(lowerASCII(name))
	if err != nil {
		return "", false
	}
	return org, true
}

// orgDomainSyntax checks a name without trailing dot, as described at
// OrgDomain.
func orgDomainSyntax(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
			continue
		}
		if n := i - start; n == 0 || n > maxLabelLen {
			return false
		}
		if i == len(name) && digitsOnly(name[start:]) {
			return false
		}
		start = i + 1
	}
	return true
}

// Aligned reports whether helo and at least one of confirmedPTRs share an
// organizational domain. A name without one aligns with nothing: "co.uk" is
// not an organization, and two instances under a wildcard public suffix are
// different customers.
//
// Alignment alone must never accept mail: on shared hosting every customer's
// PTR shares the hoster's organizational domain. It is evidence that is only
// worth something together with SPF pass for the HELO.
func Aligned(helo string, confirmedPTRs []string) bool {
	org, ok := OrgDomain(helo)
	if !ok {
		return false
	}
	for _, p := range confirmedPTRs {
		if o, ok := OrgDomain(p); ok && o == org {
			return true
		}
	}
	return false
}

// lowerASCII lowercases the ASCII letters of s and nothing else: DNS names
// compare case-insensitively in ASCII only (RFC 4343), and Unicode case
// mapping would turn, say, the Kelvin sign into a "k".
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
