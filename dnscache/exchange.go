package dnscache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the EDNS0 UDP payload size we advertise (DNS Flag Day 2020).
const ednsSize = 1232

// errTruncatedTCP is returned when even the TCP answer has TC set.
var errTruncatedTCP = errors.New("truncated answer over TCP")

// retryFirstAfter is how long a server other than the first stays preferred
// before the first is asked first again: a dead first server costs one
// timeout per this period, and returns to service when it answers.
const retryFirstAfter = 30 * time.Second

// prefer makes server at the one asked first. The period before the first
// server is tried again starts when another becomes preferred, and again
// after each retry of the first that failed.
func (r *Resolver) prefer(at int, retried bool) {
	old := r.preferred.Swap(uint32(at))
	if at != 0 && (old != uint32(at) || retried) {
		r.preferredAt.Store(r.cfg.Now().UnixNano())
	}
}

// exchange asks the servers for name and qtype, round-robin over at most
// Attempts attempts, and returns the first usable answer: NOERROR or NXDOMAIN.
// It goes to the next server only on a timeout, a network error, SERVFAIL,
// REFUSED, a lame referral or a truncated answer that TCP could not complete;
// every other outcome is final. The first server asked is the one that last
// gave a usable answer, so that a dead server costs one timeout, not one per
// lookup. The failure returned is the last attempt's, unless that was silence
// (a plain timeout) after an attempt that got a reply: a reply, even a bad
// one, says more of the trouble than silence does.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, *failure) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype) // RD set
	q.SetEdns0(ednsSize, false)
	n := len(r.cfg.Servers)
	first := int(r.preferred.Load())
	retried := false
	if first != 0 && r.cfg.Now().UnixNano()-r.preferredAt.Load() > int64(retryFirstAfter) {
		first, retried = 0, true // now and then, see whether the first server is back
	}
	var last *failure
	failed := func(f *failure) {
		if last == nil || f.why != CauseTimeout || last.why == CauseTimeout {
			last = f
		}
	}
	for i := range r.cfg.Attempts {
		if ctx.Err() != nil {
			break
		}
		at := (first + i) % n
		server := r.cfg.Servers[at]
		q.Id = dns.Id()
		resp, err := r.roundTrip(ctx, "udp", server, q)
		if err == nil && resp.Truncated {
			resp, err = r.roundTrip(ctx, "tcp", server, q)
			if err == nil && resp.Truncated {
				return nil, server, &failure{kind: kindOther, why: CauseTruncated, text: errTruncatedTCP.Error(), cause: errTruncatedTCP, server: server}
			}
			if err != nil {
				f := netFailure(err, server)
				f.why, f.text = CauseTruncated, "truncated answer, and over TCP: "+err.Error()
				failed(f)
				continue
			}
		}
		if err != nil {
			failed(netFailure(err, server))
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
			if !resp.Authoritative && !resp.RecursionAvailable && len(resp.Answer) == 0 {
				failed(&failure{kind: kindServFail, why: CauseLame, text: "lame referral", server: server})
				continue
			}
			r.prefer(at, retried)
			return resp, server, nil
		case dns.RcodeNameError:
			r.prefer(at, retried)
			return resp, server, nil
		case dns.RcodeServerFailure:
			failed(&failure{kind: kindServFail, why: CauseServFail, server: server})
		case dns.RcodeRefused:
			failed(&failure{kind: kindRefused, why: CauseRefused, server: server})
		default:
			return nil, server, &failure{kind: kindOther, why: CauseRcode, text: "unexpected rcode " + rcodeString(resp.Rcode), server: server}
		}
	}
	if last == nil { // the budget ran out before any attempt
		last = &failure{kind: kindTimeout, why: CauseTimeout}
	}
	return nil, last.server, last
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprint(rc)
}

// badReplies is the error of an attempt during which replies came that were
// not usable (garbage, or not answers to the query) and no usable one did.
type badReplies struct {
	why Cause // CauseMalformed or CauseMismatch: the first bad reply
	err error // how the attempt ended: a timeout, EOF
}

