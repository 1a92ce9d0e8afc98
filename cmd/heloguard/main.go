// Command heloguard is an SMTP policy milter that checks forward-confirmed reverse
// DNS and the HELO name, and the operator's tools around it.
//
//	heloguard [serve] [--config F]        run the milter daemon
//	heloguard check [--config F] [--json] IP HELO
//	heloguard spf [--config F] [--json] IP DOMAIN [--sender ADDR] [--helo NAME]
//	heloguard test [--config F] FILE...
//	heloguard validate [--config F]
//	heloguard replay [--config F] LOG
//	heloguard postfix-config [--socket SPEC] [--config F] [-c DIR]
//	heloguard bench [--target NAME=SPEC]... [--headers N,...] [--json]
//	heloguard version                      (also: heloguard --version)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `heloguard — reverse-DNS and HELO policy milter for Postfix and Sendmail

usage:
  heloguard [serve] [--config FILE]                 run the milter daemon
  heloguard check [--config FILE] [--json] IP HELO  decide one client on live DNS, explained
  heloguard spf [--config FILE] [--json] IP DOMAIN [--sender ADDR] [--helo NAME]
                                                    RFC 7208 check_host with a trace
  heloguard test [--config FILE] FILE...            run scenario files against the rules
  heloguard validate [--config FILE]                check a config file
  heloguard replay [--config FILE] [--json] LOG...  what would change with other rules (- = stdin; gzip, journalctl -o json)
  heloguard replay --summary [--json] LOG...        decisions by rule, most refused domains, DNS temperrors
  heloguard postfix-config [--socket SPEC] [--config FILE] [-c DIR]
                                                    print the postconf commands that add heloguard
                                                    to Postfix, keeping its other milters
  heloguard bench [--target NAME=SPEC]... [--headers N,...] [--json]
                                                    load milters as Postfix does, beside do-nothing
                                                    ones (loopback and unix sockets only)
  heloguard version                                 version, commit and Go version (also --version)

Run "heloguard COMMAND -h" for a command's flags.
`

// exit codes
const (
	exitOK     = 0
	exitFailed = 1 // a test failed, a check found problems
	exitUsage  = 2 // bad command line or config
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		cmd = "help" // the overview, not serve's flags
	} else if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	}
	switch cmd {
	case "serve":
		return cmdServe(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "spf":
		return cmdSPF(args, stdout, stderr)
	case "test":
		return cmdTest(args, stdout, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "replay":
		return cmdReplay(args, stdin, stdout, stderr)
	case "postfix-config":
		return cmdPostfixConfig(args, stdout, stderr)
	case "version":
		return cmdVersion(args, stdout, stderr)
	case "bench":
		return cmdBench(args, stdout, stderr)
	case "man": // not in the usage: the Debian package's build runs it
		return cmdMan(args, stdout, stderr)
	case "bench-milter": // not in the usage: bench runs it
		return cmdBenchMilter(args, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "heloguard: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, which it returns in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlags makes a FlagSet that prints its usage to stderr and reports -h as
// a clean exit.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if c, ok := stderr.(*flagCollector); ok { // heloguard man reads the flags
		c.fs, c.synopsis = fs, synopsis
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: heloguard %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// flagExit maps a flag parsing error to an exit code.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}
