package policy

import (
	"net/netip"
	"strings"
)

// DefaultGenericTokens returns the labels that, left of the organizational
// domain of a PTR name, mark an address from a pool of dynamic or consumer
// addresses. It returns a fresh slice each time, so that a caller that
// appends to or edits its list changes no one else's.
func DefaultGenericTokens() []string {
	return []string{
		"dyn", "dynamic", // dynamically assigned
		"dsl", "adsl", "xdsl", // DSL lines
		"dhcp", "pool", // address pools
		"ppp", "pppoe", // dial-up and DSL sessions
		"cable", "cpe", // cable modems and customer premises equipment
		"dialup", "broadband", "residential",
	}
}

// IsGenericPTR reports whether name, a PTR name of ip, looks like it was made
// up for an address in a pool rather than given to a mail server. Mail from
// such names comes mostly from infected home machines.
//
// For an IPv4 address (an IPv4-mapped IPv6 address counts as IPv4) the name
// is generic when:
//   - its maximal runs of decimal digits, read as numbers (leading zeros
//     allowed: "010" is 10, "0131" is 131), equal at least 3 of the 4 octets, in
//     any order; each octet and each run is matched at most once, so 10.0.0.5
//     needs "0" twice to have both zeros matched. Two octets are not enough:
//     "mx113-7.mailer.example" for 203.0.113.7 is a numbered server, not a pool;
//   - or it holds the address as 8 hex digits, in either case ("c6000a14" for
//     198.0.10.20);
//   - or the token rule below holds.
//
// For an IPv6 address the name is generic when it holds the low 64 bits (the
// interface identifier, which pools derive from the subscriber) as 16 hex
// digits; or the whole address with dashes for colons, compressed
// ("2001-db8--1"), with zeros unpadded ("2001-db8-0-0-0-0-0-1") or padded to
// four digits; or the 32 nibbles separated by dots, in address or in ip6.arpa
// order; or the token rule holds. Decimal runs mean nothing for IPv6.
//
// The token rule: a label, or a dash-separated part of a label, that is left of
// the organizational domain (OrgDomain; without one, every label but the last)
// equals one of tokens, ignoring ASCII case. Tokens inside the organizational
// domain itself do not count: "cable-isp.example" is the name of the provider,
// not of a pool. A nil or empty tokens turns the token rule off; callers who
// want the defaults pass DefaultGenericTokens().
//
// name may carry a trailing dot and any case. An invalid ip leaves only the
// token rule; a zone on ip is ignored.
func IsGenericPTR(name string, ip netip.Addr, tokens []string) bool {
	name = lowerASCII(strings.TrimSuffix(name, "."))
	if name == "" {
		return false
	}
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.Is4():
		a := ip.As4()
		if ipv4DigitRuns(name, a) >= 3 {
			return true
		}
		var hex [8]byte
		putHex(hex[:], a[:])
		if strings.Contains(name, string(hex[:])) {
			return true
		}
	case ip.Is6():
		if ipv6InName(name, ip) {
			return true
		}
	}
	return genericToken(name, tokens)
}

// ipv4DigitRuns returns how many of the octets are matched by maximal digit
// runs of name, each octet and each run used at most once. Matching greedily
// is optimal here: runs match octets by equality, so any unused octet of the
// same value is as good as another.
func ipv4DigitRuns(name string, octets [4]byte) int {
	var used [4]bool
	matched := 0
	for i := 0; i < len(name); {
		if name[i] < '0' || name[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(name) && '0' <= name[j] && name[j] <= '9' {
			j++
		}
		run := strings.TrimLeft(name[i:j], "0")
		i = j
		if len(run) > 3 {
			continue // 1000 or more, no octet
		}
		v := 0
		for k := 0; k < len(run); k++ {
			v = v*10 + int(run[k]-'0')
		}
		for k, o := range octets {
			if !used[k] && int(o) == v {
				used[k] = true
				matched++
				break
			}
		}
		if matched == len(octets) {
			break
		}
	}
	return matched
}

// ipv6InName reports whether name holds ip (IPv6, not mapped) in one of the
// forms listed at IsGenericPTR.
func ipv6InName(name string, ip netip.Addr) bool {
	a := ip.As16()
	var hex [32]byte
	putHex(hex[:], a[:])
	if strings.Contains(name, string(hex[16:])) {
		return true
	}

	forms := make([]string, 0, 5)
	forms = append(forms, strings.ReplaceAll(ip.String(), ":", "-"))
	var unpadded, padded strings.Builder
	for g := 0; g < 8; g++ {
		if g > 0 {
			unpadded.WriteByte('-')
			padded.WriteByte('-')
		}
		group := hex[4*g : 4*g+4]
		padded.Write(group)
		if digits := strings.TrimLeft(string(group), "0"); digits != "" {
			unpadded.WriteString(digits)
		} else {
			unpadded.WriteByte('0')
		}
	}
	forms = append(forms, unpadded.String(), padded.String())

	var fwd, rev [63]byte
	for i := range 32 {
		fwd[2*i] = hex[i]
		rev[2*i] = hex[31-i]
		if i < 31 {
			fwd[2*i+1] = '.'
			rev[2*i+1] = '.'
		}
	}
	forms = append(forms, string(fwd[:]), string(rev[:]))

	for _, f := range forms {
		if strings.Contains(name, f) {
			return true
		}
	}
	return false
}

// putHex writes b as lowercase hex digits into dst, which holds 2*len(b) bytes.
func putHex(dst, b []byte) {
	const digits = "0123456789abcdef"
	for i, c := range b {
		dst[2*i] = digits[c>>4]
		dst[2*i+1] = digits[c&0xf]
	}
}

// genericToken applies the token rule of IsGenericPTR to name, lowercased and
// without trailing dot.
func genericToken(name string, tokens []string) bool {
	if len(tokens) == 0 {
		return false
	}
	var left string
	if org, ok := OrgDomain(name); ok {
		left = strings.TrimSuffix(strings.TrimSuffix(name, org), ".")
	} else if i := strings.LastIndexByte(name, '.'); i >= 0 {
		left = name[:i]
	}
	for left != "" {
		var label string
		label, left, _ = strings.Cut(left, ".")
		if isToken(label, tokens) {
			return true
		}
		if !strings.Contains(label, "-") {
			continue
		}
		for part := range strings.SplitSeq(label, "-") {
			if isToken(part, tokens) {
				return true
			}
		}
	}
	return false
}

// isToken reports whether s (lowercase) equals one of tokens, ignoring ASCII
// case. An empty s never matches, so that an empty token in a configured list
// cannot match the empty part between two dashes.
func isToken(s string, tokens []string) bool {
	if s == "" {
		return false
	}
	for _, t := range tokens {
		if equalFoldASCII(t, s) {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether a and b are equal ignoring ASCII case.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
