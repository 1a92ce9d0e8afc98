package dnscache

import (
	"context"
	"errors"
	"net"
)

// Sentinels set as UnwrapErr of the *net.DNSError that lookups return, so that
// errors.Is(err, ErrNXDomain) and the like work.
var (
	ErrNXDomain = errors.New("no such host")       // RCODE NXDOMAIN
	ErrNoData   = errors.New("no data")            // NOERROR without records of the type
	ErrServFail = errors.New("server misbehaving") // SERVFAIL, lame referral, CNAME loop
	ErrRefused  = errors.New("query refused")      // RCODE REFUSED
	ErrTimeout  = errors.New("i/o timeout")        // no usable answer in time
)

// Cause names why a lookup failed: what the decision record says of each
// failed lookup, for the operator who must find out which DNS trouble made a
// decision temperror. NXDOMAIN and NODATA are answers, not failures, and have
// no cause. The set is small and fixed: a new value is a new word in the
// decision record's format.
type Cause string

const (
	// CauseTimeout: no reply in time from any server asked, or the caller's
	// budget (decision_timeout) ran out first.
	CauseTimeout Cause = "timeout"
	// CauseServFail: the server answered SERVFAIL.
	CauseServFail Cause = "servfail"
	// CauseRefused: the server answered REFUSED.
	CauseRefused Cause = "refused"
	// CauseLame: a NOERROR reply with no answer and neither RA nor AA set: a
	// lame delegation or a server that is not recursive.
	CauseLame Cause = "lame"
	// CauseTruncated: the UDP reply had TC set and TCP gave no whole reply
	// (refused, reset, timed out, or truncated again).
	CauseTruncated Cause = "truncated"
	// CauseMalformed: replies came that are not DNS messages (they could not
	// be parsed), and no usable one before the timeout.
	CauseMalformed Cause = "malformed"
	// CauseMismatch: replies came that do not answer the query (wrong ID,
	// question or flags: RFC 5452 section 9.1; a spoofing attempt looks like
	// this), and no usable one before the timeout. They were ignored.
	CauseMismatch Cause = "mismatch"
	// CauseCNAMELoop: the CNAME chain loops, or is longer than 10 names.
	CauseCNAMELoop Cause = "cname-loop"
	// CauseRcode: another RCODE than NOERROR, NXDOMAIN, SERVFAIL or REFUSED
	// (FORMERR, NOTIMP, ...).
	CauseRcode Cause = "rcode"
	// CauseNetwork: sending or receiving failed: connection refused (an ICMP
	// port unreachable), reset, network unreachable.
	CauseNetwork Cause = "network"
)

// Causes returns every Cause, in the order of their definitions.
func Causes() []Cause {
	return []Cause{CauseTimeout, CauseServFail, CauseRefused, CauseLame, CauseTruncated,
		CauseMalformed, CauseMismatch, CauseCNAMELoop, CauseRcode, CauseNetwork}
}

// kind classifies the outcome of a lookup.
type kind uint8

const (
	kindOK kind = iota
	kindNXDomain
	kindNoData
	kindServFail
	kindRefused
	kindTimeout
	kindOther // other rcodes, network errors, canceled
)

func (k kind) sentinel() error {
	switch k {
	case kindNXDomain:
		return ErrNXDomain
	case kindNoData:
		return ErrNoData
	case kindServFail:
		return ErrServFail
	case kindRefused:
		return ErrRefused
	case kindTimeout:
		return ErrTimeout
	}
	return nil
}

// failure is a classified lookup failure. It is immutable once built, so it
// may sit in the cache and be shared.
type failure struct {
	kind   kind
	why    Cause  // for every kind but kindNXDomain and kindNoData
	text   string // Err text; "" = the sentinel's text
	cause  error  // UnwrapErr for kindOther; nil = none
	server string
}

// temporary reports whether f is a failure, not a negative answer.
func (f *failure) temporary() bool { return f.kind != kindNXDomain && f.kind != kindNoData }

// dnsError builds a fresh *net.DNSError for name, so callers never share one.
func (f *failure) dnsError(name string) *net.DNSError {
	e := &net.DNSError{Name: name, Server: f.server, Err: f.text, UnwrapErr: f.kind.sentinel()}
	if f.kind == kindOther {
		e.UnwrapErr = f.cause
	}
	if e.Err == "" && e.UnwrapErr != nil {
		e.Err = e.UnwrapErr.Error()
	}
	switch f.kind {
	case kindNXDomain, kindNoData:
		e.IsNotFound = true
	case kindTimeout:
		e.IsTimeout = true
		e.IsTemporary = true
	default:
		e.IsTemporary = true
	}
	return e
}

// ctxFailure classifies the error of a caller's context that ended.
func ctxFailure(err error) *failure {
	if errors.Is(err, context.DeadlineExceeded) {
		return &failure{kind: kindTimeout, why: CauseTimeout}
	}
	return &failure{kind: kindOther, text: "operation was canceled", cause: err}
}

// ctxError returns the error for a caller whose ctx ended, with UnwrapErr the
// context's error (context.Canceled or context.DeadlineExceeded), as net does.
func ctxError(ctx context.Context, name string) *net.DNSError {
	err := ctx.Err()
	e := ctxFailure(err).dnsError(name)
	e.UnwrapErr = err
	return e
}
