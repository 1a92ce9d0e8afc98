package loadgen

import (
	"fmt"
	"net/netip"
	"strings"
)

// Target is a milter to load: a name for the report and where it listens.
type Target struct {
	Name    string
	Network string // "unix" or "tcp"
	Address string // a socket path, or IP:PORT on loopback
}

// Spec writes the target the way Postfix's smtpd_milters does.
func (t Target) Spec() string {
	if t.Network == "unix" {
		return "unix:" + t.Address
	}
	return "inet:" + t.Address
}

// ParseTarget reads NAME=unix:/path or NAME=inet:IP:PORT (local: is a
// synonym of unix:, as in Postfix). An inet address must be on loopback
// (127.0.0.0/8 or ::1): a load generator sends no traffic elsewhere.
func ParseTarget(s string) (Target, error) {
	name, spec, ok := strings.Cut(s, "=")
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return Target{}, fmt.Errorf("target %q: want NAME=unix:/path or NAME=inet:127.0.0.1:PORT", s)
	}
	t, err := ParseSocket(spec)
	if err != nil {
		return Target{}, fmt.Errorf("target %s: %v", name, err)
	}
	t.Name = name
	return t, nil
}

// ParseSocket reads unix:/path or inet:IP:PORT, refusing an address off
// loopback.
func ParseSocket(spec string) (Target, error) {
	switch {
	case strings.HasPrefix(spec, "unix:") && len(spec) > 5:
		return Target{Network: "unix", Address: spec[5:]}, nil
	case strings.HasPrefix(spec, "local:") && len(spec) > 6:
		return Target{Network: "unix", Address: spec[6:]}, nil
	case strings.HasPrefix(spec, "inet:"):
		ap, err := netip.ParseAddrPort(spec[5:])
		if err != nil {
			return Target{}, fmt.Errorf("%q: want inet:IP:PORT such as inet:127.0.0.1:8894 or inet:[::1]:8894", spec)
		}
		if !ap.Addr().Unmap().IsLoopback() {
			return Target{}, fmt.Errorf("%q: %s is not a loopback address (127.0.0.0/8 or ::1); the load generator sends no traffic off this machine", spec, ap.Addr())
		}
		return Target{Network: "tcp", Address: ap.String()}, nil
	}
	return Target{}, fmt.Errorf("%q: want unix:/path or inet:IP:PORT on loopback", spec)
}
