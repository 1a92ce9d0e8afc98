package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// conformanceDir holds the RFC 7208 and pyspf SPF test suites with their
// licences (see its README.md).
const conformanceDir = "testdata/conformance"

// TestSPFConformance runs the RFC 7208 and pyspf suites over real DNS: each
// scenario's zonedata is served by dnsworld and every test goes through a fresh
// dnscache.Resolver and CheckHost. Tests listed in
// testdata/spf-known-failures.txt must fail; all others must pass.
// explanation (exp=) is not checked: blitiri ignores exp.
func TestSPFConformance(t *testing.T) {
	known := readKnownFailures(t, "testdata/spf-known-failures.txt")
	seen := make(map[string]bool) // tests of the suites that ran
	seenSuite := make(map[string]bool)
	for _, suite := range []struct{ name, file string }{
		{"rfc7208", "rfc7208-tests.yml"},
		{"pyspf", "pyspf-tests.yml"},
	} {
		t.Run(suite.name, func(t *testing.T) {
			docs := loadSPFSuite(t, filepath.Join(conformanceDir, suite.file))
			seenSuite[suite.name] = true
			var mu sync.Mutex
			passed, failed := 0, 0
			t.Run("tests", func(t *testing.T) {
				for _, doc := range docs {
					srv, err := dnsworld.Start(buildSPFZone(t, doc.Zonedata))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { srv.Close() })
					for _, name := range slices.Sorted(maps.Keys(doc.Tests)) {
						tc := doc.Tests[name]
						id := suite.name + "/" + name
						mu.Lock()
						seen[id] = true
						mu.Unlock()
						t.Run(name, func(t *testing.T) {
							t.Parallel()
							got, ok, trace := runSPFCase(t, srv.Addr, tc)
							if !ok {
								t.Log("trace:\n\t" + strings.Join(trace, "\n\t"))
							}
							reason, listed := known[id]
							mu.Lock()
							if ok {
								passed++
							} else {
								failed++
							}
							mu.Unlock()
							switch {
							case !ok && !listed:
								t.Errorf("got %s, want %v (%s)", got, tc.Result, tc.Spec)
							case ok && listed:
								t.Errorf("got %s as wanted, but listed as a known failure (%s): remove it from the list", got, reason)
							case !ok:
								t.Logf("known failure: got %s, want %v: %s", got, tc.Result, reason)
							}
						})
					}
				}
			})
			t.Logf("%s: %d passed, %d known failures", suite.name, passed, failed)
		})
	}
	if !t.Failed() && len(seen) > 0 {
		for id := range known {
			if suite, _, _ := strings.Cut(id, "/"); seenSuite[suite] && !seen[id] {
				t.Errorf("known failure %q is not a test", id)
			}
		}
	}
}

// runSPFCase runs one test and reports the result, whether it is one of
// those wanted, and the trace.
func runSPFCase(t *testing.T, server string, tc spfCase) (SPFResult, bool, []string) {
	t.Helper()
	ip, err := netip.ParseAddr(tc.Host)
	if err != nil {
		t.Fatalf("host %q: %v", tc.Host, err)
	}
	res, err := dnscache.New(dnscache.Config{Servers: []string{server}, Timeout: 300 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, domain, _ := strings.Cut(tc.Mailfrom, "@")
	if domain == "" {
		domain = tc.Helo
	}
	var trace []string
	got := CheckHost(context.Background(), res, ip, domain, tc.Mailfrom, tc.Helo, func(s string) { trace = append(trace, s) })
	for _, want := range tc.Result {
		switch want {
		case "unknown":
			want = "permerror"
		case "error":
			want = "temperror"
		}
		if SPFResult(want) == got {
			return got, true, trace
		}
	}
	return got, false, trace
}

type spfDoc struct {
	Tests    map[string]spfCase `yaml:"tests"`
	Zonedata map[string][]any   `yaml:"zonedata"`
}

type spfCase struct {
	Spec     string      `yaml:"spec"`
	Helo     string      `yaml:"helo"`
	Host     string      `yaml:"host"`
	Mailfrom string      `yaml:"mailfrom"`
	Result   stringOrSeq `yaml:"result"`
}

// stringOrSeq decodes a scalar or a sequence of scalars.
type stringOrSeq []string

func (s *stringOrSeq) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = []string{n.Value}
		return nil
	}
	var l []string
	err := n.Decode(&l)
	*s = l
	return err
}

