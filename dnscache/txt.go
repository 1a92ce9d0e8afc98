package dnscache

import "strings"

// unescapeTXT turns a character-string in miekg/dns presentation form (\" \\
// and \DDD escapes) back into its raw bytes.
func unescapeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0'); v <= 255 {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		i++
		b = append(b, s[i])
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// joinTXT returns the character-strings of one TXT record unescaped and joined
// with no separator (RFC 7208 section 3.3).
func joinTXT(parts []string) string {
	if len(parts) == 1 {
		return unescapeTXT(parts[0])
	}
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(unescapeTXT(p))
	}
	return sb.String()
}
