package paydo

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are PayDo's figures: status lookups, by whether the
// transaction was found.
type Metrics struct {
	lookups *prometheus.CounterVec
}

// NewMetrics makes PayDo's collectors and registers them with reg (the
// emulator's, which labels them with its account).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ipnlab_paydo_lookups_total", Help: "PayDo status lookups, by whether the transaction was found.",
	}, []string{"found"})}
	if err := reg.Register(m.lookups); err != nil {
		return nil, fmt.Errorf("paydo metrics: %w", err)
	}
	return m, nil
}

// Lookup counts a status lookup.
func (m *Metrics) Lookup(l Lookup) {
	m.lookups.WithLabelValues(strconv.FormatBool(l.Found)).Inc()
}
