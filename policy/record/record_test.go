package record_test

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// full is a record with every field set to something other than its zero
// value, evidence included.
func full() record.Record {
	return record.Record{
		V: record.Version, Time: time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC),
		QueueID: "4XyZ1f2kQ3z", ClientIP: netip.MustParseAddr("2001:db8::66"), ClientPort: 40000,
		ClientHost: "[IPv6:2001:db8::66]", Helo: "NAM02-BL2-obe.outbound.protection.outlook.com",
		Rule: "helo-spf-fail", Action: policy.ActionReject, Reply: "550 5.7.23 SPF of HELO … (PTR x)",
		Mode: record.ModeMonitorRule, Stage: "rcpt", DecidedAt: "connect", Exemption: "recipient postmaster",
		Trusted: true, EvidenceCached: true, DurationMS: 2.125, DNSLookups: 9, DNSCacheHits: 4,
		Evidence: policy.Evidence{
			IPRev: policy.IPRevPass, PTR: []string{"vps66.cheap-hosting.example", "other.example"},
			PTRConfirmed: []string{"vps66.cheap-hosting.example"}, PTRGeneric: true, PTRSPF: policy.SPFSoftFail,
			HeloForm: policy.HeloFQDN, HeloMatchesPTR: true, HeloAMatchesIP: true, HeloATempError: true, HeloLiteralMatchesIP: true,
			HeloAligned: true, SPFHelo: policy.SPFFail, HeloIsLocal: true,
		},
		DNSFailures: []dnscache.Failure{
			{Name: "66.2.0.192.in-addr.arpa", Type: "PTR", Cause: dnscache.CauseServFail, Server: "127.0.0.1:53"},
			{Name: "nam02-bl2-obe.outbound.protection.outlook.com", Type: "TXT", Cause: dnscache.CauseTimeout, Server: "[::1]:53", Cached: true},
			{Name: "x.example", Type: "A", Cause: dnscache.CauseTimeout}, // the decision's budget ran out: no server
		},
	}
}

func roundTrip(t *testing.T, r record.Record) record.Record {
	t.Helper()
	line := r.AppendJSON(nil)
	if !json.Valid(line) {
		t.Fatalf("not JSON: %s", line)
	}
	if strings.ContainsAny(string(line), "\n\r") {
		t.Fatalf("a record must be one line: %q", line)
	}
	back, err := record.Parse(line)
	if err != nil {
		t.Fatalf("Parse(%s): %v", line, err)
	}
	return back
}

func TestRoundTripEveryField(t *testing.T) {
	r := full()
	back := roundTrip(t, r)
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip changed the record:\n got %+v\nwant %+v", back, r)
	}
	// Each evidence field on its own, so a field the JSON forgets shows up
	// even when its zero value would hide it in the full record.
	for _, f := range policy.Fields() {
		var r record.Record
		r.V = record.Version
		switch p := f.Ref(&r.Evidence).(type) {
		case *string:
			*p = f.Values[len(f.Values)-1]
		case *bool:
			*p = true
		case *[]string:
			*p = []string{"a.example"}
		}
		back := roundTrip(t, r)
		if got, want := f.String(&back.Evidence), f.String(&r.Evidence); got != want {
			t.Errorf("evidence %s: %q after the round trip, want %q", f.Name, got, want)
		}
		if len(back.Missing) > 0 {
			t.Errorf("evidence %s: decoded with missing fields %v", f.Name, back.Missing)
		}
	}
}

// Client and DNS text holds whatever bytes the peer sent; they must come back
// exactly, not as U+FFFD.
func TestRoundTripRawBytes(t *testing.T) {
	for _, s := range []string{
		"bad\xffutf8.example",
		"\x00nul\x01ctl\x7f.example",
		"quote\"back\\slash",
		"line\r\nbreak\ttab",
		"\xe2\x80\xa8separator\xe2\x80\xa9",
		"caf\xc3\xa9.example",
		"\xc3", // a cut multi-byte sequence
		"",
	} {
		r := full()
		r.Helo, r.ClientHost, r.QueueID = s, s, s
		r.Evidence.PTR = []string{s, "ok.example"}
		r.Evidence.PTRConfirmed = []string{s}
		r.DNSFailures[0].Name = s
		back := roundTrip(t, r)
		if back.Helo != s || back.ClientHost != s || back.QueueID != s ||
			!reflect.DeepEqual(back.Evidence.PTR, r.Evidence.PTR) || !reflect.DeepEqual(back.Evidence.PTRConfirmed, r.Evidence.PTRConfirmed) ||
			back.DNSFailures[0].Name != s {
			t.Errorf("%q: got helo %q host %q queue %q ptr %q confirmed %q failed name %q", s, back.Helo, back.ClientHost, back.QueueID, back.Evidence.PTR, back.Evidence.PTRConfirmed, back.DNSFailures[0].Name)
		}
	}
}

