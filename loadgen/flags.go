package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// Protocol is a mask of SMFIP_* flags: the events a milter does not want
// (NOCONNECT, NOHDRS, ...), the replies it will not send (NR_CONN, NR_HDR, ...)
// and protocol features (SKIP, RCPT_REJ, HDR_LEADSPC).
type Protocol uint32

// The SMFIP_* flags (libmilter mfdef.h).
const (
	NoConnect  Protocol = 1 << 0  // SMFIP_NOCONNECT
	NoHelo     Protocol = 1 << 1  // SMFIP_NOHELO
	NoMail     Protocol = 1 << 2  // SMFIP_NOMAIL
	NoRcpt     Protocol = 1 << 3  // SMFIP_NORCPT
	NoBody     Protocol = 1 << 4  // SMFIP_NOBODY
	NoHeaders  Protocol = 1 << 5  // SMFIP_NOHDRS
	NoEOH      Protocol = 1 << 6  // SMFIP_NOEOH
	NRHeader   Protocol = 1 << 7  // SMFIP_NR_HDR (SMFIP_NOHREPL)
	NoUnknown  Protocol = 1 << 8  // SMFIP_NOUNKNOWN
	NoData     Protocol = 1 << 9  // SMFIP_NODATA
	Skip       Protocol = 1 << 10 // SMFIP_SKIP
	RcptRej    Protocol = 1 << 11 // SMFIP_RCPT_REJ
	NRConn     Protocol = 1 << 12 // SMFIP_NR_CONN
	NRHelo     Protocol = 1 << 13 // SMFIP_NR_HELO
	NRMail     Protocol = 1 << 14 // SMFIP_NR_MAIL
	NRRcpt     Protocol = 1 << 15 // SMFIP_NR_RCPT
	NRData     Protocol = 1 << 16 // SMFIP_NR_DATA
	NRUnknown  Protocol = 1 << 17 // SMFIP_NR_UNKN
	NREOH      Protocol = 1 << 18 // SMFIP_NR_EOH
	NRBody     Protocol = 1 << 19 // SMFIP_NR_BODY
	HdrLeadSpc Protocol = 1 << 20 // SMFIP_HDR_LEADSPC
	mds256K    Protocol = 1 << 28 // SMFIP_MDS_256K: between MTA and libmilter only
	mds1M      Protocol = 1 << 29 // SMFIP_MDS_1M
)

// The events Postfix 3.7 offers for each protocol version it speaks
// (milter8.c, MILTER8_V2_PROTO_MASK ... MILTER8_V6_PROTO_MASK), and the
// events it may leave out (SMFIP_NOSEND_MASK).
const (
	postfixV2 = NoConnect | NoHelo | NoMail | NoRcpt | NoBody | NoHeaders | NoEOH
	postfixV3 = postfixV2 | NoUnknown
	postfixV4 = postfixV3 | NoData
	postfixV6 = postfixV4 | Skip | RcptRej | NRHeader | NRConn | NRHelo | NRMail | NRRcpt | NRData | NRUnknown | NREOH | NRBody | HdrLeadSpc
	noSend    = NoConnect | NoHelo | NoMail | NoRcpt | NoBody | NoHeaders | NoEOH | NoUnknown | NoData
)

// PostfixEvents is the SMFIP_* mask Postfix 3.7 offers in its OPTNEG for a
// protocol version (milter_protocol = 2, 3, 4 or 6).
func PostfixEvents(version uint32) Protocol {
	switch {
	case version >= 6:
		return postfixV6
	case version >= 4:
		return postfixV4
	case version == 3:
		return postfixV3
	}
	return postfixV2
}

var protocolNames = []flagName[Protocol]{
	{NoConnect, "NOCONNECT"}, {NoHelo, "NOHELO"}, {NoMail, "NOMAIL"}, {NoRcpt, "NORCPT"},
	{NoBody, "NOBODY"}, {NoHeaders, "NOHDRS"}, {NoEOH, "NOEOH"}, {NRHeader, "NR_HDR"},
	{NoUnknown, "NOUNKNOWN"}, {NoData, "NODATA"}, {Skip, "SKIP"}, {RcptRej, "RCPT_REJ"},
	{NRConn, "NR_CONN"}, {NRHelo, "NR_HELO"}, {NRMail, "NR_MAIL"}, {NRRcpt, "NR_RCPT"},
	{NRData, "NR_DATA"}, {NRUnknown, "NR_UNKN"}, {NREOH, "NR_EOH"}, {NRBody, "NR_BODY"},
	{HdrLeadSpc, "HDR_LEADSPC"}, {mds256K, "MDS_256K"}, {mds1M, "MDS_1M"},
}

