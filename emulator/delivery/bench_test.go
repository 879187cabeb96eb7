package delivery_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// BenchmarkScheduler queues IPNBENCH_PENDING (default 1,000,000) messages
// whose first delivery failed, so each waits for its first retry; it
// reports the heap each pending message costs (the body is shared, so this
// is the scheduler's own cost), the time to enqueue them, and how many due
// attempts fire per second when the clock jumps to their retry, against a
// closed loopback port.
func BenchmarkScheduler(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("IPNLAB_BENCH_PENDING"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("IPNLAB_BENCH_PENDING %q: want a positive count", v)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/ipn"
	ln.Close()
	body := []byte("mc_gross=19.95&protection_eligibility=Eligible&payer_id=LPLWNMTBWMFAY&payment_date=20%3A12%3A59+Jan+13%2C+2009+PST&payment_status=Completed&charset=windows-1252")
	// Shared as the providers share them: one header and schedule for all.
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	var schedule delivery.Schedule = doubling()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "M" + strconv.Itoa(i)
	}
	for b.Loop() {
		clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		eng, err := delivery.NewEngine(delivery.Config{Clock: clk, AckTimeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		eng.SetOutage(true)
		before := heap()
		start := time.Now()
		for _, id := range ids {
			if _, err := eng.Submit(delivery.Submission{ID: id, Provider: "paypal", URL: closed, Body: body, Header: header,
				Schedule: schedule, Ack: delivery.Only200}); err != nil {
				b.Fatal(err)
			}
		}
		clk.WaitIdle()
		enqueue := time.Since(start)
		perPending := float64(heap()-before) / float64(n)

		eng.SetOutage(false)
		start = time.Now()
		if err := clk.Advance(10 * time.Second); err != nil {
			b.Fatal(err)
		}
		clk.WaitIdle()
		fired := float64(n) / time.Since(start).Seconds()
		eng.Close()

		b.ReportMetric(perPending, "bytes/pending")
		b.ReportMetric(enqueue.Seconds(), "enqueue_s")
		b.ReportMetric(fired, "fired/s")
	}
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkBackoffElapsed: the time to retry n of a constant 1 s schedule
// over 6 h, computed on every retry; its cost must not grow with n.
func BenchmarkBackoffElapsed(b *testing.B) {
	s := delivery.Backoff{Initial: time.Second, Factor: 1, Max: time.Second, Window: 6 * time.Hour}
	for _, n := range []int{10, 21600} {
		b.Run(fmt.Sprintf("retry=%d", n), func(b *testing.B) {
			for b.Loop() {
				_ = s.Elapsed(n)
			}
		})
	}
}
