package emulator_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

// BenchmarkJournal sends the same messages through an emulator in memory,
// through one journaling to SQLite and, when IPNLAB_TEST_POSTGRES names a
// database, through one journaling to PostgreSQL, in the same run, to a
// listener that only acks, and reports each rate, their ratios (what the
// journal costs a shared emulator) and the commits per message (how well
// the journal writer groups them).
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
	pg := os.Getenv("IPNLAB_TEST_POSTGRES")
	if pg == "" {
		b.Log("IPNLAB_TEST_POSTGRES is not set: no PostgreSQL figures")
	}
	rate := func(store string, manual bool) float64 {
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
		var j journal.Journal
		var err error
		switch store {
		case "sqlite":
			j, err = sqlitejournal.Open(filepath.Join(b.TempDir(), "bench.db"))
		case "postgres":
			j, err = pgjournal.Open(context.Background(), benchSchema(b, pg))
		}
		if err != nil {
			b.Fatal(err)
		}
		if j != nil {
			defer j.Close()
			if store == "sqlite" {
				cfg.Journal = &counted{Journal: j, commits: &commits}
			} else {
				cfg.Journal = j
			}
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
	stores := []string{"memory", "sqlite"}
	if pg != "" {
		stores = append(stores, "postgres")
	}
	rounds := func(n int, manual bool) map[string]float64 {
		got := map[string][]float64{}
		for range n {
			for _, st := range stores {
				got[st] = append(got[st], rate(st, manual))
			}
		}
		out := map[string]float64{}
		for st, xs := range got {
			out[st] = median(xs)
		}
		return out
	}
	for b.Loop() {
		commits.Store(0)
		r := rounds(3, false)
		b.ReportMetric(float64(commits.Swap(0))/(3*messages), "commits/ipn")
		b.ReportMetric(r["memory"], "memory_ipn/s")
		b.ReportMetric(r["sqlite"], "journaled_ipn/s")
		b.ReportMetric(r["sqlite"]/r["memory"], "ratio")
		if pg != "" {
			b.ReportMetric(r["postgres"], "postgres_ipn/s")
			b.ReportMetric(r["postgres"]/r["memory"], "postgres_ratio")
		}
		r = rounds(1, true)
		b.ReportMetric(r["sqlite"]/r["memory"], "manual_ratio")
	}
}

// benchSchema is a new schema of the database at base, dropped when the
// benchmark ends, and base's URL pointed at it.
func benchSchema(b *testing.B, base string) string {
	dsn, drop, err := testenv.NewSchema(base, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(drop)
	return dsn
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