// Names names the flags in bit order as libmilter does without the SMFIP_
// prefix ("NOUNKNOWN", "NODATA", "NR_HDR"); a bit without a name is written
// in hex.
func (p Protocol) Names() []string { return flagNames(p, protocolNames) }

// String is Names joined with |: "NOUNKNOWN|NODATA|NR_HDR"; "none" for none.
func (p Protocol) String() string { return joinNames(p.Names()) }

// Actions is a mask of SMFIF_* flags: the modifications a milter may make.
type Actions uint32

// The SMFIF_* flags.
const (
	AddHeaders    Actions = 1 << 0 // SMFIF_ADDHDRS
	ChangeBody    Actions = 1 << 1 // SMFIF_CHGBODY
	AddRcpt       Actions = 1 << 2 // SMFIF_ADDRCPT
	DelRcpt       Actions = 1 << 3 // SMFIF_DELRCPT
	ChangeHeaders Actions = 1 << 4 // SMFIF_CHGHDRS
	Quarantine    Actions = 1 << 5 // SMFIF_QUARANTINE
	ChangeFrom    Actions = 1 << 6 // SMFIF_CHGFROM
	AddRcptPar    Actions = 1 << 7 // SMFIF_ADDRCPT_PAR
	SetSymList    Actions = 1 << 8 // SMFIF_SETSYMLIST
)

// PostfixActions is what Postfix 3.7 offers whatever the protocol version
// (milter8.c, my_actions).
const PostfixActions = AddHeaders | ChangeBody | AddRcpt | DelRcpt | ChangeHeaders | Quarantine | ChangeFrom | AddRcptPar | SetSymList

var actionNames = []flagName[Actions]{
	{AddHeaders, "ADDHDRS"}, {ChangeBody, "CHGBODY"}, {AddRcpt, "ADDRCPT"}, {DelRcpt, "DELRCPT"},
	{ChangeHeaders, "CHGHDRS"}, {Quarantine, "QUARANTINE"}, {ChangeFrom, "CHGFROM"},
	{AddRcptPar, "ADDRCPT_PAR"}, {SetSymList, "SETSYMLIST"},
}

// Names names the flags in bit order without the SMFIF_ prefix ("ADDHDRS",
// "CHGHDRS"); a bit without a name is written in hex.
func (a Actions) Names() []string { return flagNames(a, actionNames) }

// String is Names joined with |: "ADDHDRS|CHGHDRS"; "none" for none.
func (a Actions) String() string { return joinNames(a.Names()) }

// flagName is a flag's bit and its libmilter name without the prefix.
type flagName[T ~uint32] struct {
	bit  T
	name string
}

func flagNames[T ~uint32](v T, table []flagName[T]) []string {
	var names []string
	for _, n := range table {
		if v&n.bit != 0 {
			names = append(names, n.name)
			v &^= n.bit
		}
	}
	for bit := T(1); v != 0; bit <<= 1 {
		if v&bit != 0 {
			names = append(names, fmt.Sprintf("0x%x", uint32(bit)))
			v &^= bit
		}
	}
	return names
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// lookupFlag finds a flag by its name, in any case.
func lookupFlag[T ~uint32](table []flagName[T], name string) (uint32, bool) {
	for _, n := range table {
		if strings.EqualFold(n.name, name) {
			return uint32(n.bit), true
		}
	}
	return 0, false
}

// ParseMask reads a mask as a number (0x1f, 31) or as names joined with |
// (the String forms of Protocol and Actions).
func ParseMask(s string, names func(string) (uint32, bool)) (uint32, error) {
	if v, err := strconv.ParseUint(s, 0, 32); err == nil {
		return uint32(v), nil
	}
	var m uint32
	for _, part := range strings.Split(s, "|") {
		if part == "none" {
			continue
		}
		part = strings.TrimSpace(part)
		if v, err := strconv.ParseUint(part, 0, 32); err == nil { // a bit without a name, as Names writes it
			m |= uint32(v)
			continue
		}
		v, ok := names(part)
		if !ok {
			return 0, fmt.Errorf("%q: not a number or a flag name", part)
		}
		m |= v
	}
	return m, nil
}

// ProtocolFlag looks a protocol flag up by its name ("NR_HDR").
func ProtocolFlag(name string) (uint32, bool) { return lookupFlag(protocolNames, name) }

// ActionFlag looks an action flag up by its name ("ADDHDRS").
func ActionFlag(name string) (uint32, bool) { return lookupFlag(actionNames, name) }
