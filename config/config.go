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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	ReadTimeout     time.Duration // a milter socket's idle time between commands
	PacketTimeout   time.Duration // for a packet to arrive whole, and the first after connecting
	LogFile         string        // "stderr", "stdout" or a path
	DrainTimeout    time.Duration // on SIGTERM

	// UnknownClientAction is the decision on a client the MTA gives no usable
	// address for (accept, tempfail or reject); a local (unix socket) client is
	// not one.
	UnknownClientAction policy.Action
	// PrivateClientAction is the decision on a client whose address public
	// DNS cannot speak for (policy.Unroutable): accept, tempfail or reject.
	PrivateClientAction policy.Action

	LocalNames      []string
	LocalAddresses  []netip.Addr
	TrustedNetworks []netip.Prefix
	GenericTokens   []string

	DNS dnscache.Config
	// DNSProbes are the lookups that must succeed on a truthful resolver
	// (dns.probes; policy.DefaultProbes). An empty list turns probing off.
	DNSProbes []policy.Probe
	// IgnoreBrokenResolver is dns.on_broken_resolver: ignore. By default
	// (tempfail) a reject that rests on DNS is deferred while the resolver
	// looks broken.
	IgnoreBrokenResolver bool
	EvidenceCacheSize    int // recent (IP, HELO) evidence kept until its DNS answers expire; 0 = off

	Metrics Metrics // where Prometheus scrapes /metrics; off by default

	// Rules is the complete ordered list the engine runs: allowlist, then
	// extra_rules, then the built-in (or replacing) set with overrides applied.
	Rules []policy.Rule

	keyAt map[string][2]int // line and column of each top-level key's value, for CheckHost
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
		ReadTimeout:       2 * time.Hour,
		PacketTimeout:     30 * time.Second,
		LogFile:           "stderr",
		DrainTimeout:      30 * time.Second,
		TrustedNetworks:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		DNSProbes:         policy.DefaultProbes(),
		GenericTokens:     policy.DefaultGenericTokens(),
		DNS:               dnscache.Config{Timeout: 2 * time.Second, CacheSize: 100000},
		EvidenceCacheSize: 10000,

		UnknownClientAction: policy.ActionTempfail,
		PrivateClientAction: policy.ActionTempfail,
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
		return nil, Errors{yamlError(p.file, data, err)}
	}
	// A second document would be ignored silently: say so instead.
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		if err != nil {
			return nil, Errors{yamlError(p.file, data, err)}
		}
		if len(more.Content) > 0 && !(more.Content[0].Kind == yaml.ScalarNode && more.Content[0].Tag == "!!null") {
			p.errorf(&more, "the config must be one YAML document; remove this \"---\" and what follows, or merge it into the first")
		}
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

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner): for these, yaml.v3 v3.0.1 reports a line numbered from 0, and none
// at all for the first line.
var yamlParserErrors = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into an Error
// with the line where the problem is (or where the construct that holds it
// starts), so that an operator is sent to the right place.
func yamlError(file string, data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 0, 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				line, msg = v, after
			}
		}
	}
	switch {
	case slices.Contains(yamlParserErrors, msg):
		line++ // counted from 0
	case line > 0:
	case strings.HasPrefix(msg, "unknown anchor '"):
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
		if i := bytes.Index(data, []byte("*"+name)); i >= 0 {
			line, col = position(data, i)
		}
	default:
		// Reader errors (bad UTF-8, control characters) carry no position:
		// find the first byte YAML does not allow.
		if i := badYAMLByte(data); i >= 0 {
			line, col = position(data, i)
		} else {
			line = 1 // both of yaml.v3's marks were on the first line
		}
	}
	if line == 0 {
		line = 1
	}
	return &Error{File: file, Line: line, Column: col, Msg: "YAML syntax: " + msg}
}

