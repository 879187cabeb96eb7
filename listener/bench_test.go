package listener_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/fixtures"
	"github.com/ipnlab/ipnlab/listener"
)

// BenchmarkEndToEnd measures IPNs per second through the whole path:
// emulator delivery -> reference listener stores and acks -> postback ->
// VERIFIED -> ledger credit in SQLite (durable). Next to it, in the same
// run, the ceiling: the same two HTTP exchanges (delivery POST, postback
// POST of a real-sized IPN) between trivial handlers on loopback. The
// ratio is the figure to compare across machines.
func BenchmarkEndToEnd(b *testing.B) {
	g, err := fixtures.New(1, fixtures.Options{Sandbox: true})
	if err != nil {
		b.Fatal(err)
	}
	sample, err := g.Message("web_accept", fixtures.Params{})
	if err != nil {
		b.Fatal(err)
	}
	body, _ := sample.Body()

	// c notifications in flight at once, and as many listener workers.
	for _, c := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			// The timer runs through both phases so that b.N scales
			// normally; the figures that matter are the reported rates
			// and their ratio.
			ceiling := measureCeiling(b, body, b.N, c)
			e2e := measureEndToEnd(b, b.N, c)
			b.ReportMetric(ceiling, "ceiling_ipn/s")
			b.ReportMetric(e2e, "e2e_ipn/s")
			b.ReportMetric(e2e/ceiling, "ratio")
		})
	}
}

// measureCeiling posts n IPNs to a handler that posts each back to a
// handler answering VERIFIED, then acks: the HTTP work alone.
func measureCeiling(b *testing.B, body []byte, n, c int) float64 {
	verifier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("VERIFIED"))
	}))
	defer verifier.Close()
	client := delivery.NewClient(nil)
	lst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		resp, err := client.Post(verifier.URL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), raw...)))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}))
	defer lst.Close()
	start := time.Now()
	parallel(n, c, func() {
		resp, err := client.Post(lst.URL, "application/x-www-form-urlencoded", bytes.NewReader(body))
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	return float64(n) / time.Since(start).Seconds()
}

func measureEndToEnd(b *testing.B, n, c int) float64 {
	emu, err := emulator.New(emulator.Config{Seed: 1, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	api := httptest.NewServer(emu)
	defer api.Close()
	cfg := baseConfig(api.URL+"/cgi-bin/webscr", filepath.Join(b.TempDir(), "bench.db"))
	cfg.Workers = c
	l, err := listener.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	lsrv := httptest.NewServer(l.Handler())
	defer lsrv.Close()

	start := time.Now()
	parallel(n, c, func() {
		if _, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: lsrv.URL + "/ipn/paypal", Params: emulator.Params{PayerEmail: customerEmail}}); err != nil {
			b.Error(err)
		}
	})
	unacked := func(m *delivery.Message) bool { return m.AckedAt == nil }
	for len(emu.Engine().List(unacked)) > 0 {
		time.Sleep(time.Millisecond) // benchmark only: the deliveries run on the real clock
	}
	if err := l.WaitIdle(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	credited, err := l.Store().Balances(context.Background(), "C1")
	if err != nil || credited["USD"] <= 0 {
		b.Fatalf("nothing credited (%v)", err)
	}
	lines, _ := l.Store().Log(context.Background(), "", n+10)
	for _, line := range lines {
		if line.Action != "credited" {
			b.Fatalf("not credited: %+v", line)
		}
	}
	if len(lines) != n {
		b.Fatalf("%d of %d notifications applied", len(lines), n)
	}
	return float64(n) / elapsed.Seconds()
}

// parallel runs f n times on c goroutines.
func parallel(n, c int, f func()) {
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				f()
			}
		}()
	}
	wg.Wait()
}
