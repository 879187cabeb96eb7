package emulator_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
)

// BenchmarkJournal sends the same messages through an emulator in memory
// and through one journaling to SQLite, in the same run, to a listener
// that only acks, and reports each rate and their ratio: what the journal
// costs a shared emulator.
func BenchmarkJournal(b *testing.B) {
	const messages, workers = 2000, 16
	ack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer ack.Close()
	rate := func(journaled bool) float64 {
		cfg := emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), Seed: 1}
		if journaled {
			j, err := sqlitejournal.Open(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			cfg.Journal = j
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
		return float64(messages) / time.Since(start).Seconds()
	}
	for b.Loop() {
		memory := rate(false)
		journaled := rate(true)
		b.ReportMetric(memory, "memory_ipn/s")
		b.ReportMetric(journaled, "journaled_ipn/s")
		b.ReportMetric(journaled/memory, "ratio")
	}
}
