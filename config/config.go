// Package config reads heloguard's YAML configuration once into typed structs.
// Parsing is strict: an unknown key, a bad value, a bad CIDR, pattern or action is
// an error that names file:line:column and what is allowed. No file at all gives
// working defaults.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"gopkg.in/yaml.v3"
)

//go:embed rules.yaml
var builtinRules []byte

// BuiltinRulesYAML is the text of the built-in rule set, as shipped.
func BuiltinRulesYAML() []byte { return bytes.Clone(builtinRules) }

// Stages at which a refusal can be delivered to the client.
const (
	StageConnect = "connect"
	StageHelo    = "helo"
	StageMail    = "mail"
	StageRcpt    = "rcpt"
)

// Modes.
const (
	ModeEnforce = "enforce" // refusals are sent to the client
	ModeMonitor = "monitor" // everything is decided and logged, nothing refused
)

// Config is a whole, validated configuration.
type Config struct {
	File string // where it came from; "" for built-in defaults

	Listen          []string      // "unix:/path" or "inet:host:port"
	SocketMode      os.FileMode   // of unix sockets
	SocketGroup     string        // of unix sockets; "" leaves it
	Mode            string        // enforce or monitor
	RejectAt        string        // connect, helo, mail or rcpt
	ExemptRcpts     []string      // local parts always accepted (RFC 5321 4.5.1)
	AuthservID      string        // of Authentication-Results
	DecisionTimeout time.Duration // budget for one decision's DNS
	TimeoutAction   policy.Action // decision when the budget runs out
	MaxSessions     int           // concurrent milter sessions
	ReadTimeout     time.Duration // per read on a milter socket
	LogFile         string        // "stderr", "stdout" or a path
	DrainTimeout    time.Duration // on SIGTERM

	LocalNames      []string
	LocalAddresses  []netip.Addr
	TrustedNetworks []netip.Prefix
	GenericTokens   []string

	DNS               dnscache.Config
	EvidenceCacheSize int // recent (IP, HELO) evidence kept until its DNS answers expire; 0 = off

	// Rules is the complete ordered list the engine runs: allowlist, then
	// extra_rules, then the built-in (or replacing) set with overrides applied.
	Rules []policy.Rule
}

// DefaultListen is where the daemon listens with no config.
const DefaultListen = "inet:127.0.0.1:8894"

// Default returns the configuration used when there is no file.
func Default() *Config {
	c, err := Parse("", nil)
	if err != nil {
		panic("built-in config does not parse: " + err.Error()) // a build defect, caught by tests
	}
	return c
}

func defaults() *Config {
	host, _ := os.Hostname()
	c := &Config{
		Listen:            []string{DefaultListen},
		SocketMode:        0o660,
		Mode:              ModeEnforce,
		RejectAt:          StageRcpt,
		ExemptRcpts:       []string{"postmaster", "abuse"},
		AuthservID:        host,
		DecisionTimeout:   8 * time.Second,
		TimeoutAction:     policy.ActionTempfail,
		MaxSessions:       1000,
		ReadTimeout:       5 * time.Minute,
		LogFile:           "stderr",
		DrainTimeout:      30 * time.Second,
		TrustedNetworks:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		GenericTokens:     policy.DefaultGenericTokens(),
		DNS:               dnscache.Config{Timeout: 2 * time.Second, CacheSize: 100000},
		EvidenceCacheSize: 10000,
	}
	if host != "" {
		c.LocalNames = []string{host}
	}
	return c
}

