package loadgen

import "strconv"

// Stages of a session, in order; each is timed on its own.
const (
	StageConnect = iota // dial, OPTNEG and the CONNECT event
	StageHelo
	StageMail
	StageRcpt    // both recipients
	StageHeaders // DATA, the header fields and end of header
	StageEOM     // the body chunk and end of message, modifications included
	NumStages
)

// StageNames name the timed stages in reports.
var StageNames = [NumStages]string{"connect", "helo", "mail", "rcpt", "headers", "eom"}

// Verdict is what became of a session's message, as Postfix would act on the
// milter's replies. It is comparable, to be counted in a map.
type Verdict struct {
	Kind  byte   // 'a' accepted, 'r' refused (5xx), 't' deferred (4xx), 'd' discarded
	Stage uint8  // where the milter decided (StageEOM for a message that got through)
	Code  uint16 // the SMTP code of a refusal
	// RcptRefused counts recipients refused while the message went on.
	RcptRefused uint8
	Quarantined bool
}

// verdictOf is the verdict a final reply at a stage stands for.
func verdictOf(r reply, stage int) Verdict {
	v := Verdict{Stage: uint8(stage), Code: r.smtp}
	switch {
	case r.code == replyDiscard:
		v.Kind = 'd'
	case r.refuses() && r.smtp >= 500:
		v.Kind = 'r'
	case r.refuses():
		v.Kind = 't'
	default:
		v.Kind = 'a'
	}
	return v
}

// String reads "accepted", "accepted at helo" (the milter wanted no more of
// it), "refused 550 at rcpt", "deferred 451 at helo", "discarded at eom",
// with ", 1 rcpt refused" or ", quarantined" after it when that happened.
func (v Verdict) String() string {
	var s string
	switch v.Kind {
	case 'a':
		s = "accepted"
		if v.Stage != StageEOM {
			s += " at " + StageNames[v.Stage]
		}
	case 'd':
		s = "discarded at " + StageNames[v.Stage]
	case 'r':
		s = "refused " + strconv.Itoa(int(v.Code)) + " at " + StageNames[v.Stage]
	case 't':
		s = "deferred " + strconv.Itoa(int(v.Code)) + " at " + StageNames[v.Stage]
	default:
		s = "unknown"
	}
	if v.RcptRefused > 0 {
		s += ", " + strconv.Itoa(int(v.RcptRefused)) + " rcpt refused"
	}
	if v.Quarantined {
		s += ", quarantined"
	}
	return s
}