// encoding/json reads what AppendJSON writes with the same meaning: the
// evidence object's keys are the table's names.
func TestEvidenceKeysAreTheTable(t *testing.T) {
	r := full()
	var m map[string]any
	if err := json.Unmarshal(r.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	ev, _ := m["evidence"].(map[string]any)
	var names []string
	for _, f := range policy.Fields() {
		names = append(names, f.Name)
		if _, ok := ev[f.Name]; !ok {
			t.Errorf("evidence lacks %s", f.Name)
		}
	}
	if len(ev) != len(names) {
		t.Errorf("evidence has %d keys, the table %d: %v", len(ev), len(names), ev)
	}
	if m["msg"] != record.Msg || m["v"] != float64(record.Version) || m["client_ip"] != "2001:db8::66" {
		t.Errorf("header fields: %v", m)
	}
}

// dns_failures: every cause, any name, and none at all, come back as written.
func TestRoundTripDNSFailures(t *testing.T) {
	var all []dnscache.Failure
	for i, c := range dnscache.Causes() {
		all = append(all, dnscache.Failure{Name: "n" + string(rune('a'+i)) + ".example", Type: "AAAA", Cause: c, Server: "192.0.2.53:53", Cached: i%2 == 0})
	}
	for _, fs := range [][]dnscache.Failure{
		nil,
		all,
		{{Name: "bad\xffname\x00.example", Type: "TYPE65280", Cause: dnscache.CauseMalformed, Server: "127.0.0.1:5353"}},
		{{Name: ".", Type: "MX", Cause: dnscache.CauseCNAMELoop}},
	} {
		r := full()
		r.DNSFailures = fs
		back := roundTrip(t, r)
		if !reflect.DeepEqual(back.DNSFailures, fs) {
			t.Errorf("dns_failures %+v after the round trip, want %+v", back.DNSFailures, fs)
		}
	}
	// The keys, as encoding/json reads them.
	var m struct {
		DNSFailures []map[string]any `json:"dns_failures"`
	}
	r := full()
	if err := json.Unmarshal(r.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "66.2.0.192.in-addr.arpa", "type": "PTR", "cause": "servfail", "server": "127.0.0.1:53", "cached": false}
	if len(m.DNSFailures) != 3 || !reflect.DeepEqual(m.DNSFailures[0], want) {
		t.Errorf("dns_failures %v, want first %v", m.DNSFailures, want)
	}
	// No failures is an empty list, not null.
	r.DNSFailures = nil
	if line := string(r.AppendJSON(nil)); !strings.Contains(line, `"dns_failures":[]}`) {
		t.Errorf("no failures: %s", line)
	}
}

func TestOldRecordsSayWhatTheyLack(t *testing.T) {
	// A line as heloguard wrote it before the format had a version, ptr_spf
	// or helo_a_temperror.
	old := `{"time":"2026-11-22T10:00:00Z","level":"INFO","msg":"decision","queue_id":"","client_ip":"192.0.2.66","client_port":40000,"client_host":"[192.0.2.66]","helo":"x.example","ptr":["vps66.cheap-hosting.example"],"rule":"helo-spf-fail","action":"reject","reply":"550 5.7.23 x","mode":"enforce","stage":"rcpt","decided_at":"","exemption":"","trusted":false,"evidence_cached":false,"evidence":{"iprev":"pass","ptr":["vps66.cheap-hosting.example"],"ptr_confirmed":["vps66.cheap-hosting.example"],"ptr_generic":false,"helo_form":"fqdn","helo_matches_ptr":false,"helo_a_matches_ip":false,"helo_literal_matches_ip":false,"helo_aligned":false,"spf_helo":"fail","helo_is_local":false},"duration_ms":2.1,"dns_lookups":9,"dns_cache_hits":0}`
	r, err := record.Parse([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if r.V != 0 || !reflect.DeepEqual(r.Missing, []string{"ptr_spf", "helo_a_temperror"}) || r.Evidence.PTRSPF != "" || r.Evidence.SPFHelo != policy.SPFFail || r.DNSFailures != nil {
		t.Errorf("old record: v %d missing %v ptr_spf %q spf_helo %q dns_failures %v", r.V, r.Missing, r.Evidence.PTRSPF, r.Evidence.SPFHelo, r.DNSFailures)
	}
}

func TestParseRefuses(t *testing.T) {
	for line, want := range map[string]string{
		`{"time":"2026-11-22T10:00:01Z","level":"INFO","msg":"listening","addr":"127.0.0.1:8894"}`: record.ErrNotDecision.Error(),
		`not json`:                   "want an object",
		`{"msg":"decision","v":1} x`: "not valid JSON",
		"{\"msg\":\"decision\",\"v\":1,\"helo\":\"a\x01b\"}":                 "not valid JSON",
		`{"msg":"decision","v":99}`:                                          "newer",
		`{"msg":"decision","v":1,"client_ip":"300.1.1.1"}`:                   "client_ip",
		`{"msg":"decision","v":1,"helo":{"base64":"!!"}}`:                    "illegal base64",
		`{"msg":"decision","v":1,"evidence":{"ptr_generic":"x"}}`:            "ptr_generic",
		`{"msg":"decision","v":1,"dns_failures":{"name":"x"}}`:               "dns_failures",
		`{"msg":"decision","v":1,"dns_failures":[{"name":{"base64":"!!"}}]}`: "illegal base64",
		`{"msg":"decision","v":1,"dns_failures":[{"cached":"yes"}]}`:         "want true or false",
	} {
		if _, err := record.Parse([]byte(line)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", line, err, want)
		}
	}
}

func TestFromDecision(t *testing.T) {
	d := policy.Decision{Action: policy.ActionTempfail, Rule: "generic-ptr-temperror", Helo: policy.ParseHelo(" c-1.example "),
		Reply: policy.Reply{Code: 451, Enhanced: "4.7.24", Text: "later"}, Duration: 1500 * time.Microsecond, Cached: true}
	r := record.FromDecision(d, netip.MustParseAddr("::ffff:192.0.2.7"))
	if r.ClientIP.String() != "192.0.2.7" || r.Helo != " c-1.example " || r.Reply != "451 4.7.24 later" || r.DurationMS != 1.5 || !r.EvidenceCached || r.V != record.Version {
		t.Errorf("%+v", r)
	}
}

// FuzzRoundTrip: any bytes in the client's and DNS's text come back exactly.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"mail.example", "bad\xffutf8", "\x00\"\\\u2028", ""} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, helo, ptr string) {
		r := full()
		r.Helo, r.ClientHost = helo, ptr
		r.Evidence.PTR = []string{ptr}
		r.DNSFailures[0].Name = ptr
		back := roundTrip(t, r)
		if back.Helo != helo || back.ClientHost != ptr || len(back.Evidence.PTR) != 1 || back.Evidence.PTR[0] != ptr || back.DNSFailures[0].Name != ptr {
			t.Errorf("got %q %q %q %q", back.Helo, back.ClientHost, back.Evidence.PTR, back.DNSFailures[0].Name)
		}
	})
}

