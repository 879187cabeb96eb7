package listener_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
	"github.com/ipnlab/ipnlab/load"
)

// BenchmarkEndToEnd measures IPNs per second through the whole path:
// emulator delivery -> reference listener stores and acks -> postback ->
// VERIFIED -> ledger credit in SQLite (durable). Next to it, in the same
// run, the ceiling: the same two HTTP exchanges (delivery POST, postback
// POST of a real-sized IPN) between trivial handlers on loopback. The
// ratio is the figure to compare across machines.
func BenchmarkEndToEnd(b *testing.B) {
	g, err := generate.New(1, generate.Options{Sandbox: true})
	if err != nil {
		b.Fatal(err)
	}
	sample, err := g.Message("web_accept", generate.Params{})
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

// measureEndToEnd sends n IPNs through ipnlab load's path: c messages
// in flight at most (each holds its slot until its delivery is answered),
// the postback verified, and the ledger credited.
func measureEndToEnd(b *testing.B, n, c int) float64 {
	// The emulator's address first: the listener needs its verify URL and
	// the load needs the listener's URL.
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := baseConfig("http://"+emuLn.Addr().String()+"/cgi-bin/webscr", filepath.Join(b.TempDir(), "bench.db"))
	cfg.Workers = c
	l, lsrv := startListener(b, cfg, nil)
	run, err := load.New(load.Config{Target: lsrv.URL + "/ipn/paypal", Count: n, Concurrency: c, PayerEmail: customerEmail, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer run.Close()
	emuSrv := &http.Server{Handler: run.Handler()}
	go func() { _ = emuSrv.Serve(emuLn) }()
	defer emuSrv.Close()

	start := time.Now()
	rep, err := run.Run(context.Background()) // returns once every acked message was posted back
	if err != nil {
		b.Fatal(err)
	}
	if err := l.WaitIdle(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if rep.Acked != n || rep.Verification.Verified != n {
		b.Fatalf("%d of %d acked, %d VERIFIED", rep.Acked, n, rep.Verification.Verified)
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

// startListener starts a reference listener (on st, or on cfg.DB when st
// is nil) and serves it; both stop when the benchmark ends.
func startListener(b *testing.B, cfg listener.Config, st store.Store) (*listener.Listener, *httptest.Server) {
	var l *listener.Listener
	var err error
	if st != nil {
		l, err = listener.NewWithStore(cfg, st)
	} else {
		l, err = listener.New(cfg)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	if err := l.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	b.Cleanup(srv.Close)
	return l, srv
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

// BenchmarkLatency measures, at half the maximum end-to-end rate measured
// first in the same run (concurrency 64), how long an IPN takes from its
// creation to VERIFIED (the listener's postback answered) and to credited
// (its ledger entry committed and synced).
func BenchmarkLatency(b *testing.B) {
	for b.Loop() {
		peak := measureEndToEnd(b, 3000, 64)
		rate := peak / 2
		verified, credited := measureLatency(b, rate, 3*time.Second)
		b.ReportMetric(peak, "max_ipn/s")
		b.ReportMetric(rate, "rate_ipn/s")
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		for _, m := range []struct {
			name string
			p    load.Percentiles
		}{{"verified", verified}, {"credited", credited}} {
			b.ReportMetric(ms(m.p.P50), m.name+"_p50_ms")
			b.ReportMetric(ms(m.p.P99), m.name+"_p99_ms")
			b.ReportMetric(ms(m.p.P999), m.name+"_p99.9_ms")
		}
	}
}

// measureLatency sends web_accept IPNs at rate for d (wall time) and
// returns the creation-to-VERIFIED and creation-to-credited latencies.
func measureLatency(b *testing.B, rate float64, d time.Duration) (verified, credited load.Percentiles) {
	var mu sync.Mutex
	created := map[string]time.Time{}    // txn id -> created
	verifiedAt := map[string]time.Time{} // txn id -> first VERIFIED
	txnOf := map[string]string{}         // message id -> txn id
	emu, err := emulator.New(emulator.Config{Seed: 1, Logger: quiet(), Observer: emulator.Observer{
		Delivery: func(ev delivery.Event) {
			if ev.Type == delivery.EventQueued {
				now := time.Now()
				mu.Lock()
				created[ev.Message.TxnID], txnOf[ev.Message.ID] = now, ev.Message.TxnID
				mu.Unlock()
			}
		},
		Postback: func(p paypal.PostbackRecord) {
			now := time.Now()
			mu.Lock()
			if txn, ok := txnOf[p.MessageID]; ok && p.Verdict.Result == paypal.Verified {
				if _, seen := verifiedAt[txn]; !seen {
					verifiedAt[txn] = now
				}
			}
			mu.Unlock()
		},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	api := httptest.NewServer(emu)
	defer api.Close()
	cfg := baseConfig(api.URL+"/cgi-bin/webscr", filepath.Join(b.TempDir(), "latency.db"))
	cfg.Workers = 64
	db, err := sqlite.Open(cfg.DB)
	if err != nil {
		b.Fatal(err)
	}
	st := &timedStore{Store: db, credited: map[string]time.Time{}}
	l, lsrv := startListener(b, cfg, st)

	// Sends are paced on the wall clock (a benchmark, not a spec), each on
	// its own goroutine so a slow send does not delay the next.
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := emu.Dispatch(emulator.SendRequest{Kind: "web_accept", NotifyURL: lsrv.URL + "/ipn/paypal", Params: emulator.Params{PayerEmail: customerEmail}}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	unacked := func(m *delivery.Message) bool { return m.AckedAt == nil }
	for len(emu.Engine().List(unacked)) > 0 {
		time.Sleep(time.Millisecond)
	}
	if err := l.WaitIdle(context.Background()); err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	var toVerified, toCredited []time.Duration
	for txn, c := range created {
		v, ok1 := verifiedAt[txn]
		k, ok2 := st.credited[txn]
		if !ok1 || !ok2 {
			b.Fatalf("txn %s: verified %v, credited %v", txn, ok1, ok2)
		}
		toVerified = append(toVerified, v.Sub(c))
		toCredited = append(toCredited, k.Sub(c))
	}
	return load.PercentilesOf(toVerified), load.PercentilesOf(toCredited)
}

// timedStore notes when each transaction's first ledger entry committed.
type timedStore struct {
	store.Store
	mu       sync.Mutex
	credited map[string]time.Time
}

func (s *timedStore) Tx(ctx context.Context, f func(store.Tx) error) error {
	var txns []string
	err := s.Store.Tx(ctx, func(tx store.Tx) error { return f(entryNotingTx{Tx: tx, txns: &txns}) })
	if err == nil && len(txns) > 0 {
		now := time.Now()
		s.mu.Lock()
		for _, t := range txns {
			if _, ok := s.credited[t]; !ok {
				s.credited[t] = now
			}
		}
		s.mu.Unlock()
	}
	return err
}

type entryNotingTx struct {
	store.Tx
	txns *[]string
}

func (t entryNotingTx) AddEntry(e store.Entry) (bool, error) {
	added, err := t.Tx.AddEntry(e)
	if added && err == nil {
		*t.txns = append(*t.txns, e.TxnID)
	}
	return added, err
}
