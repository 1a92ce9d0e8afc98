package record

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
)

// The decoder is written by hand: replay reads millions of lines, and
// encoding/json, with a custom decoder for each text field, read about 20k
// lines a second. It accepts any valid JSON object (unknown keys of any type
// are skipped), and decodes the values of known keys exactly as AppendJSON
// writes them.

// ErrNotDecision is returned by Parse for a JSON line that is not a decision
// record (another log line on the same stream).
var ErrNotDecision = errors.New("not a decision record")

// Parse decodes one decision line. A JSON object whose msg is not "decision"
// gives ErrNotDecision; a newer format version than this code knows is an
// error, since its fields may mean other things.
func Parse(line []byte) (Record, error) {
	var r Record
	err := r.UnmarshalJSON(line)
	return r, err
}

// UnmarshalJSON decodes a record; see Parse.
func (r *Record) UnmarshalJSON(data []byte) error {
	*r = Record{}
	d := &decoder{b: data}
	var msg, ip, ts string
	var sawEvidence bool
	err := d.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "msg":
			msg, err = d.str()
		case "v":
			var n int64
			n, err = d.integer()
			r.V = int(n)
		case "time":
			ts, err = d.str()
		case "queue_id":
			r.QueueID, err = d.text()
		case "client_ip":
			ip, err = d.str()
		case "client_port":
			var n int64
			n, err = d.integer()
			r.ClientPort = int(n)
		case "client_host":
			r.ClientHost, err = d.text()
		case "helo":
			r.Helo, err = d.text()
		case "rule":
			r.Rule, err = d.text()
		case "action":
			var s string
			s, err = d.text()
			r.Action = policy.Action(s)
		case "reply":
			r.Reply, err = d.text()
		case "mode":
			r.Mode, err = d.text()
		case "stage":
			r.Stage, err = d.text()
		case "decided_at":
			r.DecidedAt, err = d.text()
		case "exemption":
			r.Exemption, err = d.text()
		case "trusted":
			r.Trusted, err = d.boolean()
		case "evidence_cached":
			r.EvidenceCached, err = d.boolean()
		case "duration_ms":
			r.DurationMS, err = d.number()
		case "dns_lookups":
			r.DNSLookups, err = d.integer()
		case "dns_cache_hits":
			r.DNSCacheHits, err = d.integer()
		case "dns_failures":
			if d.null() {
				return nil
			}
			err = d.array(func() error {
				var f dnscache.Failure
				err := d.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "name":
						f.Name, err = d.text()
					case "type":
						f.Type, err = d.text()
					case "cause":
						var c string
						c, err = d.text()
						f.Cause = dnscache.Cause(c)
					case "server":
						f.Server, err = d.text()
					case "cached":
						f.Cached, err = d.boolean()
					default:
						err = d.skip()
					}
					return err
				})
				r.DNSFailures = append(r.DNSFailures, f)
				return err
			})
		case "evidence":
			if d.null() {
				return nil
			}
			sawEvidence = true
			r.Missing, err = d.evidence(&r.Evidence)
		default:
			err = d.skip()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", string(key), err)
		}
		return nil
	})
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return err
	}
	if msg != Msg {
		return ErrNotDecision
	}
	if r.V > Version {
		return fmt.Errorf("decision record version %d is newer than this heloguard reads (%d)", r.V, Version)
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return fmt.Errorf("time: %v", err)
		}
		r.Time = t
	}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("client_ip: %v", err)
		}
		r.ClientIP = a
	}
	if !sawEvidence {
		r.Missing = nil
	}
	return nil
}

// evidence decodes an evidence object into e and returns the names of the
// fields it did not hold. Keys it does not know are skipped.
func (d *decoder) evidence(e *policy.Evidence) (missing []string, err error) {
	var seenArr [64]bool
	seen := seenArr[:len(fields)] // the table has far fewer fields; a test would panic first
	err = d.object(func(key []byte) error {
		for i := range fields {
			f := &fields[i]
			if f.Name != string(key) {
				continue
			}
			seen[i] = true
			var err error
			switch p := f.Ref(e).(type) {
			case *string:
				*p, err = d.text()
			case *bool:
				*p, err = d.boolean()
			case *[]string:
				*p = []string{}
				err = d.array(func() error {
					s, err := d.text()
					*p = append(*p, s)
					return err
				})
			}
			if err != nil {
				return fmt.Errorf("evidence %s: %w", string(key), err)
			}
			return nil
		}
		return d.skip()
	})
	for i := range fields {
		if !seen[i] {
			missing = append(missing, fields[i].Name)
		}
	}
	return missing, err
}

