package policy

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts the evidence cache's work, for Prometheus. One Metrics serves
// every Engine a daemon builds (a reload builds a new one, with an empty
// cache), so its counters never go back.
type Metrics struct {
	hits   prometheus.Counter
	misses prometheus.Counter
}

// NewMetrics registers the evidence cache's metrics in reg. engine returns
// the engine deciding now: its cache's entries are reported.
func NewMetrics(reg prometheus.Registerer, engine func() *Engine) *Metrics {
	m := &Metrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heloguard_evidence_cache_hits_total",
			Help: "Decisions whose evidence came from the evidence cache (no DNS).",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heloguard_evidence_cache_misses_total",
			Help: "Decisions that found no fresh evidence in the evidence cache and gathered it.",
		}),
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "heloguard_evidence_cache_entries",
		Help: "(IP, HELO) pairs in the evidence cache.",
	}, func() float64 {
		if e := engine(); e != nil && e.evcache != nil {
			return float64(e.evcache.lru.Len())
		}
		return 0
	})
	reg.MustRegister(m.hits, m.misses, entries)
	return m
}

func (m *Metrics) hit() {
	if m != nil {
		m.hits.Inc()
	}
}

func (m *Metrics) miss() {
	if m != nil {
		m.misses.Inc()
	}
}
