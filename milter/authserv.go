package milter

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Incoming Authentication-Results that claim our authserv-id are forgeries:
// only we speak for it, and filters behind us (DMARC, spam scoring, the
// mailbox) trust what it says. A forged header we keep is a forged pass, while
// removing a header that only looks like ours costs nothing, since no honest
// server uses a name that differs from ours only in spelling. So a value is
// ours when any plausible reading of it names us:
//
//   - the RFC 8601 section 2.2 reading: authserv-id [CFWS authres-version],
//     where the authserv-id is a value (RFC 2045 token or quoted-string, the
//     latter with quoted-pairs and folding) and CFWS around it is white space,
//     folding and comments (nested, with quoted-pairs);
//   - a loose reading, for values that do not parse or that a careless parser
//     reads otherwise: past white space (any, Unicode included), comments and
//     one opening quote, the run of token characters, with comments inside it
//     dropped and quoted-pairs standing for what they quote
//     ("mx.exa(x)mple/2" reads "mx.example").
//
// The id read is compared with ours without regard to case (Unicode simple
// folding, as strings.EqualFold: a filter that folds Unicode would trust it)
// and with white space around it and trailing dots removed: "mx.example." is
// the absolute form of the same host name, and a filter that compares names
// loosely would trust it.

// claimsAuthservID reports whether the Authentication-Results value v speaks
// for the authserv-id ours.
func claimsAuthservID(v, ours string) bool {
	if id, _ := parseAuthservID(v); sameAuthservID(id, ours) {
		return true
	}
	return sameAuthservID(looseAuthservID(v), ours)
}

// sameAuthservID reports whether two authserv-ids name the same service; an
// empty id names none.
func sameAuthservID(a, b string) bool {
	a, b = trimAuthservID(a), trimAuthservID(b)
	return a != "" && strings.EqualFold(a, b)
}

// trimAuthservID removes white space around an id and trailing dots (with
// white space between them, as a quoted-string may hold).
func trimAuthservID(s string) string {
	s = strings.TrimLeftFunc(s, isLooseSpace)
	return strings.TrimRightFunc(s, func(r rune) bool { return r == '.' || isLooseSpace(r) })
}

// parseAuthservID reads the authserv-id of an Authentication-Results value as
// RFC 8601 section 2.2 defines it. id is "" when no token or quoted-string
// comes first; ok reports whether the value, up to its first ";" outside
// comments and quotes, follows the grammar: [CFWS] authserv-id
// [CFWS authres-version] [CFWS] ";". An id is returned even when what follows
// it is wrong, since it is what the value claims to be.
//
// Header values reach a milter folded with CRLF or bare LF (MTAs differ), so
// CR and LF count as folding white space wherever white space may be.
func parseAuthservID(v string) (id string, ok bool) {
	i, ok := skipCFWS(v, 0)
	if !ok || i == len(v) {
		return "", false
	}
	id, i, ok = readValue(v, i)
	if !ok {
		return id, false
	}
	j, ok := skipCFWS(v, i)
	if !ok {
		return id, false
	}
	if j > i && j < len(v) && isDigit(v[j]) { // authres-version needs CFWS before it
		for j < len(v) && isDigit(v[j]) {
			j++
		}
		if j, ok = skipCFWS(v, j); !ok {
			return id, false
		}
	}
	return id, j < len(v) && v[j] == ';'
}

// looseAuthservID is the loose reading described at the top of this file.
func looseAuthservID(v string) string {
	i, quoted := 0, false
skip:
	for i < len(v) {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case isLooseSpace(r):
			i += size
		case r == '(':
			end, ok := skipComment(v, i)
			if !ok {
				return "" // the rest is one unterminated comment
			}
			i = end
		case r == '"' && !quoted:
			i, quoted = i+1, true
		default:
			break skip
		}
	}
	var b strings.Builder
	for i < len(v) {
		c := v[i]
		switch {
		case isTokenChar(c):
			b.WriteByte(c)
			i++
		case c == '(':
			end, ok := skipComment(v, i)
			if !ok {
				return b.String()
			}
			i = end
		case c == '\\' && i+1 < len(v) && isTokenChar(v[i+1]):
			b.WriteByte(v[i+1])
			i += 2
		default:
			return b.String()
		}
	}
	return b.String()
}

// skipCFWS returns the position after the CFWS (RFC 5322 section 3.2.2) that
// starts at i, which may be none; ok is false when a comment does not end.
func skipCFWS(s string, i int) (int, bool) {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			i++
		case '(':
			end, ok := skipComment(s, i)
			if !ok {
				return i, false
			}
			i = end
		default:
			return i, true
		}
	}
	return i, true
}

// skipComment returns the position after the comment that starts at s[i]
// ("("): comments nest, and a backslash quotes the next byte, parenthesis or
// not. ok is false when the comment does not end.
func skipComment(s string, i int) (int, bool) {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // the quoted byte, whatever it is
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
	}
	return len(s), false
}

// readValue reads an RFC 2045 value at s[i]: a token or a quoted-string.
func readValue(s string, i int) (v string, next int, ok bool) {
	if i < len(s) && s[i] == '"' {
		return readQuoted(s, i)
	}
	j := i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	return s[i:j], j, j > i
}

// readQuoted reads the RFC 5322 quoted-string at s[i] (`"`) and returns its
// content: quoted-pairs stand for the byte they quote, and folding inside is
// unfolded (CR and LF dropped, the white space after them kept). ok is false
// when the closing quote is missing; v is then what was read.
func readQuoted(s string, i int) (v string, next int, ok bool) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 == len(s) {
				return b.String(), len(s), false
			}
			i++
			b.WriteByte(s[i])
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), len(s), false
}

// isTokenChar reports whether c may appear in an RFC 2045 token: US-ASCII
// but not SPACE, CTLs or tspecials.
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isLooseSpace is white space in the loose reading: every ASCII control and
// SPACE, and Unicode white space (a parser in a language whose trim knows
// U+00A0 would skip it).
func isLooseSpace(r rune) bool {
	return r <= ' ' || r == 0x7f || unicode.IsSpace(r)
}
