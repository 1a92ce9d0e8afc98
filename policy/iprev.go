package policy

import (
	"context"
	"net/netip"
	"strings"
	"sync"
)

// maxPTRNames bounds the forward lookups per client, as RFC 8601 section 3 asks;
// 10 is the limit RFC 7208 section 4.6.4 uses for the same job.
const maxPTRNames = 10

// Reverse is the reverse-DNS half of the evidence: it depends on the IP alone, so
// the milter starts it at connect and every HELO on the connection reuses it.
type Reverse struct {
	IPRev     IPRevResult
	Names     []string  // PTR names, lowercased, no trailing dot
	Confirmed []string  // the names whose A/AAAA records hold the IP, in answer order
	PTRSPF    SPFResult // ptr_spf: CheckPTRDomain of the first confirmed name; none without one
}

// LookupReverse computes RFC 8601 iprev for ip: PTR names, each forward-resolved
// concurrently (at most maxPTRNames), CNAMEs followed by the resolver (RFC 2317);
// and ptr_spf. The SPF check of the first PTR name's domain starts as soon as
// the PTR answer is in, beside the forward lookups: the first name is the
// confirmed one nearly always, so ptr_spf costs no round trip of its own.
func LookupReverse(ctx context.Context, r Resolver, ip netip.Addr) Reverse {
	ip = ip.Unmap()
	var first string
	var spf chan SPFResult
	rev := lookupIPRev(ctx, r, ip, func(name string) {
		first, spf = name, make(chan SPFResult, 1)
		go func() { spf <- CheckPTRDomain(ctx, r, ip, name) }()
	})
	switch {
	case len(rev.Confirmed) == 0:
		rev.PTRSPF = SPFNone
	case rev.Confirmed[0] == first:
		rev.PTRSPF = <-spf
	default:
		rev.PTRSPF = CheckPTRDomain(ctx, r, ip, rev.Confirmed[0])
	}
	// A check started for a name that was not confirmed is not waited for
	// (its domain may be a forger's, and slow): it ends on its own, within
	// ctx and the SPF time limit, into its buffered channel.
	return rev
}

// lookupIPRev is the iprev part of LookupReverse; started is called with the
// first PTR name once the PTR answer is in.
func lookupIPRev(ctx context.Context, r Resolver, ip netip.Addr, started func(first string)) Reverse {
	names, err := r.LookupPTR(ctx, ip)
	if err != nil {
		if isNotFound(err) {
			return Reverse{IPRev: IPRevPermError}
		}
		return Reverse{IPRev: IPRevTempError}
	}
	rev := Reverse{Names: dedupNames(names)}
	if len(rev.Names) == 0 {
		rev.IPRev = IPRevPermError
		return rev
	}
	started(rev.Names[0])
	check := rev.Names
	if len(check) > maxPTRNames {
		check = check[:maxPTRNames]
	}
	confirmed := make([]bool, len(check))
	temp := make([]bool, len(check))
	forward := func(i int) {
		// An address of the client confirms the name even if the other
		// address type failed (a broken AAAA beside a good A).
		addrs, err := r.LookupIP(ctx, check[i])
		confirmed[i] = containsAddr(addrs, ip)
		temp[i] = !confirmed[i] && err != nil && !isNotFound(err)
	}
	// The names are checked concurrently; the first on this goroutine, since
	// most IPs have exactly one PTR name.
	var wg sync.WaitGroup
	for i := 1; i < len(check); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			forward(i)
		}()
	}
	forward(0)
	wg.Wait()
	anyTemp := false
	for i, name := range check {
		if confirmed[i] {
			rev.Confirmed = append(rev.Confirmed, name)
		}
		anyTemp = anyTemp || temp[i]
	}
	switch {
	case len(rev.Confirmed) > 0:
		rev.IPRev = IPRevPass
	case anyTemp:
		rev.IPRev = IPRevTempError
	default:
		rev.IPRev = IPRevFail
	}
	return rev
}

// normName lowercases a DNS name and drops its trailing dot, the form every
// comparison in this package uses.
func normName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

func dedupNames(names []string) []string {
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		n = normName(n)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

func containsAddr(addrs []netip.Addr, ip netip.Addr) bool {
	for _, a := range addrs {
		if a.Unmap() == ip {
			return true
		}
	}
	return false
}
