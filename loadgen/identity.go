package loadgen

import (
	_ "embed"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/heloguard/heloguard/policy/scenario"
	"github.com/miekg/dns"
)

//go:embed testdata/bench.yaml
var benchWorld []byte

// DefaultWorldName names the built-in world (loadgen/testdata/bench.yaml) in
// messages and reports.
const DefaultWorldName = "loadgen/testdata/bench.yaml (built in)"

// Identity is an SMTP client a session plays: a case of a scenario file.
type Identity struct {
	Name   string
	Addr   string // the client address, as Postfix writes it
	Helo   string
	Expect string // the decision the scenario expects of heloguard
	PTR    string // the address's PTR name; "" when it has none
	Host   string // the PTR name if it is forward-confirmed (Postfix's client name), else ""
	IPv6   bool
}

// clientName is Postfix's client name: the verified name, or "unknown".
func (id *Identity) clientName() string {
	if id.Host != "" {
		return id.Host
	}
	return "unknown"
}

// connectHost is the host name of the CONNECT event: the verified name, or
// the address in brackets (milter8.c).
func (id *Identity) connectHost() string {
	if id.Host != "" {
		return id.Host
	}
	return "[" + id.Addr + "]"
}

func (id *Identity) ptrOrUnknown() string {
	if id.PTR != "" {
		return id.PTR
	}
	return "unknown"
}

// resolve is Postfix's {client_resolve}: OK, FORGED (a PTR that does not
// resolve back) or FAIL (no PTR).
func (id *Identity) resolve() string {
	switch {
	case id.Host != "":
		return "OK"
	case id.PTR != "":
		return "FORGED"
	}
	return "FAIL"
}

// World is a scenario file whose cases are the identities a bench plays.
type World struct {
	Name       string
	File       *scenario.File
	Identities []Identity
}

// LoadWorld reads a scenario file ("" for the built-in bench world) and keeps
// the cases named in only (all of them when only is empty).
func LoadWorld(path string, only []string) (*World, error) {
	var f *scenario.File
	var err error
	name := path
	if path == "" {
		name = DefaultWorldName
		f, err = scenario.Parse(name, benchWorld)
	} else {
		f, err = scenario.Load(path)
	}
	if err != nil {
		return nil, err
	}
	w := &World{Name: name, File: f}
	names := worldNames(f.World)
	for _, c := range f.Cases {
		if len(only) > 0 && !slices.Contains(only, c.Name) {
			continue
		}
		w.Identities = append(w.Identities, identity(c, names))
	}
	for _, n := range only {
		if !slices.ContainsFunc(f.Cases, func(c scenario.Case) bool { return c.Name == n }) {
			return nil, fmt.Errorf("%s has no case named %q", name, n)
		}
	}
	if len(w.Identities) == 0 {
		return nil, fmt.Errorf("%s: no cases to play", name)
	}
	return w, nil
}

// names is what a world's records say about names: PTR targets by reverse
// name, addresses by name (all lower case, absolute).
type names struct {
	ptr   map[string]string
	addrs map[string][]netip.Addr
}

func worldNames(world []string) names {
	n := names{ptr: map[string]string{}, addrs: map[string][]netip.Addr{}}
	for _, line := range world {
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			continue // scenario.Zone reports it when the world is served
		}
		owner := strings.ToLower(rr.Header().Name)
		switch r := rr.(type) {
		case *dns.PTR:
			n.ptr[owner] = strings.ToLower(r.Ptr)
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				n.addrs[owner] = append(n.addrs[owner], a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA); ok {
				n.addrs[owner] = append(n.addrs[owner], a)
			}
		}
	}
	return n
}

// identity is a case as Postfix would see the client: its name when the PTR
// name resolves back to the address.
func identity(c scenario.Case, n names) Identity {
	ip := netip.MustParseAddr(c.IP).Unmap() // scenario.Load checked it
	id := Identity{Name: c.Name, Addr: ip.String(), Helo: c.Helo, Expect: string(c.Expect), IPv6: ip.Is6()}
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return id
	}
	ptr := n.ptr[strings.ToLower(rev)]
	if ptr == "" {
		return id
	}
	id.PTR = strings.TrimSuffix(ptr, ".")
	if slices.Contains(n.addrs[ptr], ip) {
		id.Host = id.PTR
	}
	return id
}
