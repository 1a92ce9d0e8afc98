package main

import (
	"fmt"
	"io"

	"github.com/heloguard/heloguard/config"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", "validate [--config FILE]", stderr)
	cfgPath := fs.String("config", "", "config `file` to check (default: the built-in defaults)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 1 && *cfgPath == "" {
		*cfgPath = pos[0]
	} else if len(pos) > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	name := cfg.File
	if name == "" {
		name = "built-in defaults"
	}
	// What serve would refuse on this host, and what is probably a mistake.
	errs, warnings := cfg.CheckHost()
	for _, w := range warnings {
		fmt.Fprintf(stdout, "%s: warning: %s\n", name, w)
	}
	if len(errs) > 0 {
		fmt.Fprintln(stderr, errs)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok (%d rules, listen %v, mode %s, reject at %s)\n", name, len(cfg.Rules), cfg.Listen, cfg.Mode, cfg.RejectAt)
	return exitOK
}
