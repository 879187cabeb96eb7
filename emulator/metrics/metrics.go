// Package metrics is the emulator's Prometheus metrics, served at
// /metrics: messages, deliveries and attempt latency by provider, the
// retry queue and the journal's commits. Providers register their own
// figures (PayPal's postback verdicts, PayDo's lookups) through
// Registerer. It is fed by the
// emulator's observer hooks, synchronously and cheaply (a counter or a
// histogram bucket per event); the retry queue is counted at scrape time.
package metrics

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
)

// DefaultAccount labels what a single-account emulator does.
const DefaultAccount = "default"

// Sources are what the metrics read at scrape time.
type Sources struct {
	// Queue counts the retry queue (delivery.Engine.Queue).
	Queue func() delivery.QueueStats
	// Now is the emulator's clock: how overdue the oldest armed attempt
	// is, in the clock's time.
	Now func() time.Time
	// Account labels the emulator's figures (DefaultAccount if empty).
	// An account's emulator in a sandbox leaves the Go runtime's and the
	// process's collectors to the sandbox, which serves them once.
	Account string
}

// Metrics holds the emulator's collectors in a registry of their own (no
// global state: several emulators in one process, as in tests, each have
// theirs). Every ipnlab_ figure carries its account as a label, so a
// sandbox serves its accounts' registries together.
type Metrics struct {
	reg            *prometheus.Registry
	messages       *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	attemptSeconds *prometheus.HistogramVec
	account        prometheus.Labels
	commitSeconds  prometheus.Histogram
	commitRecords  prometheus.Counter
	journalErrors  prometheus.Counter
}

// New makes the collectors and registers them, with Go's runtime and the
// process's own.
func New(src Sources) *Metrics {
	account := src.Account
	if account == "" {
		account = DefaultAccount
	}
	cl := prometheus.Labels{"account": account}
	m := &Metrics{
		reg: prometheus.NewRegistry(), account: cl,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			ConstLabels: cl,
			Name:        "ipnlab_messages_total", Help: "Notifications created, by provider and account.",
		}, []string{"provider"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			ConstLabels: cl,
			Name:        "ipnlab_deliveries_total",
			Help:        "Delivery attempts finished, by provider, account, outcome (acked, refused: an HTTP answer that is no ack, unreachable: no HTTP answer) and HTTP code (none without one).",
		}, []string{"provider", "outcome", "code"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			ConstLabels: cl,
			Name:        "ipnlab_delivery_attempt_seconds", Help: "Wall time of delivery attempts, request to answer or failure.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			ConstLabels: cl,
			Name:        "ipnlab_journal_commit_seconds", Help: "Wall time of the journal's commits (one per batch of records).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		commitRecords: prometheus.NewCounter(prometheus.CounterOpts{
			ConstLabels: cl,
			Name:        "ipnlab_journal_records_total", Help: "Records written to the journal.",
		}),
		journalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			ConstLabels: cl,
			Name:        "ipnlab_journal_errors_total", Help: "Journal commits that failed.",
		}),
	}
	queue := func(f func(delivery.QueueStats) float64) func() float64 {
		return func() float64 {
			if src.Queue == nil {
				return 0
			}
			return f(src.Queue())
		}
	}
	m.reg.MustRegister(m.messages, m.deliveries, m.attemptSeconds,
		m.commitSeconds, m.commitRecords, m.journalErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			ConstLabels: cl,
			Name:        "ipnlab_retry_queue_waiting", Help: "Attempts armed for a later time (first deliveries, retries, lifecycle steps).",
		}, queue(func(q delivery.QueueStats) float64 { return float64(q.Waiting) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			ConstLabels: cl,
			Name:        "ipnlab_retry_queue_running", Help: "Attempts under way.",
		}, queue(func(q delivery.QueueStats) float64 { return float64(q.Running) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			ConstLabels: cl,
			Name:        "ipnlab_messages_held", Help: "Messages held unsent while IPN is off.",
		}, queue(func(q delivery.QueueStats) float64 { return float64(q.Held) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			ConstLabels: cl,
			Name:        "ipnlab_retry_queue_oldest_overdue_seconds",
			Help:        "How long, in the emulator's clock, the earliest armed attempt is past its time (0 when none is): a queue that does not drain shows here.",
		}, queue(func(q delivery.QueueStats) float64 {
			if q.Oldest.IsZero() || src.Now == nil {
				return 0
			}
			return max(0, src.Now().Sub(q.Oldest).Seconds())
		})),
	)
	if src.Account == "" {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry is where the collectors are, for a caller adding its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Delivery counts a delivery event.
func (m *Metrics) Delivery(ev delivery.Event) {
	p := ev.Message.Provider
	switch ev.Type {
	case delivery.EventQueued:
		m.messages.WithLabelValues(p).Inc()
	case delivery.EventAttempt:
		a := ev.Attempt
		m.deliveries.WithLabelValues(p, Outcome(*a), code(a.StatusCode)).Inc()
		m.attemptSeconds.WithLabelValues(p).Observe(a.Duration.Seconds())
	}
}

// Outcome is an attempt's outcome label: acked, refused (an HTTP answer
// that is not an ack) or unreachable (no HTTP answer: refused connection,
// timeout, reset).
func Outcome(a delivery.Attempt) string {
	switch {
	case a.Acked:
		return "acked"
	case a.StatusCode != 0:
		return "refused"
	}
	return "unreachable"
}

func code(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status)
}

// Registerer is where a provider registers figures of its own: each
// carries the emulator's account label, as the emulator's own do.
func (m *Metrics) Registerer() prometheus.Registerer {
	return prometheus.WrapRegistererWith(m.account, m.reg)
}

// Commit counts a journal commit.
func (m *Metrics) Commit(c journal.CommitStats) {
	m.commitSeconds.Observe(c.Took.Seconds())
	m.commitRecords.Add(float64(c.Records))
	if c.Err != nil {
		m.journalErrors.Inc()
	}
}

// Values are the samples of one scrape, by metric name, for a caller
// comparing them with its own accounting (the soak specs do).
type Values map[string][]Sample

// Sample is one counter or gauge sample (a histogram gives its count).
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Parse reads a scrape in the text format.
func Parse(r io.Reader) (Values, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := Values{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := Sample{Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.Labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				s.Value = m.GetCounter().GetValue()
			case m.Gauge != nil:
				s.Value = m.GetGauge().GetValue()
			case m.Histogram != nil:
				s.Value = float64(m.GetHistogram().GetSampleCount())
			case m.Untyped != nil:
				s.Value = m.GetUntyped().GetValue()
			}
			out[name] = append(out[name], s)
		}
	}
	return out, nil
}

// Sum adds the samples of name whose labels include every pair of
// labels ("outcome", "acked", ...).
func (v Values) Sum(name string, labels ...string) float64 {
	total := 0.0
	for _, s := range v[name] {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if s.Labels[labels[i]] != labels[i+1] {
				match = false
				break
			}
		}
		if match {
			total += s.Value
		}
	}
	return total
}
