// Package loadgen is a Postfix-shaped milter client for load: it plays the MTA
// side of the Sendmail milter protocol, versions 2 and 6, as Postfix 3.7's
// milter8.c does, over unix and loopback TCP sockets, for `heloguard bench`.
//
// A session is what an SMTP session of one message makes Postfix send: OPTNEG
// offering version 6 (or 2) with every action and the events of that version;
// CONNECT, HELO, MAIL, two RCPTs, DATA, the header fields, end of header, one
// body chunk, end of message, ABORT, QUIT; before each event a macro packet
// with the macros the milter asked for at that stage, or Postfix's default
// list where it asked for none (milter.c, MILTER_MACRO_EVAL), even when the
// milter asked not to get the event itself. What the milter negotiated is
// honoured: events it does not want are not sent (SMFIP_NO*), replies it will
// not send are not awaited (SMFIP_NR_*), and such packets go out with the next
// one that needs an answer. Postfix's reactions are followed: a decision at
// CONNECT or HELO ends the milter connection, a refusal of both recipients
// means no DATA and no message, SMFIR_SKIP skips the rest of the events of its
// kind, modifications are taken at end of message only. An answer Postfix
// would not take (a malformed reply, a modification that was not negotiated or
// comes early, a skip not negotiated) is an error, counted with a sample.
//
// Targets must be unix sockets or loopback addresses (127.0.0.0/8, ::1):
// ParseSocket refuses anything else, and Run checks again.
//
// # The client: this package's, not github.com/d--j/go-milter's
//
// A load generator must cost less than what it loads, and must send what
// Postfix sends. d--j/go-milter's ClientSession (still selectable: heloguard
// bench --client go-milter) was tried first. Measured with heloguard bench on
// the 2-vCPU VM (client and milters pinned to one CPU each, 20 header fields,
// protocol 6 offered, heloguard answering version 2; three runs of each,
// interleaved, 2026-12-01):
//
//	                                   lean (this package)  d--j/go-milter client
//	client CPU a session, vs heloguard   305-346 us           487-525 us
//	allocations a session, vs heloguard  50                   279
//	heloguard's sessions/s               2393-2610            1609-1737
//	noop-same's sessions/s               1725-1749 (*)        1617-1879
//
// (*) a third run, 652/s, was disturbed by other work on the shared VM.
//
// The library writes every packet in two write(2) calls (length, then body)
// and reads every reply in two read(2) calls, so the milter wakes up twice per
// packet: heloguard, which reads through a buffer, served a third fewer
// sessions under it. It also sends a macro packet only when a macro has a
// value, and none at all for a stage the milter's symbol list leaves out, where
// Postfix sends its defaults: fewer packets than Postfix, which is why the
// do-nothing milter (two reads per packet too) was not slower under it. And it
// refuses a milter that answers a version 2 offer with NOUNKNOWN|NODATA, as
// heloguard does, where Postfix goes on.
//
// So this package writes packets into one buffer (4 KiB, Postfix's
// VSTREAM_BUFSIZE) flushed only when a reply is awaited, reads through a
// buffer, and reuses its buffers from one session to the next. Two other
// attempts were measured and dropped: blocking sockets with plain read(2)
// (one system call per reply instead of read, epoll_wait, read) cost 630-700
// us a session, Go hands its processor to another thread on every blocking
// read; waiting for readability before the first read (syscall.RawConn) loses
// wakeups, since Go's netpoller forgets readiness that arrives before the
// wait. What is left is system calls: against the do-nothing milter the
// client's CPU is about 93% busy when the milter's is 98%, so the milter, not
// the client, sets the pace, but with little to spare on two CPUs.
package loadgen
