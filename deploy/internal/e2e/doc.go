// Package e2e holds what the end-to-end tests under deploy/ share, one topic
// per file:
//
//   - gate.go: the gate that skips them when the MTA tools are missing, or
//     fails them under HELOGUARD_E2E=1 (Strict, SkipOrFail, Tool, RequireRoot);
//   - dns.go: the scenario world served by dnsworld (StartDNS), and temporary
//     directories the MTAs' users can traverse (WorldDir);
//   - build.go: heloguard built from this tree, with the race detector when
//     the test has it (Build; race_on.go and race_off.go set RaceEnabled);
//   - net.go: ports and polling (FreePort, WaitFor, WaitPort);
//   - daemon.go: the daemon's config and the daemon run as a real process
//     (Config, StartDaemon, and Daemon's Signal, Reload, Stop...);
//   - decisions.go: its decision log and the policy's own answer to compare
//     with (Decision, Decisions, DecisionsFor, WaitDecision, Check);
//   - metrics.go: its metrics page, as Prometheus scrapes it (Scrape);
//   - milterwire.go: a proxy between an MTA and the daemon's unix socket that
//     records the milter packets both ways (RecordMilter, MilterConn);
//
// and, for the tests through a real MTA, swaks sessions and their transcripts
// (swaks.go), delivered messages (mail.go) and the one-decision-per-session
// check (runs.go).
//
// Everything listens on and talks to 127.0.0.1 only, or unix sockets.
package e2e
