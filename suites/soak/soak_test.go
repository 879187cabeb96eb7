package soak_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/metrics"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
)

const customer = "soak@example.com"

// gate fails the first delivery of one message in twenty (by body hash)
// with a 500, so the emulator has retries to run.
type gate struct {
	next http.Handler
	mu   sync.Mutex
	seen map[uint64]bool
	hits int
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := fnv.New64a()
	h.Write(body)
	sum := h.Sum64()
	g.mu.Lock()
	fail := sum%20 == 0 && !g.seen[sum]
	g.seen[sum] = true
	if fail {
		g.hits++
	}
	g.mu.Unlock()
	if fail {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.next.ServeHTTP(w, r)
}

func soakSize() int {
	n, err := strconv.Atoi(os.Getenv("IPNLAB_SOAK_MESSAGES"))
	if err != nil || n <= 0 {
		return 2000
	}
	return n
}

type sample struct {
	goroutines int
	heap       uint64
}

func measure() sample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sample{goroutines: ownGoroutines(), heap: ms.HeapInuse}
}

// ownGoroutines counts goroutines other than those of pooled HTTP
// connections, whose number follows the load's concurrency (bounded by the
// pools) rather than the messages sent.
func ownGoroutines() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.TrimSpace(g) == "" || strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "net/http.(*conn).serve") {
			continue
		}
		n++
	}
	return n
}

