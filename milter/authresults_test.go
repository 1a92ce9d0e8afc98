package milter

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/heloguard/heloguard/policy"
)

const testAuthservID = "mx.receiver.example"

// decisionFor builds the decision authResults reads.
func decisionFor(iprev, ptr, spf string, helo policy.Helo) *policy.Decision {
	d := &policy.Decision{Helo: helo}
	d.Evidence.IPRev = policy.IPRevResult(iprev)
	d.Evidence.SPFHelo = policy.SPFResult(spf)
	if ptr != "" {
		d.Evidence.PTRConfirmed = []string{ptr}
	}
	return d
}

func fqdn(name string) policy.Helo { return policy.Helo{Raw: name, Form: policy.HeloFQDN, Name: name} }

func TestAuthResults(t *testing.T) {
	v4 := netip.MustParseAddr("104.47.38.131")
	for _, tc := range []struct {
		ip        netip.Addr
		iprev     string
		ptr       string
		spf       string
		helo      policy.Helo
		want      string
		wantParse string // ParseAR's results, as ARResult.String joined by "; "
	}{
		{v4, "pass", "mail-bl2nam02on0131.outbound.protection.outlook.com", "pass", policy.ParseHelo("NAM02-BL2-obe.outbound.protection.outlook.com"),
			`mx.receiver.example; iprev=pass reason="ptr mail-bl2nam02on0131.outbound.protection.outlook.com" policy.iprev=104.47.38.131; spf=pass smtp.helo=nam02-bl2-obe.outbound.protection.outlook.com`,
			`iprev=pass reason="ptr mail-bl2nam02on0131.outbound.protection.outlook.com" policy.iprev="104.47.38.131"; spf=pass smtp.helo="nam02-bl2-obe.outbound.protection.outlook.com"`},
		// IPv6 is quoted (":" is a tspecial); a zone is dropped.
		{netip.MustParseAddr("2001:db8::25"), "pass", "mail6.one-to-one.example", "none", policy.ParseHelo("[IPv6:2001:db8::25]"),
			`mx.receiver.example; iprev=pass reason="ptr mail6.one-to-one.example" policy.iprev="2001:db8::25"`,
			`iprev=pass reason="ptr mail6.one-to-one.example" policy.iprev="2001:db8::25"`},
		{netip.MustParseAddr("fe80::1%eth0;dkim=pass"), "permerror", "", "none", policy.ParseHelo(""),
			`mx.receiver.example; iprev=permerror policy.iprev="fe80::1"`,
			`iprev=permerror policy.iprev="fe80::1"`},
		// A PTR name that is not LDH stays out of the reason.
		{v4, "pass", `evil\"\;dkim=pass.attacker.example`, "fail", fqdn("mail.sender.example"),
			`mx.receiver.example; iprev=pass policy.iprev=104.47.38.131; spf=fail smtp.helo=mail.sender.example`,
			`iprev=pass policy.iprev="104.47.38.131"; spf=fail smtp.helo="mail.sender.example"`},
		{v4, "pass", "a." + strings.Repeat("b", 64) + ".example", "none", policy.ParseHelo(""),
			`mx.receiver.example; iprev=pass policy.iprev=104.47.38.131`,
			`iprev=pass policy.iprev="104.47.38.131"`},
		// An FQDN HELO that is not LDH (ParseHelo makes none) leaves out the
		// spf result whole; so does an spf result RFC 8601 does not define.
		{v4, "fail", "", "pass", fqdn(`mail"; dkim=pass.example`),
			`mx.receiver.example; iprev=fail policy.iprev=104.47.38.131`,
			`iprev=fail policy.iprev="104.47.38.131"`},
		{v4, "fail", "", "", fqdn("mail.sender.example"),
			`mx.receiver.example; iprev=fail policy.iprev=104.47.38.131`,
			`iprev=fail policy.iprev="104.47.38.131"`},
		// A decision that timed out before reverse DNS answered has no iprev.
		{v4, "", "", "temperror", fqdn("mail.sender.example"),
			`mx.receiver.example; spf=temperror smtp.helo=mail.sender.example`,
			`spf=temperror smtp.helo="mail.sender.example"`},
		{v4, "", "", "pass; dkim=pass", fqdn("mail.sender.example"), `mx.receiver.example; none`, ``},
		{netip.Addr{}, "pass", "mail.sender.example", "none", policy.ParseHelo("bare"), `mx.receiver.example; none`, ``},
	} {
		got := authResults(testAuthservID, tc.ip, decisionFor(tc.iprev, tc.ptr, tc.spf, tc.helo))
		if got != tc.want {
			t.Errorf("%v %s %q %s %+v:\n got %s\nwant %s", tc.ip, tc.iprev, tc.ptr, tc.spf, tc.helo, got, tc.want)
		}
		h, err := ParseAR(got)
		if err != nil {
			t.Errorf("%s: %v", got, err)
			continue
		}
		var rs []string
		for _, r := range h.Results {
			rs = append(rs, r.String())
		}
		if h.ID != testAuthservID || strings.Join(rs, "; ") != tc.wantParse {
			t.Errorf("%s reads as %s; %s", got, h.ID, strings.Join(rs, "; "))
		}
	}
}

