package emulator_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
)

// BenchmarkJournal sends the same messages through an emulator in memory
// and through one journaling to SQLite, in the same run, to a listener
// that only acks, and reports each rate, their ratio (what the journal
// costs a shared emulator) and the disk commits per message (how well the
// journal writer groups them).
//
// A shared emulator runs on the real clock: the API answers once the
// message is recorded, and the rate counts until every first delivery is
// acked. On a manual clock the API also waits for the first delivery, so
// one request is two commits in a row: manual_ratio shows that cost.
func BenchmarkJournal(b *testing.B) {
	const messages, workers = 4000, 16
	ack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer ack.Close()
	var commits atomic.Int64
	rate := func(journaled, manual bool) float64 {
		var acked sync.WaitGroup
		acked.Add(messages)
		cfg := emulator.Config{Clock: clock.NewScaled(1), Seed: 1, Observer: emulator.Observer{Delivery: func(ev delivery.Event) {
			if ev.Type == delivery.EventAttempt && ev.Attempt.Acked {
				acked.Done()
			}
		}}}
		if manual {
			cfg.Clock = clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		}
		if journaled {
			j, err := sqlitejournal.Open(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			cfg.Journal = &counted{Journal: j, commits: &commits}
		}
		emu, err := emulator.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer emu.Close()
		jobs := make(chan int)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					if _, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: ack.URL}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		for i := range messages {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		acked.Wait()
		return float64(messages) / time.Since(start).Seconds()
	}
	// Alternating pairs, medians of each: the machine's noise moves both
	// sides of a pair alike.
	pairs := func(n int, manual bool) (memory, journaled float64) {
		var mem, jour []float64
		for range n {
			mem = append(mem, rate(false, manual))
			jour = append(jour, rate(true, manual))
		}
		return median(mem), median(jour)
	}
	for b.Loop() {
		commits.Store(0)
		memory, journaled := pairs(3, false)
		b.ReportMetric(float64(commits.Swap(0))/(3*messages), "commits/ipn")
		b.ReportMetric(memory, "memory_ipn/s")
		b.ReportMetric(journaled, "journaled_ipn/s")
		b.ReportMetric(journaled/memory, "ratio")
		memory, journaled = pairs(1, true)
		b.ReportMetric(journaled/memory, "manual_ratio")
	}
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// counted counts a journal's commits: how well the writer groups them.
type counted struct {
	journal.Journal
	commits *atomic.Int64
}

func (c *counted) Write(entries ...journal.Entry) error {
	c.commits.Add(1)
	return c.Journal.Write(entries...)
}
