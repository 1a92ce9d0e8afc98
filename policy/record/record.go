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
	"encoding/base64"
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