// position is the 1-based line and column (in characters) of byte offset i.
func position(data []byte, i int) (line, col int) {
	before := data[:i]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

// badYAMLByte is the offset of the first byte that is not valid UTF-8 or is a
// character outside YAML's printable set (YAML 1.2 section 5.1), or -1.
func badYAMLByte(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		ok := r == '\t' || r == '\n' || r == '\r' || 0x20 <= r && r <= 0x7e || r == 0x85 ||
			0xa0 <= r && r <= 0xd7ff || 0xe000 <= r && r <= 0xfffd || 0x10000 <= r && r <= 0x10ffff
		if r == utf8.RuneError && n <= 1 || !ok {
			return i
		}
		i += n
	}
	return -1
}

func (p *parser) top(n *yaml.Node, c *Config, rs *ruleSpec) {
	c.keyAt = map[string][2]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		c.keyAt[n.Content[i].Value] = [2]int{n.Content[i+1].Line, n.Content[i+1].Column}
	}
	p.mapping(n, "the config", p.topKeys(c, rs))
}

// Keys lists every key of the config file, the dns section's as dns.KEY,
// sorted: what heloguard.yaml(5) must document.
func Keys() []string {
	p := &parser{}
	var keys []string
	for k := range p.topKeys(&Config{}, &ruleSpec{}) {
		keys = append(keys, k)
	}
	for k := range p.dnsKeys(&Config{}) {
		keys = append(keys, "dns."+k)
	}
	slices.Sort(keys)
	return keys
}

// topKeys maps each top-level key to what parses its value into c or rs.
func (p *parser) topKeys(c *Config, rs *ruleSpec) map[string]func(*yaml.Node) {
	return map[string]func(*yaml.Node){
		"listen":       func(v *yaml.Node) { p.listen(v, &c.Listen) },
		"socket_mode":  func(v *yaml.Node) { p.fileMode(v, &c.SocketMode) },
		"socket_group": func(v *yaml.Node) { p.str(v, "socket_group", &c.SocketGroup) },
		"mode":         func(v *yaml.Node) { p.oneOf(v, "mode", []string{ModeEnforce, ModeMonitor}, &c.Mode) },
		"reject_at": func(v *yaml.Node) {
			p.oneOf(v, "reject_at", []string{StageConnect, StageHelo, StageMail, StageRcpt}, &c.RejectAt)
		},
		"exempt_recipients": func(v *yaml.Node) { p.strs(v, "exempt_recipients", &c.ExemptRcpts) },
		"authserv_id": func(v *yaml.Node) {
			p.str(v, "authserv_id", &c.AuthservID)
			// It is written as a token in our Authentication-Results: anything
			// else would break the header (RFC 8601 2.2, RFC 2045 token).
			if !isToken(c.AuthservID) {
				p.errorf(v, "authserv_id %q must be a host name such as mx.example.net (no spaces, quotes, ';', '=', '/' or other specials)", c.AuthservID)
			}
		},
		"decision_timeout": func(v *yaml.Node) {
			p.duration(v, "decision_timeout", &c.DecisionTimeout)
			// The MTA must not time out before we answer: Postfix waits 30 s
			// (milter_command_timeout), Sendmail 10 s (T=R:10s).
			if c.DecisionTimeout >= 30*time.Second {
				p.errorf(v, "decision_timeout must be below Postfix's milter_command_timeout of 30s (and best below Sendmail's 10s)")
			}
		},
		"unknown_client_action": func(v *yaml.Node) { p.verdictAction(v, "unknown_client_action", &c.UnknownClientAction) },
		"private_client_action": func(v *yaml.Node) { p.verdictAction(v, "private_client_action", &c.PrivateClientAction) },
		"timeout_action":        func(v *yaml.Node) { p.action(v, "timeout_action", &c.TimeoutAction) },
		"max_sessions":          func(v *yaml.Node) { p.integer(v, "max_sessions", 1, &c.MaxSessions) },
		"read_timeout":          func(v *yaml.Node) { p.duration(v, "read_timeout", &c.ReadTimeout) },
		"packet_timeout":        func(v *yaml.Node) { p.duration(v, "packet_timeout", &c.PacketTimeout) },
		"drain_timeout":         func(v *yaml.Node) { p.duration(v, "drain_timeout", &c.DrainTimeout) },
		"log":                   func(v *yaml.Node) { p.str(v, "log", &c.LogFile) },
		"local_names":           func(v *yaml.Node) { p.strs(v, "local_names", &c.LocalNames) },
		"local_addresses":       func(v *yaml.Node) { p.addrs(v, "local_addresses", &c.LocalAddresses) },
		"trusted_networks":      func(v *yaml.Node) { p.prefixes(v, "trusted_networks", &c.TrustedNetworks) },
		"generic_tokens":        func(v *yaml.Node) { p.strs(v, "generic_tokens", &c.GenericTokens) },
		"dns":                   func(v *yaml.Node) { p.dns(v, c) },
		"evidence_cache_size":   func(v *yaml.Node) { p.integer(v, "evidence_cache_size", 0, &c.EvidenceCacheSize) },
		"metrics":               func(v *yaml.Node) { p.metrics(v, &c.Metrics) },
		"allowlist":             func(v *yaml.Node) { rs.allowlist = v },
		"extra_rules":           func(v *yaml.Node) { rs.extra = v },
		"rules":                 func(v *yaml.Node) { rs.replace = v },
		"overrides":             func(v *yaml.Node) { rs.overrides = v },
	}
}

