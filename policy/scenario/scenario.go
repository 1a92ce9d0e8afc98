// Package scenario runs policy regression files: a DNS world, faults, and cases
// with the decision each must get. The world is served over real UDP and TCP on
// loopback by dnsworld and read through dnscache, so a scenario exercises the same
// path as the daemon. The format is described in docs/scenarios.md.
package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/scenario/dnsworld"
	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// File is one scenario file.
type File struct {
	Path       string
	World      []string `yaml:"world"`
	Faults     []Fault  `yaml:"faults"`
	Cases      []Case   `yaml:"cases"`
	LocalNames []string `yaml:"local_names"` // default [mx.receiver.example]
}

// Fault makes the server misbehave for one name and type.
type Fault struct {
	Name  string `yaml:"name"`
	Type  string `yaml:"type"` // PTR, A, TXT, ... or ANY
	Fault string `yaml:"fault"`
}

// Case is one client and HELO with the expected outcome.
type Case struct {
	Name     string         `yaml:"name"`
	IP       string         `yaml:"ip"`
	Helo     string         `yaml:"helo"`
	Expect   policy.Action  `yaml:"expect"`
	Rule     string         `yaml:"rule"` // optional: the rule that must decide
	Evidence map[string]any `yaml:"evidence"`
	Why      string         `yaml:"why"`
}

// DefaultLocalNames is what the scenario format assumes for local_names.
var defaultLocalNames = []string{"mx.receiver.example"}

// Load reads and checks a scenario file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse checks the text of a scenario file; path names it in errors.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	for i, c := range f.Cases {
		if _, err := netip.ParseAddr(c.IP); err != nil {
			return nil, fmt.Errorf("%s: case %d (%s): bad ip %q", path, i+1, c.Name, c.IP)
		}
		if !slices.Contains(policy.Actions(), c.Expect) {
			return nil, fmt.Errorf("%s: case %d (%s): expect must be one of %v, not %q", path, i+1, c.Name, policy.Actions(), c.Expect)
		}
	}
	return f, nil
}

// Zone builds the file's DNS world.
func (f *File) Zone() (*dnsworld.Zone, error) {
	z := dnsworld.NewZone()
	for _, line := range f.World {
		if err := z.AddRR(line); err != nil {
			return nil, fmt.Errorf("%s: world record %q: %v", f.Path, line, err)
		}
	}
	for _, ft := range f.Faults {
		qt, ok := dns.StringToType[strings.ToUpper(ft.Type)]
		if !ok {
			return nil, fmt.Errorf("%s: fault for %s: unknown type %q", f.Path, ft.Name, ft.Type)
		}
		if known := dnsworld.Faults(); !slices.Contains(known, dnsworld.Fault(ft.Fault)) {
			names := make([]string, len(known))
			for i, k := range known {
				names[i] = string(k)
			}
			return nil, fmt.Errorf("%s: fault for %s: unknown fault %q (%s)", f.Path, ft.Name, ft.Fault, strings.Join(names, ", "))
		}
		z.AddFault(ft.Name, qt, dnsworld.Fault(ft.Fault))
	}
	return z, nil
}

// Serve starts a loopback DNS server with the file's world.
func (f *File) Serve() (*dnsworld.Server, error) {
	z, err := f.Zone()
	if err != nil {
		return nil, err
	}
	return dnsworld.Start(z)
}

// Result is one case's outcome.
type Result struct {
	Case     Case
	Decision policy.Decision
	Problems []string // empty when the case passed
}

// Run serves the world on loopback and decides every case with an engine built
// from opt (the caller's config: rules, trusted networks, generic tokens), its
// Resolver replaced by one that reads the world. local_names come from the file.
func (f *File) Run(ctx context.Context, opt policy.Options) ([]Result, error) {
	srv, err := f.Serve()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	res, err := dnscache.New(dnscache.Config{Servers: []string{srv.Addr}, Timeout: 500 * time.Millisecond, Attempts: 2})
	if err != nil {
		return nil, err
	}
	opt.Resolver = res
	opt.LocalNames = defaultLocalNames
	if f.LocalNames != nil {
		opt.LocalNames = f.LocalNames
	}
	eng := policy.New(opt)
	var out []Result
	for _, c := range f.Cases {
		ip := netip.MustParseAddr(c.IP)
		d := eng.Evaluate(ctx, ip, c.Helo)
		out = append(out, Result{Case: c, Decision: d, Problems: check(c, d)})
	}
	return out, nil
}

func check(c Case, d policy.Decision) []string {
	var probs []string
	if d.Action != c.Expect {
		probs = append(probs, fmt.Sprintf("action %s (rule %s), want %s", d.Action, d.Rule, c.Expect))
	}
	if c.Rule != "" && d.Rule != c.Rule {
		probs = append(probs, fmt.Sprintf("rule %s, want %s", d.Rule, c.Rule))
	}
	have := evidenceMap(d.Evidence)
	keys := make([]string, 0, len(c.Evidence))
	for k := range c.Evidence {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ok := have[k]
		if !ok {
			probs = append(probs, fmt.Sprintf("evidence has no field %q", k))
			continue
		}
		if !sameValue(c.Evidence[k], got) {
			probs = append(probs, fmt.Sprintf("evidence %s = %v, want %v", k, got, c.Evidence[k]))
		}
	}
	return probs
}

// evidenceMap is the evidence by field name, as the decision record has it.
func evidenceMap(ev policy.Evidence) map[string]any {
	m := map[string]any{}
	for _, f := range policy.Fields() {
		switch v := f.Ref(&ev).(type) {
		case *string:
			m[f.Name] = *v
		case *bool:
			m[f.Name] = *v
		case *[]string:
			m[f.Name] = *v
		}
	}
	return m
}

// sameValue compares a YAML-decoded expectation with a JSON-decoded value.
func sameValue(want, got any) bool {
	norm := func(v any) any {
		data, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(data, &out)
		if s, ok := out.(string); ok {
			return strings.ToLower(strings.TrimSuffix(s, "."))
		}
		if l, ok := out.([]any); ok {
			for i, e := range l {
				if s, ok := e.(string); ok {
					l[i] = strings.ToLower(strings.TrimSuffix(s, "."))
				}
			}
		}
		return out
	}
	return reflect.DeepEqual(norm(want), norm(got))
}
