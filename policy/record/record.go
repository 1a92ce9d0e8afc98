// Package record is heloguard's decision record: the one JSON line written per
// decision (the milter's decision log, `check --json`), read back by `replay`
// and the tests. It is the single definition of that line; its evidence object
// is derived from policy's table of evidence fields.
//
// Strings that come from the client or from DNS (HELO, host and PTR names, the
// queue id) survive a round trip exactly: valid UTF-8 is a JSON string (control
// bytes escaped), anything else is an object {"base64": "…"} holding the raw
// bytes, since JSON strings cannot hold bytes that are not UTF-8.
package record

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
)

// Version is the format version written in every record ("v"). Records
// without one were written before the format was versioned (version 0); they
// decode the same, with the evidence fields of their time.
const Version = 1

// Msg is the "msg" of every decision line: it tells decision records from the
// operational lines that may share the stream.
const Msg = "decision"

// Modes of a record.
const (
	ModeEnforce     = "enforce"      // the daemon enforces refusals
	ModeMonitor     = "monitor"      // mode: monitor, nothing refused
	ModeMonitorRule = "monitor-rule" // the rule that decided is log-only
)

// Record is one decision as logged.
type Record struct {
	V              int // format version; Version when written by this code
	Time           time.Time
	QueueID        string // the MTA's queue id, once known
	ClientIP       netip.Addr
	ClientPort     int
	ClientHost     string // the MTA's name for the client ("[192.0.2.1]" when it has none)
	Helo           string // as the client sent it ("" = none)
	Rule           string
	Action         policy.Action
	Reply          string // as sent to the client; "" for accepting actions
	Mode           string // ModeEnforce, ModeMonitor or ModeMonitorRule
	Stage          string // where a refusal went out; "" if it did not
	DecidedAt      string // "connect" when decided from reverse DNS alone, before the HELO
	Exemption      string // why a refusal was not delivered: "recipient postmaster", "authenticated", "monitor"
	Trusted        bool   // decided by trusted_networks: no evidence
	EvidenceCached bool   // the evidence cache answered: no DNS
	Evidence       policy.Evidence
	DurationMS     float64
	DNSLookups     int64
	DNSCacheHits   int64
	// DNSFailures are the lookups that failed (not NXDOMAIN or NODATA), the
	// first dnscache.MaxFailures, one per name and type: why a result is
	// temperror. Nil when none did (or the line predates the field).
	DNSFailures []dnscache.Failure

	// Missing lists the evidence fields the line did not have (a record
	// written before they existed). Set by decoding; never written.
	Missing []string
}

// FromDecision fills the fields a policy.Decision gives.
func FromDecision(d policy.Decision, ip netip.Addr) Record {
	return Record{
		V: Version, ClientIP: ip.Unmap(), Helo: d.Helo.Raw, Rule: d.Rule, Action: d.Action, Reply: d.Reply.String(),
		Trusted: d.Trusted, EvidenceCached: d.Cached, Evidence: d.Evidence,
		DurationMS: float64(d.Duration.Microseconds()) / 1000,
	}
}