func loadSPFSuite(t *testing.T, path string) []spfDoc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []spfDoc
	dec := yaml.NewDecoder(f)
	for {
		var d spfDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
	return docs
}

// buildSPFZone turns zonedata into a zone, following pyspf's testspf.py: SPF
// entries are copied to TXT only when the name has no TXT entry (TXT: NONE
// included); at a bare TIMEOUT, every type that has no record listed before it
// times out.
func buildSPFZone(t *testing.T, zonedata map[string][]any) *dnsworld.Zone {
	t.Helper()
	z := dnsworld.NewZone()
	for name, recs := range zonedata {
		owner, ok := presentationName(name)
		if !ok {
			t.Fatalf("bad zone name %q", name)
		}
		hdr := func(rrtype uint16) dns.RR_Header {
			return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: 300}
		}
		hasTXT := false
		var spfs [][]string
		answered := make(map[uint16]bool)
		timeout := false
		for _, rec := range recs {
			if s, ok := rec.(string); ok && s == "TIMEOUT" {
				timeout = true
				break
			}
			m, ok := rec.(map[string]any)
			if !ok || len(m) != 1 {
				t.Fatalf("%s: bad record %#v", name, rec)
			}
			for typ, v := range m {
				var rr dns.RR
				switch typ {
				case "A":
					rr = &dns.A{Hdr: hdr(dns.TypeA), A: mustAddr(t, v).AsSlice()}
				case "AAAA":
					rr = &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: mustAddr(t, v).AsSlice()}
				case "MX":
					l, ok := v.([]any)
					if !ok || len(l) != 2 {
						t.Fatalf("%s: bad MX %#v", name, v)
					}
					pref, _ := l[0].(int)
					rr = &dns.MX{Hdr: hdr(dns.TypeMX), Preference: uint16(pref), Mx: mustName(t, fmt.Sprint(l[1]))}
				case "PTR":
					rr = &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: mustName(t, fmt.Sprint(v))}
				case "CNAME":
					rr = &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: mustName(t, fmt.Sprint(v))}
				case "TXT", "SPF":
					if typ == "TXT" {
						hasTXT = true
					}
					if v == "NONE" {
						continue
					}
					strs := txtStrings(t, v)
					if typ == "SPF" {
						spfs = append(spfs, strs)
						rr = &dns.SPF{Hdr: hdr(dns.TypeSPF), Txt: strs}
					} else {
						rr = &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: strs}
					}
				default:
					t.Fatalf("%s: unknown record type %q", name, typ)
				}
				answered[rr.Header().Rrtype] = true
				z.AddRRs(rr)
			}
		}
		if !hasTXT {
			// Generated TXT records come after everything, TIMEOUT included.
			for _, strs := range spfs {
				z.AddRRs(&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: strs})
			}
		}
		if timeout {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypePTR, dns.TypeCNAME, dns.TypeTXT, dns.TypeSPF} {
				if !answered[qt] {
					z.AddFault(owner, qt, dnsworld.FaultTimeout)
				}
			}
		}
	}
	return z
}

func mustAddr(t *testing.T, v any) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(fmt.Sprint(v))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustName(t *testing.T, s string) string {
	t.Helper()
	if s == "" {
		return "." // null MX
	}
	n, ok := presentationName(s)
	if !ok {
		t.Fatalf("bad name %q", s)
	}
	return n
}

// txtStrings turns a TXT/SPF value (a string, or a list of strings for a
// multi-string record) into presentation-escaped character-strings of at most
// 255 bytes each. YAML "\xNN" escapes are code points, so they arrive here as
// UTF-8 already.
func txtStrings(t *testing.T, v any) []string {
	t.Helper()
	var parts []string
	switch v := v.(type) {
	case []any:
		for _, p := range v {
			parts = append(parts, fmt.Sprint(p))
		}
	default:
		parts = []string{fmt.Sprint(v)}
	}
	out := []string{}
	for _, p := range parts {
		for {
			n := min(len(p), 255)
			out = append(out, escapeTXT(p[:n]))
			p = p[n:]
			if p == "" {
				break
			}
		}
	}
	return out
}

func escapeTXT(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// readKnownFailures reads "suite/name<blanks>reason" lines; # starts a comment.
func readKnownFailures(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id := strings.Fields(line)[0]
		reason := strings.TrimSpace(line[len(id):])
		if _, dup := known[id]; dup {
			t.Errorf("%s: %s listed twice", path, id)
		}
		known[id] = reason
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return known
}
