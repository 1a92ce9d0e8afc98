package loadgen

import (
	"encoding/json"
	"fmt"
	"time"
)

// Probe negotiates with the target as Postfix would with milter_protocol =
// version and says what the milter answered; the session ends with QUIT.
func Probe(t Target, version uint32, timeout time.Duration) (Negotiated, error) {
	pl := newPlayer(t, PostfixOffer(version), timeout, nil)
	err := pl.open()
	if pl.conn != nil {
		pl.close(err == nil)
	}
	if err != nil {
		return Negotiated{}, fmt.Errorf("%s (%s): %w", t.Name, t.Spec(), err)
	}
	return pl.neg, nil
}

// MarshalJSON writes the masks as numbers and as names.
func (n Negotiated) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Version      uint32 `json:"version"`
		Actions      string `json:"actions"`
		ActionsMask  uint32 `json:"actions_mask"`
		Protocol     string `json:"protocol"`
		ProtocolMask uint32 `json:"protocol_mask"`
		Macros       string `json:"macros,omitempty"`
	}{n.Version, n.Actions.String(), uint32(n.Actions), n.Protocol.String(), uint32(n.Protocol), n.MacroSpec()})
}