// AppendJSON appends the record as one JSON object (no newline). The field
// order is fixed: time, level and msg first, as log readers expect.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":`...)
	b = appendString(b, r.Time.Format(time.RFC3339Nano))
	b = append(b, `,"level":"INFO","msg":"decision","v":`...)
	b = strconv.AppendInt(b, int64(r.V), 10)
	b = appendKey(b, "queue_id")
	b = appendText(b, r.QueueID)
	b = appendKey(b, "client_ip")
	if r.ClientIP.IsValid() {
		b = appendString(b, r.ClientIP.String())
	} else {
		b = append(b, `""`...)
	}
	b = appendKey(b, "client_port")
	b = strconv.AppendInt(b, int64(r.ClientPort), 10)
	b = appendKey(b, "client_host")
	b = appendText(b, r.ClientHost)
	b = appendKey(b, "helo")
	b = appendText(b, r.Helo)
	for _, kv := range [...]struct{ k, v string }{
		{"rule", r.Rule}, {"action", string(r.Action)}, {"reply", r.Reply}, {"mode", r.Mode},
		{"stage", r.Stage}, {"decided_at", r.DecidedAt}, {"exemption", r.Exemption},
	} {
		b = appendKey(b, kv.k)
		b = appendText(b, kv.v)
	}
	b = appendKey(b, "trusted")
	b = strconv.AppendBool(b, r.Trusted)
	b = appendKey(b, "evidence_cached")
	b = strconv.AppendBool(b, r.EvidenceCached)
	b = appendKey(b, "evidence")
	b = AppendEvidence(b, &r.Evidence)
	b = appendKey(b, "duration_ms")
	b = strconv.AppendFloat(b, r.DurationMS, 'f', -1, 64)
	b = appendKey(b, "dns_lookups")
	b = strconv.AppendInt(b, r.DNSLookups, 10)
	b = appendKey(b, "dns_cache_hits")
	b = strconv.AppendInt(b, r.DNSCacheHits, 10)
	b = appendKey(b, "dns_failures")
	b = AppendFailures(b, r.DNSFailures)
	return append(b, '}')
}

// AppendFailures appends failed lookups as a JSON list of objects with the
// keys name, type, cause, server and cached.
func AppendFailures(b []byte, fs []dnscache.Failure) []byte {
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendText(b, f.Name)
		b = appendKey(b, "type")
		b = appendText(b, f.Type)
		b = appendKey(b, "cause")
		b = appendText(b, string(f.Cause))
		b = appendKey(b, "server")
		b = appendText(b, f.Server)
		b = appendKey(b, "cached")
		b = strconv.AppendBool(b, f.Cached)
		b = append(b, '}')
	}
	return append(b, ']')
}

// MarshalJSON is AppendJSON for encoding/json.
func (r Record) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// AppendEvidence appends the evidence as a JSON object whose keys are the
// field names of policy's table, in its order.
func AppendEvidence(b []byte, e *policy.Evidence) []byte {
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.Name)
		b = append(b, ':')
		switch v := f.Ref(e).(type) {
		case *string:
			b = appendText(b, *v)
		case *bool:
			b = strconv.AppendBool(b, *v)
		case *[]string:
			b = append(b, '[')
			for j, s := range *v {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendText(b, s)
			}
			b = append(b, ']')
		}
	}
	return append(b, '}')
}

// fields is policy's table of evidence fields, read once: it never changes.
var fields = policy.Fields()

// ErrNotDecision is returned by Parse for a JSON line that is not a decision
// record (another log line on the same stream).
var ErrNotDecision = errors.New("not a decision record")

// wire is the JSON shape of a record for decoding.
type wire struct {
	Time           time.Time       `json:"time"`
	Msg            string          `json:"msg"`
	V              int             `json:"v"`
	QueueID        Text            `json:"queue_id"`
	ClientIP       string          `json:"client_ip"`
	ClientPort     int             `json:"client_port"`
	ClientHost     Text            `json:"client_host"`
	Helo           Text            `json:"helo"`
	Rule           Text            `json:"rule"`
	Action         Text            `json:"action"`
	Reply          Text            `json:"reply"`
	Mode           Text            `json:"mode"`
	Stage          Text            `json:"stage"`
	DecidedAt      Text            `json:"decided_at"`
	Exemption      Text            `json:"exemption"`
	Trusted        bool            `json:"trusted"`
	EvidenceCached bool            `json:"evidence_cached"`
	Evidence       json.RawMessage `json:"evidence"`
	DurationMS     float64         `json:"duration_ms"`
	DNSLookups     int64           `json:"dns_lookups"`
	DNSCacheHits   int64           `json:"dns_cache_hits"`
	DNSFailures    []failureWire   `json:"dns_failures"`
}

// failureWire is the JSON shape of one failed lookup.
type failureWire struct {
	Name   Text           `json:"name"`
	Type   Text           `json:"type"`
	Cause  dnscache.Cause `json:"cause"`
	Server Text           `json:"server"`
	Cached bool           `json:"cached"`
}