func (p *parser) listen(n *yaml.Node, dst *[]string) {
	var out []string
	before := len(p.errs)
	for _, c := range p.list(n, "listen") {
		if _, _, err := SplitListen(c.Value); err != nil {
			p.errorf(c, "listen: %v", err)
			continue
		}
		out = append(out, c.Value)
	}
	if len(out) == 0 && len(p.errs) == before {
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
	// "0660" as YAML 1.1 writes octal, "0o660" as YAML 1.2 does.
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	v, err := strconv.ParseUint(digits, 8, 32)
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

// verdictAction parses an action the engine applies itself to a client it
// cannot judge: accept, tempfail or reject (no quarantine or tag: there is no
// message to hold or mark before MAIL).
func (p *parser) verdictAction(n *yaml.Node, what string, dst *policy.Action) {
	var s string
	p.oneOf(n, what, []string{string(policy.ActionAccept), string(policy.ActionTempfail), string(policy.ActionReject)}, &s)
	if s != "" {
		*dst = policy.Action(s)
	}
}

func (p *parser) dns(n *yaml.Node, c *Config) {
	p.mapping(n, "dns", p.dnsKeys(c))
}

func (p *parser) dnsKeys(c *Config) map[string]func(*yaml.Node) {
	d := &c.DNS
	return map[string]func(*yaml.Node){
		"probes": func(v *yaml.Node) {
			c.DNSProbes = []policy.Probe{}
			for _, n := range p.list(v, "dns.probes") {
				pr, err := policy.ParseProbe(n.Value)
				if err != nil {
					p.errorf(n, "dns.probes: %v", err)
					continue
				}
				c.DNSProbes = append(c.DNSProbes, pr)
			}
		},
		"on_broken_resolver": func(v *yaml.Node) {
			var s string
			p.oneOf(v, "dns.on_broken_resolver", []string{"tempfail", "ignore"}, &s)
			c.IgnoreBrokenResolver = s == "ignore"
		},
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
	}
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

		UnknownClientAction: c.UnknownClientAction,
		PrivateClientAction: c.PrivateClientAction,

		IgnoreBrokenResolver: c.IgnoreBrokenResolver,
		Probes:               c.DNSProbes,
		EvidenceCacheSize:    c.EvidenceCacheSize,
	}
}

// isToken reports whether s is a non-empty RFC 2045 token: printable ASCII
// without space and tspecials.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}
