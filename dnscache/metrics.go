package dnscache

import (
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one query sent to a server, the outcome label of
// heloguard_dns_upstream_queries_total. They follow the resolver's own
// classification of replies (exchange, netFailure): a lame referral is a
// SERVFAIL, as the resolver takes it.
const (
	OutcomeAnswer    = "answer"    // NOERROR with records in the answer section
	OutcomeNXDomain  = "nxdomain"  // NXDOMAIN
	OutcomeNoData    = "nodata"    // NOERROR without an answer
	OutcomeServFail  = "servfail"  // SERVFAIL, or a lame referral (NOERROR, no answer, neither AA nor RA)
	OutcomeRefused   = "refused"   // REFUSED
	OutcomeTimeout   = "timeout"   // no reply within the attempt's time
	OutcomeTruncated = "truncated" // TC set: over UDP the question is asked again over TCP (counted again)
	OutcomeMalformed = "malformed" // replies came that did not parse and no usable one, or another RCODE (FORMERR, NOTIMP, ...)
	OutcomeNetwork   = "network"   // the exchange failed: connection refused (ICMP unreachable), reset, unreachable network
)

// Outcomes returns every outcome, in a fixed order.
func Outcomes() []string {
	return []string{OutcomeAnswer, OutcomeNXDomain, OutcomeNoData, OutcomeServFail, OutcomeRefused,
		OutcomeTimeout, OutcomeTruncated, OutcomeMalformed, OutcomeNetwork}
}

// queryTypes are the types heloguard asks for (reverse, forward, SPF, MX); the
// type label's series are created for them up front, so that a dashboard has
// zeros rather than nothing.
func queryTypes() []uint16 {
	return []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypePTR, dns.TypeTXT}
}

// Metrics counts what resolvers do, for Prometheus. One Metrics serves every
// Resolver a daemon puts to work over its life (a reload that changes the dns
// section builds a new one), so its counters never go back; the cache size is
// the latest instrumented resolver's.
type Metrics struct {
	queries  *prometheus.CounterVec   // type, outcome
	duration *prometheus.HistogramVec // server
	hits     prometheus.Counter
	misses   prometheus.Counter
	current  atomic.Pointer[Resolver]
}

// NewMetrics registers the resolver's metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heloguard_dns_upstream_queries_total",
			Help: "DNS queries sent to the recursive servers (UDP and TCP attempts, retries included), by query type and outcome.",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "heloguard_dns_upstream_duration_seconds",
			Help:    "Time from sending a DNS query to a recursive server to its reply or failure, by server.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"server"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heloguard_dns_cache_hits_total",
			Help: "DNS lookups answered from heloguard's own cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heloguard_dns_cache_misses_total",
			Help: "DNS lookups not in heloguard's own cache (or expired there).",
		}),
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "heloguard_dns_cache_entries",
		Help: "Entries in heloguard's DNS cache (answers, negative answers and failures).",
	}, func() float64 {
		if r := m.current.Load(); r != nil {
			return float64(r.cache.len())
		}
		return 0
	})
	reg.MustRegister(m.queries, m.duration, m.hits, m.misses, entries, serverState{m})
	for _, t := range queryTypes() {
		for _, o := range Outcomes() {
			m.queries.WithLabelValues(dns.TypeToString[t], o)
		}
	}
	return m
}

// Instrument makes r count its work in m, and m report r's cache. Call it
// before r is put to work; a nil m leaves r uncounted.
func (r *Resolver) Instrument(m *Metrics) {
	r.metrics = m
	if m == nil {
		return
	}
	for _, s := range r.cfg.Servers {
		m.duration.WithLabelValues(s)
	}
	m.current.Store(r)
}

func (m *Metrics) cacheHit() {
	if m != nil {
		m.hits.Inc()
	}
}

func (m *Metrics) cacheMiss() {
	if m != nil {
		m.misses.Inc()
	}
}

// attempt is one query to one server, being counted.
type attempt struct {
	m       *Metrics // nil: not counted
	server  string
	qtype   uint16
	start   time.Time
	garbage bool // a reply came that did not parse
}

// begin starts counting a query to server.
func (m *Metrics) begin(server string, q *dns.Msg) attempt {
	if m == nil {
		return attempt{}
	}
	return attempt{m: m, server: server, qtype: q.Question[0].Qtype, start: time.Now()}
}

// malformed notes a reply that did not parse.
func (a *attempt) malformed() { a.garbage = true }

// end counts the query with what it got: a reply or an error of roundTrip.
func (a *attempt) end(resp *dns.Msg, err error) {
	if a.m == nil {
		return
	}
	a.m.duration.WithLabelValues(a.server).Observe(time.Since(a.start).Seconds())
	t, ok := dns.TypeToString[a.qtype]
	if !ok {
		t = "other"
	}
	a.m.queries.WithLabelValues(t, outcome(resp, err, a.garbage)).Inc()
}

// outcome classifies one query's result as the resolver does.
func outcome(resp *dns.Msg, err error, garbage bool) string {
	switch {
	case garbage && (err != nil || resp == nil):
		return OutcomeMalformed
	case err != nil && netFailure(err, "").kind == kindTimeout:
		return OutcomeTimeout
	case err != nil || resp == nil:
		return OutcomeNetwork
	case resp.Truncated:
		return OutcomeTruncated
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		switch {
		case len(resp.Answer) > 0:
			return OutcomeAnswer
		case !resp.Authoritative && !resp.RecursionAvailable:
			return OutcomeServFail // a lame referral
		}
		return OutcomeNoData
	case dns.RcodeNameError:
		return OutcomeNXDomain
	case dns.RcodeServerFailure:
		return OutcomeServFail
	case dns.RcodeRefused:
		return OutcomeRefused
	}
	return OutcomeMalformed
}

// serverState reports which server the current resolver asks first: the one
// that last gave a usable answer. A server that stays at 0 while another is 1
// has failed (timed out, SERVFAIL, REFUSED) since; it is asked again only when
// the preferred one fails.
type serverState struct{ m *Metrics }

var serverPreferredDesc = prometheus.NewDesc("heloguard_dns_server_preferred",
	"1 for the recursive server asked first (the one that last gave a usable answer), 0 for the others, by server.",
	[]string{"server"}, nil)

func (s serverState) Describe(ch chan<- *prometheus.Desc) { ch <- serverPreferredDesc }

func (s serverState) Collect(ch chan<- prometheus.Metric) {
	r := s.m.current.Load()
	if r == nil {
		return
	}
	first := int(r.preferred.Load())
	for i, srv := range r.cfg.Servers {
		v := 0.0
		if i == first {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(serverPreferredDesc, prometheus.GaugeValue, v, srv)
	}
}
