package main

import (
	"context"
	"fmt"
	"io"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/policy/scenario"
)

func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", "test [--config FILE] [-v] FILE...", stderr)
	cfgPath := fs.String("config", "", "config `file` whose rules are tested (default: built-in rules)")
	verbose := fs.Bool("v", false, "print every case, not only failures")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "heloguard test: name at least one scenario file")
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "heloguard: %v\n", err)
		return exitUsage
	}
	passed, failed := 0, 0
	for _, path := range files {
		f, err := scenario.Load(path)
		if err != nil {
			fmt.Fprintf(stderr, "heloguard test: %v\n", err)
			return exitUsage
		}
		results, err := f.Run(context.Background(), cfg.PolicyOptions(nil))
		if err != nil {
			fmt.Fprintf(stderr, "heloguard test: %v\n", err)
			return exitUsage
		}
		for _, r := range results {
			d := r.Decision
			if len(r.Problems) == 0 {
				passed++
				if *verbose {
					fmt.Fprintf(stdout, "ok    %s: %s  %s by %s\n", path, r.Case.Name, d.Action, d.Rule)
				}
				continue
			}
			failed++
			fmt.Fprintf(stdout, "FAIL  %s: %s (ip %s, helo %q)\n", path, r.Case.Name, r.Case.IP, r.Case.Helo)
			for _, p := range r.Problems {
				fmt.Fprintf(stdout, "        %s\n", p)
			}
			if s := d.Reply.String(); s != "" {
				fmt.Fprintf(stdout, "        reply: %s\n", s)
			}
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}
