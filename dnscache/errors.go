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
	text   string // Err text; "" = the sentinel's text
	cause  error  // UnwrapErr for kindOther; nil = none
	server string
}

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
		return &failure{kind: kindTimeout}
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
