package replica_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/replica"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

// BenchmarkReplicas sends the same messages through a set of three
// replicas on one PostgreSQL store (IPNLAB_TEST_POSTGRES), in the same
// run: straight to the leader, and spread over the three (two thirds
// forwarded by a standby). Active/standby adds availability, not
// throughput: the ratio is what forwarding costs.
func BenchmarkReplicas(b *testing.B) {
	base := os.Getenv(testenv.PostgresVariable)
	if base == "" {
		b.Skip("IPNLAB_TEST_POSTGRES is not set: no replica figures")
	}
	ack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer ack.Close()
	const messages, workers = 2000, 16
	rate := func(spread bool) float64 {
		dsn, drop, err := testenv.NewSchema(base, "bench_replicas")
		if err != nil {
			b.Fatal(err)
		}
		defer drop()
		var set []*replica.Replica
		for range 3 {
			store, err := pgjournal.Connect(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			r, err := replica.Start(replica.Config{Store: store, Poll: 50 * time.Millisecond,
				Emulator: emulator.Config{Clock: clock.NewScaled(1), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}, "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer r.Shutdown(context.Background()) //nolint:errcheck
			set = append(set, r)
		}
		var leader *replica.Replica
		for leader == nil {
			for _, r := range set {
				if r.Leading() {
					leader = r
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the standbys learn the leader
		var targets []*client.Client
		for _, r := range set {
			if r == leader || spread {
				c, _ := client.New(r.URL())
				targets = append(targets, c)
			}
		}
		jobs := make(chan int)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					if _, err := targets[i%len(targets)].SendPayPal(context.Background(), api.SendRequest{Kind: "web_accept", NotifyURL: ack.URL}); err != nil {
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
		direct, spread := rate(false), rate(true)
		b.ReportMetric(direct, "leader_ipn/s")
		b.ReportMetric(spread, "spread_ipn/s")
		b.ReportMetric(spread/direct, "spread_ratio")
	}
}
