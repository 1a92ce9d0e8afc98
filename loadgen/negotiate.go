package loadgen

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Offer is what the MTA offers in its OPTNEG packet.
type Offer struct {
	Version uint32
	Actions Actions
	Events  Protocol
}

// PostfixOffer is Postfix 3.7's OPTNEG with milter_protocol = version: every
// action whatever the version, and the events that version defines.
func PostfixOffer(version uint32) Offer {
	return Offer{Version: version, Actions: PostfixActions, Events: PostfixEvents(version)}
}

// Negotiated is what a milter answered to the offer.
type Negotiated struct {
	Version  uint32
	Actions  Actions
	Protocol Protocol // its event mask (SMFIP_MDS_* removed)
	// Macros are the macro names it asked for, by stage (SMFIM_*); a stage
	// it did not name has none here and gets Postfix's default list.
	Macros [numStages][]string
	// nonProtocol are the events not sent because the version that was
	// offered or answered does not define them (Postfix's np_mask).
	nonProtocol Protocol
}

// String is a one-line description: "v6 actions ADDHDRS protocol NR_HDR|NOBODY".
func (n Negotiated) String() string {
	return fmt.Sprintf("v%d actions %s protocol %s", n.Version, n.Actions, n.Protocol)
}

// encodeOptNeg writes the MTA's OPTNEG packet.
func encodeOptNeg(p *packet, o Offer) []byte {
	p.begin(cmdOptNeg)
	p.u32(o.Version)
	p.u32(uint32(o.Actions))
	p.u32(uint32(o.Events))
	return p.end()
}

// parseOptNeg checks the milter's OPTNEG reply against the offer as Postfix
// does (milter8_connect): a higher version or an action not offered is an
// error, a lower version narrows the events that are sent, and a symbol list
// that follows replaces the macro lists of the stages it names.
func parseOptNeg(o Offer, data []byte) (Negotiated, error) {
	var n Negotiated
	if len(data) < 12 {
		return n, fmt.Errorf("OPTNEG reply of %d bytes, want at least 12", len(data))
	}
	n.Version = binary.BigEndian.Uint32(data)
	n.Actions = Actions(binary.BigEndian.Uint32(data[4:]))
	n.Protocol = Protocol(binary.BigEndian.Uint32(data[8:])) &^ (mds256K | mds1M)
	switch {
	case n.Version > o.Version:
		return n, fmt.Errorf("protocol version %d conflict with MTA protocol version %d", n.Version, o.Version)
	case n.Version < 2:
		return n, fmt.Errorf("unexpected protocol version %d", n.Version)
	case n.Actions&o.Actions != n.Actions:
		return n, fmt.Errorf("request mask 0x%x (%s) conflict with MTA request mask 0x%x", uint32(n.Actions), n.Actions, uint32(o.Actions))
	}
	n.nonProtocol = noSend &^ o.Events
	if n.Version < o.Version {
		n.nonProtocol |= noSend &^ PostfixEvents(n.Version)
	}
	for rest := data[12:]; len(rest) > 0; {
		if len(rest) < 5 {
			return n, fmt.Errorf("symbol list: %d bytes left, want a stage and a name list", len(rest))
		}
		stage := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		i := indexNUL(rest)
		if i < 0 {
			return n, fmt.Errorf("symbol list: the names of stage %d have no NUL", stage)
		}
		if stage < numStages { // Postfix ignores an unknown stage with a warning
			n.Macros[stage] = strings.FieldsFunc(string(rest[:i]), func(r rune) bool { return r == ' ' || r == ',' })
		}
		rest = rest[i+1:]
	}
	return n, nil
}

// sends reports whether the event whose "no event" flag is f goes to the milter.
func (n *Negotiated) sends(f Protocol) bool { return (n.Protocol|n.nonProtocol)&f == 0 }

// MacroSpec writes the requested macro lists as "connect=j {client_addr};mail=i",
// for ParseMacroSpec.
func (n Negotiated) MacroSpec() string {
	var parts []string
	for st, names := range n.Macros {
		if names != nil {
			parts = append(parts, stageNames[st]+"="+strings.Join(names, " "))
		}
	}
	return strings.Join(parts, ";")
}

// ParseMacroSpec reads MacroSpec's form into lists by stage.
func ParseMacroSpec(s string) ([numStages][]string, error) {
	var m [numStages][]string
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, list, ok := strings.Cut(part, "=")
		st := stageByName(strings.TrimSpace(name))
		if !ok || st < 0 {
			return m, fmt.Errorf("%q: want STAGE=NAMES with a stage of %s", part, strings.Join(stageNames[:], ", "))
		}
		m[st] = strings.Fields(list)
	}
	return m, nil
}