// Load reads and validates a config file; path "" gives the defaults.
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse("", nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist (run without --config for the built-in defaults)", path)
		}
		return nil, fmt.Errorf("config file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates config text; file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := defaults()
	c.File = file
	p := &parser{file: file}
	if file == "" {
		p.file = "(defaults)"
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, Errors{yamlError(p.file, err)}
	}
	var top *yaml.Node
	if len(doc.Content) > 0 {
		top = doc.Content[0]
	}
	var rs ruleSpec
	if top != nil && !(top.Kind == yaml.ScalarNode && top.Tag == "!!null") {
		p.top(top, c, &rs)
	}
	rules := p.buildRules(c, &rs)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	c.Rules = rules
	return c, nil
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into an Error.
func yamlError(file string, err error) *Error {
	msg := err.Error()
	var line int
	if n, _ := fmt.Sscanf(msg, "yaml: line %d:", &line); n == 1 {
		if i := bytes.IndexByte([]byte(msg), ':'); i >= 0 {
			rest := msg[len(fmt.Sprintf("yaml: line %d:", line)):]
			return &Error{File: file, Line: line, Column: 1, Msg: "YAML syntax:" + rest}
		}
	}
	return &Error{File: file, Msg: msg}
}

func (p *parser) top(n *yaml.Node, c *Config, rs *ruleSpec) {
	p.mapping(n, "the config", map[string]func(*yaml.Node){
		"listen":       func(v *yaml.Node) { p.listen(v, &c.Listen) },
		"socket_mode":  func(v *yaml.Node) { p.fileMode(v, &c.SocketMode) },
		"socket_group": func(v *yaml.Node) { p.str(v, "socket_group", &c.SocketGroup) },
		"mode":         func(v *yaml.Node) { p.oneOf(v, "mode", []string{ModeEnforce, ModeMonitor}, &c.Mode) },
		"reject_at": func(v *yaml.Node) {
			p.oneOf(v, "reject_at", []string{StageConnect, StageHelo, StageMail, StageRcpt}, &c.RejectAt)
		},
		"exempt_recipients": func(v *yaml.Node) { p.strs(v, "exempt_recipients", &c.ExemptRcpts) },
		"authserv_id":       func(v *yaml.Node) { p.str(v, "authserv_id", &c.AuthservID) },
		"decision_timeout": func(v *yaml.Node) {
			p.duration(v, "decision_timeout", &c.DecisionTimeout)
			// The MTA must not time out before we answer: Postfix waits 30 s
			// (milter_command_timeout), Sendmail 10 s (T=R:10s).
			if c.DecisionTimeout >= 30*time.Second {
				p.errorf(v, "decision_timeout must be below Postfix's milter_command_timeout of 30s (and best below Sendmail's 10s)")
			}
		},
		"timeout_action":   func(v *yaml.Node) { p.action(v, "timeout_action", &c.TimeoutAction) },
		"max_sessions":     func(v *yaml.Node) { p.integer(v, "max_sessions", 1, &c.MaxSessions) },
		"read_timeout":     func(v *yaml.Node) { p.duration(v, "read_timeout", &c.ReadTimeout) },
		"drain_timeout":    func(v *yaml.Node) { p.duration(v, "drain_timeout", &c.DrainTimeout) },
		"log":              func(v *yaml.Node) { p.str(v, "log", &c.LogFile) },
		"local_names":      func(v *yaml.Node) { p.strs(v, "local_names", &c.LocalNames) },
		"local_addresses":  func(v *yaml.Node) { p.addrs(v, "local_addresses", &c.LocalAddresses) },
		"trusted_networks": func(v *yaml.Node) { p.prefixes(v, "trusted_networks", &c.TrustedNetworks) },
		"generic_tokens":   func(v *yaml.Node) { p.strs(v, "generic_tokens", &c.GenericTokens) },
		"dns":              func(v *yaml.Node) { p.dns(v, &c.DNS) },
		"allowlist":        func(v *yaml.Node) { rs.allowlist = v },
		"extra_rules":      func(v *yaml.Node) { rs.extra = v },
		"rules":            func(v *yaml.Node) { rs.replace = v },
		"overrides":        func(v *yaml.Node) { rs.overrides = v },
	})
}

func (p *parser) listen(n *yaml.Node, dst *[]string) {
	var out []string
	for _, c := range p.list(n, "listen") {
		if _, _, err := SplitListen(c.Value); err != nil {
			p.errorf(c, "listen: %v", err)
			continue
		}
		out = append(out, c.Value)
	}
	if len(out) == 0 && len(p.errs) == 0 {
		p.errorf(n, "listen needs at least one address such as inet:127.0.0.1:8894 or unix:/run/heloguard/heloguard.sock")
	}
	*dst = out
}

// SplitListen parses "unix:/path" or "inet:host:port" into a network and an
// address for net.Listen.
func SplitListen(s string) (network, addr string, err error) {
	switch {
	case len(s) > 5 && s[:5] == "unix:":
		return "unix", s[5:], nil
	case len(s) > 6 && s[:6] == "local:":
		return "unix", s[6:], nil
	case len(s) > 5 && s[:5] == "inet:":
		addr := s[5:]
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			return "tcp", ap.String(), nil
		}
		return "", "", fmt.Errorf("%q: expected inet:IP:PORT such as inet:127.0.0.1:8894 or inet:[::1]:8894", s)
	}
	return "", "", fmt.Errorf("%q: expected unix:/path/to.sock or inet:IP:PORT", s)
}

