package loadgen

import (
	"fmt"

	milter "github.com/d--j/go-milter"
)

// RefOptions is what a reference milter negotiates: a version (at most the
// MTA's), and exactly these actions, protocol flags and macro requests,
// whatever the MTA offers beyond them.
type RefOptions struct {
	Version  uint32
	Actions  Actions
	Protocol Protocol
	Macros   [numStages][]string // nil for a stage: none requested
}

// SameAs is a reference that negotiates what n did.
func SameAs(n Negotiated) RefOptions {
	return RefOptions{Version: n.Version, Actions: n.Actions, Protocol: n.Protocol, Macros: n.Macros}
}

// refMilter does nothing: it continues at every event (never a skip) and
// accepts at end of message.
type refMilter struct{ milter.NoOpMilter }

func (refMilter) RcptTo(string, string, milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

func (refMilter) Header(string, string, milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

func (refMilter) BodyChunk([]byte, milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

// NewRefServer is a do-nothing milter server (github.com/d--j/go-milter, which
// speaks protocol versions 2 to 6 and honours the no-reply flags) that
// negotiates o: the floor a real milter negotiating the same events is
// measured against.
func NewRefServer(o RefOptions) *milter.Server {
	opts := []milter.Option{
		milter.WithMilter(func() milter.Milter { return refMilter{} }),
		milter.WithNegotiationCallback(func(mtaVersion, _ uint32, mtaActions, _ milter.OptAction, _, _ milter.OptProtocol, _ milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
			acts := milter.OptAction(o.Actions)
			if acts&mtaActions != acts {
				return 0, 0, 0, 0, fmt.Errorf("the MTA offers actions %s, the reference needs %s", Actions(mtaActions), o.Actions)
			}
			return min(o.Version, mtaVersion), acts, milter.OptProtocol(o.Protocol), milter.DataSize64K, nil
		}),
	}
	for st, names := range o.Macros {
		if names != nil {
			opts = append(opts, milter.WithMacroRequest(milter.MacroStage(st), names))
		}
	}
	return milter.NewServer(opts...)
}
