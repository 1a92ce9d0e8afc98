package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/heloguard/heloguard/loadgen"
)

// cmdBenchMilter runs a do-nothing reference milter for heloguard bench (not
// in the usage: bench starts it): continue at every event, accept at end of
// message, negotiating exactly the version, actions, protocol flags and
// macros it is given.
func cmdBenchMilter(args []string, stderr io.Writer) int {
	flags := newFlags("bench-milter", "bench-milter --listen SPEC [--version N] [--actions MASK] [--protocol MASK] [--macros SPEC]", stderr)
	listen := flags.String("listen", "", "where to listen: unix:/path or inet:IP:PORT on loopback")
	version := flags.Uint("version", 6, "protocol version to negotiate at most")
	actions := flags.String("actions", "0", "SMFIF_* actions to negotiate: a number or names joined with |")
	protocol := flags.String("protocol", "0", "SMFIP_* protocol flags to negotiate: a number or names joined with |")
	macros := flags.String("macros", "", "macros to request, as STAGE=NAME NAME;STAGE=... (stages connect, helo, mail, rcpt, data, eom, eoh)")
	if err := flags.Parse(args); err != nil {
		return flagExit(err)
	}
	o, err := refOptions(*version, *actions, *protocol, *macros)
	if err == nil && *listen == "" {
		err = errors.New("--listen is required")
	}
	var sock loadgen.Target
	if err == nil {
		sock, err = loadgen.ParseSocket(*listen)
	}
	if err != nil {
		fmt.Fprintf(stderr, "heloguard bench-milter: %v\n", err)
		return exitUsage
	}
	if sock.Network == "unix" {
		if err := os.Remove(sock.Address); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "heloguard bench-milter: %v\n", err)
			return exitFailed
		}
	}
	ln, err := net.Listen(sock.Network, sock.Address)
	if err != nil {
		fmt.Fprintf(stderr, "heloguard bench-milter: %v\n", err)
		return exitFailed
	}
	srv := loadgen.NewRefServer(o)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() { <-sigs; _ = srv.Close() }()
	fmt.Fprintf(stderr, "heloguard bench-milter: listening on %s: v%d actions %s protocol %s\n", *listen, o.Version, o.Actions, o.Protocol)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(stderr, "heloguard bench-milter: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func refOptions(version uint, actions, protocol, macros string) (loadgen.RefOptions, error) {
	var o loadgen.RefOptions
	if version < 2 || version > 6 {
		return o, fmt.Errorf("--version %d: want 2 to 6", version)
	}
	a, err := loadgen.ParseMask(actions, loadgen.ActionFlag)
	if err != nil {
		return o, fmt.Errorf("--actions: %v", err)
	}
	p, err := loadgen.ParseMask(protocol, loadgen.ProtocolFlag)
	if err != nil {
		return o, fmt.Errorf("--protocol: %v", err)
	}
	m, err := loadgen.ParseMacroSpec(macros)
	if err != nil {
		return o, fmt.Errorf("--macros: %v", err)
	}
	return loadgen.RefOptions{Version: uint32(version), Actions: loadgen.Actions(a), Protocol: loadgen.Protocol(p), Macros: m}, nil
}