// FuzzParse: any line either fails to parse or is a record that writes back to
// a line that parses to the same record; nothing panics. This is what replay
// does with every line it is given.
func FuzzParse(f *testing.F) {
	r := full()
	f.Add(string(r.AppendJSON(nil)))
	f.Add(`{"msg":"decision","v":1,"helo":{"base64":"/w=="},"evidence":{"ptr":["a\u00e9\ud83d\ude00"],"x":[1,{"y":null}]}}`)
	f.Add(`{"msg":"decision","helo":"\ud800x","evidence":null}`)
	f.Add(`{"time":"2026-11-22T10:00:01Z","level":"INFO","msg":"listening"}`)
	f.Add(`{"msg":"decision","v":1,"dns_failures":[{"name":{"base64":"/w=="},"type":"A","cause":"x\u0000","server":"","cached":true,"extra":[1]},{}]}`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := record.Parse([]byte(line))
		if err != nil {
			return
		}
		back, err := record.Parse(r.AppendJSON(nil))
		if err != nil {
			t.Fatalf("a parsed record does not parse back: %v\n%s", err, r.AppendJSON(nil))
		}
		// Written again, the record is the same line (nil and empty lists both
		// write as []), and nothing is missing from it any more.
		if a, b := string(r.AppendJSON(nil)), string(back.AppendJSON(nil)); a != b || len(back.Missing) > 0 {
			t.Errorf("round trip changed the record:\n got %s\nwant %s\nmissing %v", b, a, back.Missing)
		}
	})
}

// A client the MTA gave no address for: the engine's unknown-client decision,
// with an empty client_ip, survives the round trip as it was.
func TestRoundTripUnknownClient(t *testing.T) {
	eng := policy.New(policy.Options{})
	d := eng.DecideUnknownClient("NAM02-BL2-obe.outbound.protection.outlook.com")
	r := record.FromDecision(d, netip.Addr{})
	r.Time, r.ClientHost, r.Mode, r.Stage = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), "unknown", record.ModeEnforce, "rcpt"
	line := r.AppendJSON(nil)
	if !strings.Contains(string(line), `"client_ip":""`) || !strings.Contains(string(line), `"rule":"unknown-client"`) {
		t.Errorf("record %s", line)
	}
	back := roundTrip(t, r)
	r.Evidence.PTR, r.Evidence.PTRConfirmed = []string{}, []string{} // none is written as []
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip changed the record:\n got %+v\nwant %+v", back, r)
	}
	if back.ClientIP.IsValid() || back.Rule != policy.RuleUnknownClient || back.Action != policy.ActionTempfail ||
		back.Reply != "451 4.7.1 client address unknown to the MTA; try again later" || back.Evidence.HeloForm != policy.HeloFQDN {
		t.Errorf("%+v", back)
	}
}
