package explore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/explore"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// benchRun counts BenchmarkExplore's runs: each explores with seeds of
// its own, so -count N gives N independent samples.
var benchRun atomic.Uint64

// BenchmarkExplore explores every mutant of the gallery with a budget of
// 40 histories and reports how many it finds, and the median histories
// and seconds to the first violation of those found (per mutant in the
// log).
func BenchmarkExplore(b *testing.B) {
	const budget, atOnce = 40, 4
	for b.Loop() {
		run := benchRun.Add(1)
		all := mutants.All()
		type result struct {
			histories int
			seconds   float64
			found     bool
			err       error
		}
		results := make([]result, len(all))
		var wg sync.WaitGroup
		sem := make(chan struct{}, atOnce)
		for i, m := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				cfg, stop, err := benchListener(b, string(m.Name))
				if err != nil {
					results[i].err = err
					return
				}
				defer stop()
				start := time.Now()
				rep, err := explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: 1000 + run, Histories: budget, MaxShrinks: 1})
				if err == nil && rep.Aborted != "" {
					err = fmt.Errorf("aborted: %s", rep.Aborted)
				}
				results[i] = result{histories: rep.Histories, seconds: time.Since(start).Seconds(), found: rep.Violation != nil, err: err}
			}()
		}
		wg.Wait()
		var hs, ss []float64
		var table strings.Builder
		for i, m := range all {
			r := results[i]
			if r.err != nil {
				b.Fatalf("%s: %v", m.Name, r.err)
			}
			status := "not found"
			if r.found {
				status = fmt.Sprintf("found after %d histories, %.1fs", r.histories, r.seconds)
				hs, ss = append(hs, float64(r.histories)), append(ss, r.seconds)
			}
			fmt.Fprintf(&table, "%-24s %s\n", m.Name, status)
		}
		// Printed, not logged: the testing package cuts long logs short.
		fmt.Printf("explore against the mutant gallery (budget %d histories, seed %d):\n%s", budget, 1000+run, table.String())
		b.ReportMetric(float64(len(hs)), "mutants_found")
		b.ReportMetric(float64(len(all)), "mutants")
		if len(hs) > 0 {
			b.ReportMetric(median(hs), "median_histories")
			b.ReportMetric(median(ss), "median_seconds")
		}
	}
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// benchListener starts the reference listener built as mutant.
func benchListener(b *testing.B, mutant string) (conformance.Config, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return conformance.Config{}, nil, err
	}
	l, err := listener.New(listener.Config{
		VerifyURL:      "http://" + ln.Addr().String() + "/cgi-bin/webscr",
		ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
		Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}},
		DB:        filepath.Join(b.TempDir(), mutant+".db"),
		Verify:    listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20, Timeout: 10 * time.Second},
		PayDo:     listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		Mutant:    mutant, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return conformance.Config{}, nil, err
	}
	if err := l.Start(context.Background()); err != nil {
		return conformance.Config{}, nil, err
	}
	srv := httptest.NewServer(l.Handler())
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL+"/ipn/paydo", srv.URL
	cfg.AckTimeout, cfg.PostbackWait, cfg.Settle = 2*time.Second, time.Second, 10*time.Second
	return cfg, func() { srv.Close(); l.Close() }, nil
}