// Parse decodes one decision line. A JSON object whose msg is not "decision"
// gives ErrNotDecision; a newer format version than this code knows is an
// error, since its fields may mean other things.
func Parse(line []byte) (Record, error) {
	var r Record
	err := json.Unmarshal(line, &r)
	return r, err
}

// UnmarshalJSON decodes a record; see Parse.
func (r *Record) UnmarshalJSON(data []byte) error {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if w.Msg != Msg {
		return ErrNotDecision
	}
	if w.V > Version {
		return fmt.Errorf("decision record version %d is newer than this heloguard reads (%d)", w.V, Version)
	}
	*r = Record{
		V: w.V, Time: w.Time, QueueID: string(w.QueueID), ClientPort: w.ClientPort,
		ClientHost: string(w.ClientHost), Helo: string(w.Helo), Rule: string(w.Rule),
		Action: policy.Action(w.Action), Reply: string(w.Reply), Mode: string(w.Mode),
		Stage: string(w.Stage), DecidedAt: string(w.DecidedAt), Exemption: string(w.Exemption),
		Trusted: w.Trusted, EvidenceCached: w.EvidenceCached,
		DurationMS: w.DurationMS, DNSLookups: w.DNSLookups, DNSCacheHits: w.DNSCacheHits,
	}
	for _, f := range w.DNSFailures {
		r.DNSFailures = append(r.DNSFailures, dnscache.Failure{
			Name: string(f.Name), Type: string(f.Type), Cause: f.Cause, Server: string(f.Server), Cached: f.Cached})
	}
	if w.ClientIP != "" {
		ip, err := netip.ParseAddr(w.ClientIP)
		if err != nil {
			return fmt.Errorf("client_ip: %v", err)
		}
		r.ClientIP = ip
	}
	if len(w.Evidence) > 0 && !bytes.Equal(w.Evidence, []byte("null")) {
		missing, err := DecodeEvidence(w.Evidence, &r.Evidence)
		if err != nil {
			return err
		}
		r.Missing = missing
	}
	return nil
}

// DecodeEvidence decodes an evidence object into e and returns the names of the
// fields it did not hold. Keys it does not know are ignored.
func DecodeEvidence(data []byte, e *policy.Evidence) (missing []string, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("evidence: %v", err)
	}
	for _, f := range fields {
		raw, ok := m[f.Name]
		if !ok {
			missing = append(missing, f.Name)
			continue
		}
		switch v := f.Ref(e).(type) {
		case *string:
			var t Text
			err = json.Unmarshal(raw, &t)
			*v = string(t)
		case *bool:
			err = json.Unmarshal(raw, v)
		case *[]string:
			var l []Text
			err = json.Unmarshal(raw, &l)
			*v = make([]string, len(l))
			for i, t := range l {
				(*v)[i] = string(t)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("evidence %s: %v", f.Name, err)
		}
	}
	return missing, nil
}

// Text is a string that decodes from either form appendText writes.
type Text string

// UnmarshalJSON accepts a JSON string or {"base64": "…"}.
func (t *Text) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '{' {
		var o struct {
			Base64 *string `json:"base64"`
		}
		if err := json.Unmarshal(data, &o); err != nil || o.Base64 == nil {
			return fmt.Errorf("expected a string or {\"base64\": ...}, not %s", data)
		}
		raw, err := base64.StdEncoding.DecodeString(*o.Base64)
		if err != nil {
			return err
		}
		*t = Text(raw)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	*t = Text(s)
	return nil
}

func appendKey(b []byte, k string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

// appendText writes s exactly: a JSON string if it is valid UTF-8, else an
// object with its bytes in base64.
func appendText(b []byte, s string) []byte {
	if utf8.ValidString(s) {
		return appendString(b, s)
	}
	b = append(b, `{"base64":"`...)
	b = base64.StdEncoding.AppendEncode(b, []byte(s))
	return append(b, `"}`...)
}

const hex = "0123456789abcdef"

// appendString writes valid UTF-8 s as a JSON string: quote, backslash and
// control bytes escaped, and U+2028/U+2029, which some JSON readers choke on.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != '\u2028' && r != '\u2029' {
				i += n
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
			i += n
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