// decoder reads one JSON value from b.
type decoder struct {
	b []byte
	i int
}

var errSyntax = errors.New("not valid JSON")

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) end() error {
	if d.ws(); d.i != len(d.b) {
		return errSyntax
	}
	return nil
}

func (d *decoder) lit(s string) bool {
	if d.peek() != s[0] || len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

func (d *decoder) null() bool { return d.lit("null") }

func (d *decoder) boolean() (bool, error) {
	switch {
	case d.lit("true"):
		return true, nil
	case d.lit("false"):
		return false, nil
	}
	return false, errors.New("want true or false")
}

// object calls fn for each key, with the decoder at its value; fn must consume
// the value. key is valid only during the call (no allocation for it).
func (d *decoder) object(fn func(key []byte) error) error {
	if d.peek() != '{' {
		return errors.New("want an object")
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		k, err := d.key()
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return errSyntax
		}
		d.i++
		if err := fn(k); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return errSyntax
		}
	}
}

func (d *decoder) array(fn func() error) error {
	if d.peek() != '[' {
		return errors.New("want a list")
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// text is a string, or {"base64": "…"} for bytes that are not UTF-8.
func (d *decoder) text() (string, error) {
	if d.peek() != '{' {
		return d.str()
	}
	var raw []byte
	found := false
	err := d.object(func(key []byte) error {
		if string(key) != "base64" {
			return d.skip()
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		raw, err = base64.StdEncoding.DecodeString(s)
		found = true
		return err
	})
	if err == nil && !found {
		err = errors.New(`want a string or {"base64": ...}`)
	}
	return string(raw), err
}

// key is an object's key: the bytes themselves when it has no escapes (the
// keys heloguard writes), a decoded copy otherwise.
func (d *decoder) key() ([]byte, error) {
	if d.peek() != '"' {
		return nil, errors.New("want a string")
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], nil
		case c == '\\' || c < 0x20:
			s, err := d.str()
			return []byte(s), err
		}
	}
	return nil, errSyntax
}

// str decodes a JSON string.
func (d *decoder) str() (string, error) {
	if d.peek() != '"' {
		return "", errors.New("want a string")
	}
	d.i++
	start := d.i
	// The common case: no escapes, valid UTF-8.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := d.b[start:d.i]
			d.i++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return string([]rune(string(s))), nil // as encoding/json: U+FFFD for bad bytes
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.i++
	}
	buf := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(buf) {
				return string([]rune(string(buf))), nil
			}
			return string(buf), nil
		case c < 0x20:
			return "", errSyntax
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", errSyntax
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", errSyntax
			}
			if utf16.IsSurrogate(r) {
				r2 := unicode_replacement
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if lo, ok := d.hex4(); ok {
						if dec := utf16.DecodeRune(r, lo); dec != unicode_replacement {
							r2 = dec
						} else {
							d.i = save
						}
					} else {
						return "", errSyntax
					}
				}
				r = r2
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errSyntax
		}
	}
	return "", errSyntax
}

const unicode_replacement = '\uFFFD'

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(v), true
}

// numberText is the text of a JSON number.
func (d *decoder) numberText() (string, error) {
	d.ws()
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	if d.i == start {
		return "", errors.New("want a number")
	}
	return string(d.b[start:d.i]), nil
}

func (d *decoder) number() (float64, error) {
	s, err := d.numberText()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

func (d *decoder) integer() (int64, error) {
	s, err := d.numberText()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// skip consumes any value.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func([]byte) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		_, err := d.str()
		return err
	case d.lit("true"), d.lit("false"), d.null():
		return nil
	default:
		_, err := d.number()
		return err
	}
}
