package config

import (
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"
)

// Metrics is the metrics section: where Prometheus scrapes heloguard.
type Metrics struct {
	// Listen is the IP:PORT of the HTTP listener that serves /metrics; ""
	// (the default) means no metrics at all.
	Listen string
}

// DefaultMetricsPort is the port the docs and the example config use.
const DefaultMetricsPort = 9894

func (p *parser) metrics(n *yaml.Node, m *Metrics) {
	p.mapping(n, "metrics", map[string]func(*yaml.Node){
		"listen": func(v *yaml.Node) {
			s, ok := p.scalar(v, "metrics.listen")
			if !ok {
				return
			}
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
				p.errorf(v, "metrics.listen: %q is not IP:PORT such as 127.0.0.1:%d or [::1]:%d", s, DefaultMetricsPort, DefaultMetricsPort)
				return
			}
			m.Listen = ap.String()
		},
	})
}

// warnings are the metrics settings that work but are probably not meant: a
// listener that other hosts can reach.
func (m Metrics) warnings() []string {
	if m.Listen == "" {
		return nil
	}
	if ap, err := netip.ParseAddrPort(m.Listen); err == nil && !ap.Addr().IsLoopback() {
		return []string{fmt.Sprintf("metrics.listen %s is not a loopback address: anyone who reaches it can read the metrics (rules, decision counts, DNS servers); firewall it or scrape through a proxy", m.Listen)}
	}
	return nil
}
