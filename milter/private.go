package milter

import (
	"net/netip"
	"sync"
)

// privateRanges remembers which address ranges heloguard has warned about: a
// client address public DNS cannot speak for (policy.Unroutable) means a NAT
// or container network in front of the MTA, or an internal client, and the
// operator should hear of it once per range, not once per connection.
type privateRanges struct {
	mu     sync.Mutex
	warned map[netip.Prefix]bool
}

// maxPrivateRanges bounds the ranges remembered; past it, no more warnings
// (by then the operator has been told many times).
const maxPrivateRanges = 1024

// first reports whether ip's range (/24 for IPv4, /64 for IPv6) is seen for
// the first time.
func (p *privateRanges) first(ip netip.Addr) (netip.Prefix, bool) {
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	r, _ := ip.Prefix(bits)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.warned == nil {
		p.warned = map[netip.Prefix]bool{}
	}
	if p.warned[r] || len(p.warned) >= maxPrivateRanges {
		return r, false
	}
	p.warned[r] = true
	return r, true
}