// ldhNameRE is the LDH host name syntax, written independently of ldhName.
var ldhNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// FuzzAuthResults writes our header for arbitrary PTR names, HELOs and result
// strings, as the milter does, and reads it back strictly (ParseAR) and as
// go-msgauth does: it must hold exactly the results we meant, a reason only
// for a PTR name that is safe, and nothing but printable ASCII (we never fold).
func FuzzAuthResults(f *testing.F) {
	for _, s := range []struct {
		ip, zone, iprev, ptr, spf, helo string
		forceFQDN                       bool
	}{
		{"104.47.38.131", "", "pass", "mail-bl2nam02on0131.outbound.protection.outlook.com", "pass", "NAM02-BL2-obe.outbound.protection.outlook.com", false},
		{"2001:db8::25", "eth0", "pass", "mail6.one-to-one.example", "none", "[IPv6:2001:db8::25]", false},
		{"192.0.2.34", "", "pass", `evil\"\;dkim=pass.attacker.example`, "pass", "mail.sender.example", false},
		{"192.0.2.34", "", "fail", `back\\slash.example`, "softfail", `mail"; dkim=pass.example`, true},
		{"192.0.2.34", "", "temperror", "under_score.example", "temperror", "mail.sender.example.", false},
		{"192.0.2.34", "", "", "", "", "", false},
		{"192.0.2.34", "", "pass\r\n", "a.b\r\n c", "pass; dkim=pass", "mail.sender.example\r\nX-Evil: 1", true},
		{"192.0.2.34", "", "permerror", "-a.example", "neutral", "localhost", false},
	} {
		f.Add(netip.MustParseAddr(s.ip).AsSlice(), s.zone, s.iprev, s.ptr, s.spf, s.helo, s.forceFQDN)
	}
	f.Fuzz(func(t *testing.T, ipBytes []byte, zone, iprev, ptr, spf, heloText string, forceFQDN bool) {
		ip, ok := netip.AddrFromSlice(ipBytes)
		if ok && ip.Is6() {
			ip = ip.WithZone(zone)
		}
		// The milter passes ParseHelo's result; forceFQDN hands authResults
		// names ParseHelo would refuse, to test its own check.
		helo := policy.ParseHelo(heloText)
		if forceFQDN {
			helo = fqdn(heloText)
		}
		got := authResults(testAuthservID, ip, decisionFor(iprev, ptr, spf, helo))

		// What we meant.
		var want []ARResult
		if ip.IsValid() && (iprev == "pass" || iprev == "fail" || iprev == "temperror" || iprev == "permerror") {
			r := ARResult{Method: "iprev", Value: iprev, Props: []ARProp{{"policy", "iprev", ip.WithZone("").String()}}}
			if ldhNameRE.MatchString(ptr) && len(ptr) <= 253 {
				r.Reason, r.HasReason = "ptr "+ptr, true
			}
			want = append(want, r)
		}
		if helo.Form == policy.HeloFQDN && ldhNameRE.MatchString(helo.Name) && len(helo.Name) <= 253 {
			switch spf {
			case "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror":
				want = append(want, ARResult{Method: "spf", Value: spf, Props: []ARProp{{"smtp", "helo", helo.Name}}})
			}
		}

		for i := 0; i < len(got); i++ {
			if got[i] < ' ' || got[i] > '~' {
				t.Fatalf("byte %#x at %d of %q", got[i], i, got)
			}
		}
		if len("Authentication-Results: ")+len(got) > 998 {
			t.Fatalf("%d bytes, more than a header line may hold: %q", len(got), got)
		}
		h, err := ParseAR(got)
		if err != nil {
			t.Fatalf("our header does not parse: %v", err)
		}
		if h.ID != testAuthservID || h.Version != "" || fmt.Sprint(h.Results) != fmt.Sprint(want) {
			t.Fatalf("%q reads as %q %q %v, want %v", got, h.ID, h.Version, h.Results, want)
		}

		// go-msgauth cuts quoted-strings at white space and keeps the quotes,
		// so it sees a quoted value as a piece of what we wrote: never more,
		// never anything else, and never a result we did not write.
		id, results, err := authres.Parse(got)
		if err != nil || id != testAuthservID || len(results) != len(want) {
			t.Fatalf("authres.Parse(%q) = %q, %d results, %v; want %d results", got, id, len(results), err, len(want))
		}
		for i, w := range want {
			switch r := results[i].(type) {
			case *authres.IPRevResult:
				ipText := w.Props[0].Value
				if w.Method != "iprev" || string(r.Value) != w.Value || (r.IP != ipText && r.IP != `"`+ipText+`"`) {
					t.Fatalf("authres.Parse(%q): result %d is %+v, want %v", got, i, r, w)
				}
				if (r.Reason != "") != w.HasReason || !strings.HasPrefix(`"`+w.Reason+`"`, r.Reason) {
					t.Fatalf("authres.Parse(%q): reason %q, want a piece of %q", got, r.Reason, w.Reason)
				}
			case *authres.SPFResult:
				if w.Method != "spf" || string(r.Value) != w.Value || r.Helo != w.Props[0].Value || r.Reason != "" || r.From != "" {
					t.Fatalf("authres.Parse(%q): result %d is %+v, want %v", got, i, r, w)
				}
			default:
				t.Fatalf("authres.Parse(%q): result %d is %T %+v, want %v", got, i, r, r, w)
			}
		}
	})
}
