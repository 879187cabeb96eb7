package paypal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the verifier's figures: postbacks by verdict and deciding
// rule, and the faults injected into its answers.
type Metrics struct {
	postbacks *prometheus.CounterVec
	faults    *prometheus.CounterVec
}

// NewMetrics makes the verifier's collectors and registers them with reg
// (the emulator's, which labels them with its account).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		postbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ipnlab_postbacks_total", Help: "Postbacks answered by the verifier, by verdict and by the rule that decided an INVALID (none for VERIFIED).",
		}, []string{"verdict", "rule"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ipnlab_verifier_faults_total", Help: "Postbacks answered with an injected fault (status500, slow, ...), by kind.",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.postbacks, m.faults} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("paypal metrics: %w", err)
		}
	}
	return m, nil
}

// Postback counts a postback by its verdict, and its fault if it had one.
func (m *Metrics) Postback(p PostbackRecord) {
	rule := string(p.Verdict.Rule)
	if rule == "" {
		rule = "none"
	}
	m.postbacks.WithLabelValues(string(p.Verdict.Result), rule).Inc()
	if p.Fault != "" {
		m.faults.WithLabelValues(string(p.Fault)).Inc()
	}
}