func (e *badReplies) Error() string { return fmt.Sprintf("%v (after %s replies)", e.err, e.why) }
func (e *badReplies) Unwrap() error { return e.err }

// netFailure classifies an error of roundTrip.
func netFailure(err error, server string) *failure {
	var ne net.Error
	f := &failure{kind: kindOther, why: CauseNetwork, text: err.Error(), cause: err, server: server}
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		f = &failure{kind: kindTimeout, why: CauseTimeout, server: server}
	}
	if br, ok := errors.AsType[*badReplies](err); ok {
		f.why = br.why
	}
	return f
}

// longAgo is a deadline in the past, to interrupt a blocked read.
var longAgo = time.Unix(1, 0)

// roundTrip sends q to server over network ("udp" or "tcp") and returns the
// first reply that matches it (ID, QR, opcode and question), as a truncated
// one (to be asked again over TCP) if it came over UDP larger than the EDNS0
// size we advertise; other replies are ignored and reading goes on until the
// attempt's deadline: Timeout from now, or ctx's deadline if sooner. If the
// attempt ends without a usable reply after unusable ones, its error is a
// *badReplies that says which came first.
func (r *Resolver) roundTrip(ctx context.Context, network, server string, q *dns.Msg) (resp *dns.Msg, err error) {
	a := r.metrics.begin(server, q)
	defer func() { a.end(resp, err) }()
	deadline := time.Now().Add(r.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := net.Dialer{Deadline: deadline}
	c, err := dialer.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(longAgo) })
	defer stop()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}

	wire, err := q.Pack()
	if err != nil {
		return nil, err
	}
	udp := network == "udp"
	if !udp {
		wire = append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire))), wire...)
	}
	r.stats.upstream.Add(1)
	tallyOf(ctx).each(func(t *Tally) { t.Upstream.Add(1) })
	if _, err := c.Write(wire); err != nil {
		return nil, err
	}

	var buf []byte
	if udp {
		// miekg/dns copies what it unpacks, so the buffer can be reused.
		bp := r.udpBufs.Get().(*[]byte)
		defer r.udpBufs.Put(bp)
		buf = *bp
	}
	var bad Cause // the first unusable reply: CauseMalformed or CauseMismatch
	ended := func(err error) error {
		if bad != "" {
			return &badReplies{why: bad, err: err}
		}
		return err
	}
	for {
		var p []byte
		if udp {
			n, err := c.Read(buf)
			if err != nil {
				return nil, ended(err)
			}
			p = buf[:n]
		} else {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return nil, ended(err)
			}
			p = make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, p); err != nil {
				return nil, ended(err)
			}
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(p); err != nil {
			a.malformed()
			// The header is unpacked first. A truncated reply may not unpack
			// in full and is still good enough to go to TCP.
			if len(p) >= 12 && resp.Truncated && udp && resp.Id == q.Id && resp.Response {
				return &dns.Msg{MsgHdr: resp.MsgHdr}, nil
			}
			if bad == "" {
				bad = CauseMalformed
			}
			continue
		}
		if isReplyTo(q, resp) {
			if udp && len(p) > ednsSize {
				// Larger than we said we take: it came past a server that
				// ignores EDNS0, likely in IP fragments, which anyone can
				// forge. Ask again over TCP, as for a truncated answer.
				resp.Truncated = true
				return &dns.Msg{MsgHdr: resp.MsgHdr}, nil
			}
			return resp, nil
		}
		if bad == "" {
			bad = CauseMismatch
		}
	}
}

// isReplyTo reports whether resp answers q (RFC 5452 section 9.1).
func isReplyTo(q, resp *dns.Msg) bool {
	if resp.Id != q.Id || !resp.Response || resp.Opcode != q.Opcode || len(resp.Question) != 1 {
		return false
	}
	a, b := resp.Question[0], q.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