func (p *parser) fileMode(n *yaml.Node, dst *os.FileMode) {
	s, ok := p.scalar(n, "socket_mode")
	if !ok {
		return
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		p.errorf(n, "socket_mode must be an octal mode such as \"0660\", not %q", s)
		return
	}
	*dst = os.FileMode(v)
}

func (p *parser) action(n *yaml.Node, what string, dst *policy.Action) {
	var allowed []string
	for _, a := range policy.Actions() {
		allowed = append(allowed, string(a))
	}
	var s string
	p.oneOf(n, what, allowed, &s)
	if s != "" {
		*dst = policy.Action(s)
	}
}

func (p *parser) dns(n *yaml.Node, d *dnscache.Config) {
	p.mapping(n, "dns", map[string]func(*yaml.Node){
		"servers": func(v *yaml.Node) {
			for _, c := range p.list(v, "dns.servers") {
				if _, err := netip.ParseAddrPort(c.Value); err != nil {
					p.errorf(c, "dns.servers: %q is not IP:PORT such as 127.0.0.1:53 or [::1]:53", c.Value)
					continue
				}
				d.Servers = append(d.Servers, c.Value)
			}
		},
		"timeout":          func(v *yaml.Node) { p.duration(v, "dns.timeout", &d.Timeout) },
		"attempts":         func(v *yaml.Node) { p.integer(v, "dns.attempts", 1, &d.Attempts) },
		"cache_size":       func(v *yaml.Node) { p.integer(v, "dns.cache_size", 1, &d.CacheSize) },
		"min_ttl":          func(v *yaml.Node) { p.duration(v, "dns.min_ttl", &d.MinTTL) },
		"max_ttl":          func(v *yaml.Node) { p.duration(v, "dns.max_ttl", &d.MaxTTL) },
		"max_negative_ttl": func(v *yaml.Node) { p.duration(v, "dns.max_negative_ttl", &d.MaxNegativeTTL) },
		"failure_ttl":      func(v *yaml.Node) { p.duration(v, "dns.failure_ttl", &d.FailureTTL) },
	})
}

// PolicyOptions is the engine configuration this config describes, over r.
func (c *Config) PolicyOptions(r policy.Resolver) policy.Options {
	return policy.Options{
		Resolver:        r,
		Rules:           c.Rules,
		TrustedNetworks: c.TrustedNetworks,
		LocalNames:      append([]string(nil), c.LocalNames...),
		LocalAddresses:  c.LocalAddresses,
		GenericTokens:   c.GenericTokens,
		TimeoutAction:   c.TimeoutAction,

		EvidenceCacheSize: c.EvidenceCacheSize,
	}
}