var _ = Describe("Soak", Label("soak"), func() {
	It("runs many notifications with 10% faults: none lost, none credited twice, no goroutine or memory growth", func() {
		total := soakSize()
		const rounds, workers, historyLimit = 8, 8, 500
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		clk := clock.NewManual(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
		emu, err := emulator.New(emulator.Config{Clock: clk, Seed: 1, Logger: quiet, AckTimeout: 10 * time.Second, HistoryLimit: historyLimit, EvictAfter: 30 * time.Second, EventBuffer: 2048})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		DeferCleanup(func() { emu.Close(); api.Close() })

		st, err := sqlite.Open(filepath.Join(GinkgoT().TempDir(), "soak.db"))
		Expect(err).NotTo(HaveOccurred())
		lst, err := listener.NewWithStore(listener.Config{
			VerifyURL: api.URL + "/cgi-bin/webscr", ReceiverEmails: []string{emulator.DefaultReceiverEmail},
			Customers: []listener.Customer{{ID: "C1", Email: customer}}, Workers: 4, Logger: quiet,
			Verify: listener.VerifyConfig{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Attempts: 5, Timeout: 10 * time.Second},
		}, st)
		Expect(err).NotTo(HaveOccurred())
		Expect(lst.Start(context.Background())).To(Succeed())
		g := &gate{next: lst.Handler(), seen: map[uint64]bool{}}
		lsrv := httptest.NewServer(g)
		DeferCleanup(func() { lsrv.Close(); Expect(lst.Close()).To(Succeed()) })

		var (
			mu       sync.Mutex
			txns     []string
			faulted  int
			baseline sample
		)
		perRound := total / rounds
		var afterFirst metrics.Values
		for round := range rounds {
			pool(workers, round*perRound, perRound, nil, func(i int) {
				req := emulator.SendRequest{Kind: "web_accept", NotifyURL: lsrv.URL + "/ipn/paypal",
					Params: emulator.Params{PayerEmail: customer}}
				if i%20 == 7 { // the verifier fails this message's first postback
					req.Fault = &emulator.FaultRequest{Kind: "status500", Count: 1}
				}
				v, err := emu.SendPayPal(req)
				Expect(err).NotTo(HaveOccurred())
				mu.Lock()
				txns = append(txns, strings.Clone(v.TxnID)) // not a view into the whole body
				if req.Fault != nil {
					faulted++
				}
				mu.Unlock()
			})
			// The first retry of a failed delivery falls 10 s later.
			Expect(emu.Advance(time.Minute)).To(Succeed())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			Expect(lst.WaitIdle(ctx)).To(Succeed())
			cancel()
			if round == 0 {
				afterFirst = scrape(api.URL)
			}
			if round == 1 {
				baseline = measure()
			}
		}
		end := measure()
		Expect(clk.Pending()).To(BeZero(), "nothing left to retry")

		// Every message is accounted for: credited exactly once.
		ctx := context.Background()
		for _, txn := range txns {
			p, err := lst.Transaction(ctx, listener.PayPal, txn)
			Expect(err).NotTo(HaveOccurred(), txn)
			Expect(p.Effects).To(HaveLen(1), "txn %s", txn)
		}
		Expect(txns).To(HaveLen(perRound * rounds))
		g.mu.Lock()
		failedDeliveries := g.hits
		g.mu.Unlock()
		injected := float64(failedDeliveries+faulted) / float64(len(txns))
		Expect(injected).To(BeNumerically("~", 0.10, 0.03), "about 10%% of messages met a fault")

		// /metrics moved with the soak and agrees with its accounting.
		Expect(afterFirst.Sum("ipnlab_messages_total", "provider", "paypal")).To(Equal(float64(perRound)))
		m := scrape(api.URL)
		Expect(m.Sum("ipnlab_messages_total", "provider", "paypal")).To(Equal(float64(len(txns))))
		Expect(m.Sum("ipnlab_deliveries_total", "outcome", "acked", "code", "200")).To(Equal(float64(len(txns))), "each message acked once")
		Expect(m.Sum("ipnlab_deliveries_total", "outcome", "refused", "code", "500")).To(Equal(float64(failedDeliveries)))
		Expect(m.Sum("ipnlab_deliveries_total")).To(Equal(float64(len(txns) + failedDeliveries)))
		Expect(m.Sum("ipnlab_verifier_faults_total", "kind", "status500")).To(Equal(float64(faulted)))
		Expect(m.Sum("ipnlab_postbacks_total", "verdict", "VERIFIED")).To(Equal(float64(len(txns)+faulted)), "each message verified once, a faulted one twice")
		Expect(m.Sum("ipnlab_retry_queue_waiting")).To(BeZero())
		Expect(m.Sum("ipnlab_messages_total")).To(BeNumerically(">", afterFirst.Sum("ipnlab_messages_total")))
		// The bound: the limit, plus what finished within the last EvictAfter
		// (the last round, as the clock moved after it only to run retries).
		Expect(len(emu.Engine().List(nil))).To(BeNumerically("<=", historyLimit+perRound), "history is bounded")

		AddReportEntry("soak", fmt.Sprintf("%d messages, %d failed deliveries, %d failed postbacks; goroutines %d -> %d; heap %.1f MiB -> %.1f MiB",
			len(txns), failedDeliveries, faulted, baseline.goroutines, end.goroutines, float64(baseline.heap)/(1<<20), float64(end.heap)/(1<<20)))
		Expect(end.goroutines).To(BeNumerically("<=", baseline.goroutines+10), "goroutines do not grow")
		Expect(end.heap).To(BeNumerically("<", baseline.heap+baseline.heap/4+(4<<20)), "memory does not grow with messages")
	})
})

// scrape reads the emulator's /metrics.
func scrape(base string) metrics.Values {
	resp, err := http.Get(base + "/metrics")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	v, err := metrics.Parse(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return v
}

// pool runs do for jobs first..first+n-1, workers at a time; feed, if set,
// runs on the handing-out side before job k of them (0-based) is handed
// out, while earlier jobs may still run.
func pool(workers, first, n int, feed func(k int), do func(i int)) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer GinkgoRecover()
			for i := range jobs {
				do(i)
			}
		}()
	}
	for k := range n {
		if feed != nil {
			feed(k)
		}
		jobs <- first + k
	}
	close(jobs)
	wg.Wait()
}
