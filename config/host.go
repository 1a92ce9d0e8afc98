package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"syscall"

	"github.com/heloguard/heloguard/policy"
)

// CheckHost checks what the config needs from this machine, which a parse
// cannot see: the log file's directory, the socket group, the socket
// directories. `heloguard validate` and `heloguard serve` run the same checks,
// so validate says no where serve would refuse to start. It also returns
// warnings: settings that work but are probably not what the operator wants.
func (c *Config) CheckHost() (errs Errors, warnings []string) {
	if c.LogFile != "stderr" && c.LogFile != "stdout" && c.LogFile != "" {
		if err := writableFile(c.LogFile); err != nil {
			errs = append(errs, c.errorAt("log", "log: %v", err))
		}
	}
	if c.SocketGroup != "" {
		if _, err := user.LookupGroup(c.SocketGroup); err != nil {
			errs = append(errs, c.errorAt("socket_group", "socket_group: no group %q on this host (%v); create it or name another (postfix for Postfix's chroot, smmsp for Sendmail)", c.SocketGroup, err))
		}
	}
	for _, l := range c.Listen {
		network, addr, err := SplitListen(l)
		if err != nil {
			continue // reported by the parse
		}
		switch network {
		case "unix":
			dir := filepath.Dir(addr)
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				errs = append(errs, c.errorAt("listen", "listen %s: directory %s does not exist; create it (the unit's RuntimeDirectory, or /var/spool/postfix/heloguard for Postfix's chroot)", l, dir))
			}
		case "tcp":
			if ap, err := netip.ParseAddrPort(addr); err == nil && !ap.Addr().IsLoopback() {
				warnings = append(warnings, fmt.Sprintf("listen %s is not a loopback address: the milter protocol has no authentication, so anyone who reaches it can ask for decisions and send headers (inet:0.0.0.0 binds every IPv4 and IPv6 address); firewall it or use a unix socket", l))
			}
		}
	}
	if c.SocketMode&0o002 != 0 {
		warnings = append(warnings, fmt.Sprintf("socket_mode %04o lets every local user talk to the milter; 0660 with socket_group is enough for the MTA", c.SocketMode))
	}
	if c.File != "" {
		if fi, err := os.Stat(c.File); err == nil && fi.Mode().Perm()&0o002 != 0 {
			warnings = append(warnings, fmt.Sprintf("%s is writable by every user (mode %04o): anyone on this host can change the rules; chmod o-w", c.File, fi.Mode().Perm()))
		}
	}
	warnings = append(warnings, c.Metrics.warnings()...)
	if r, ok := acceptsAll(c.Rules); ok {
		warnings = append(warnings, r)
	}
	return errs, warnings
}

// acceptsAll says whether the rules let every client through before any rule
// could refuse one: an empty rule list, or an accepting rule with no condition
// ahead of every refusing rule.
func acceptsAll(rules []policy.Rule) (string, bool) {
	for _, r := range rules {
		if r.Monitor {
			continue
		}
		if r.Action.Refuses() || r.Action == policy.ActionQuarantine {
			return "", false
		}
		if r.Match.Always() {
			return fmt.Sprintf("rule %s (%s) accepts every client before any rule can refuse one: heloguard will refuse nothing", r.Name, r.Source), true
		}
	}
	return "no rule refuses anything (rules: is empty or every refusal is monitor-only): heloguard will refuse nothing", true
}

// writableFile checks that path can be opened for appending: its directory
// exists, and the file, if it exists, is a writable regular file.
func writableFile(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("directory %s does not exist; create it (owned by the heloguard user)", dir)
	}
	fi, err = os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if syscall.Access(dir, 2) != nil { // W_OK
			return fmt.Errorf("cannot create %s: directory %s is not writable by this user", path, dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if syscall.Access(path, 2) != nil {
		return fmt.Errorf("%s is not writable by this user", path)
	}
	return nil
}

// errorAt is an error positioned at a top-level key of the file, if it was
// written there.
func (c *Config) errorAt(key, format string, args ...any) *Error {
	e := &Error{File: c.File, Msg: fmt.Sprintf(format, args...)}
	if e.File == "" {
		e.File = "(defaults)"
	}
	if p, ok := c.keyAt[key]; ok {
		e.Line, e.Column = p[0], p[1]
	}
	return e
}
