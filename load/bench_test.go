package load_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/load"
)

// cycleConcurrency is the concurrency of the headline figures.
const cycleConcurrency = 64

// BenchmarkCycle measures the emulator's own cost per IPN cycle (delivery,
// ack, postback, verdict) through ipnlab load's library path, against a
// minimal correct listener, next to two baselines taken in the same run:
//
//   - ceiling: the same two HTTP exchanges between trivial Go handlers
//     (a delivery POST acked at once, the body posted back to a handler
//     answering VERIFIED), same concurrency, keep-alive;
//   - vegeta: the load tool a user might pick instead, driving the same
//     listener with the same bodies at the same concurrency (acks/s).
//
// ratio = ipnlab cycles/s over the ceiling; vs_vegeta = ipnlab's acks/s
// over vegeta's.
func BenchmarkCycle(b *testing.B) {
	const n = 20_000
	bodies := sampleBodies(b, 256)
	for b.Loop() {
		ceiling := ceilingRate(b, bodies, n)
		cycles, acks := ipnlabRate(b, n)
		veg := vegetaRate(b, bodies, n)
		b.ReportMetric(ceiling, "ceiling_cycles/s")
		b.ReportMetric(cycles, "ipnlab_cycles/s")
		b.ReportMetric(cycles/ceiling, "ratio")
		b.ReportMetric(acks, "ipnlab_acks/s")
		b.ReportMetric(veg, "vegeta_acks/s")
		b.ReportMetric(acks/veg, "vs_vegeta")
		lat := latencyAt(b, cycles/2)
		b.ReportMetric(ms(lat.P50), "verified_p50_ms")
		b.ReportMetric(ms(lat.P99), "verified_p99_ms")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// latencyAt runs ipnlab load at rate messages/s for 3 s against the
// minimal listener: created to VERIFIED.
func latencyAt(b *testing.B, rate float64) load.Percentiles {
	rep, _ := loadMinimal(b, load.Config{Rate: rate, Duration: 3 * time.Second, Seed: 2})
	if rep.Verification.Verified != rep.Acked || rep.Acked != rep.Sent {
		b.Fatalf("%d sent, %d acked, %d VERIFIED", rep.Sent, rep.Acked, rep.Verification.Verified)
	}
	return rep.Verification.Latency
}

func sampleBodies(b *testing.B, n int) [][]byte {
	g, err := generate.New(1, generate.Options{Sandbox: true})
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		m, err := g.Message("web_accept", generate.Params{})
		if err != nil {
			b.Fatal(err)
		}
		if out[i], err = m.Body(); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// minimalListener is a correct listener with nothing else to do: it acks
// 200 at once, then posts the raw body back with cmd first to verifyURL on
// a shared keep-alive client. wait returns when every postback it started
// was answered.
func minimalListener(b *testing.B, verifyURL string) (url string, wait func()) {
	client := delivery.NewClient(nil)
	var inFlight sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			resp, err := client.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), raw...)))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}))
	b.Cleanup(srv.Close)
	return srv.URL, inFlight.Wait
}

// trivialVerifier answers every postback VERIFIED.
func trivialVerifier(b *testing.B) string {
	v := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("VERIFIED"))
	}))
	b.Cleanup(v.Close)
	return v.URL
}

// ceilingRate is n cycles of the bare HTTP work: deliveries to the
// minimal listener, its postbacks to a trivial verifier.
func ceilingRate(b *testing.B, bodies [][]byte, n int) float64 {
	lst, wait := minimalListener(b, trivialVerifier(b))
	client := delivery.NewClient(nil)
	start := time.Now()
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range cycleConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				resp, err := client.Post(lst, "application/x-www-form-urlencoded", bytes.NewReader(bodies[k%len(bodies)]))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	wait()
	return float64(n) / time.Since(start).Seconds()
}

// ipnlabRate runs ipnlab load (the library) against the minimal listener,
// whose postbacks go to the load's own emulator: full cycles per second,
// every one VERIFIED, and acks per second while sending.
func ipnlabRate(b *testing.B, n int) (cycles, acks float64) {
	rep, elapsed := loadMinimal(b, load.Config{Count: n, Concurrency: cycleConcurrency, Seed: 1})
	if rep.Acked != n || rep.Verification.Verified != n {
		b.Fatalf("%d of %d acked, %d VERIFIED", rep.Acked, n, rep.Verification.Verified)
	}
	return float64(n) / elapsed.Seconds(), float64(rep.Acked) / rep.Steady.Seconds
}

// vegetaRate drives the minimal listener (its postbacks to a trivial
// verifier) with the same bodies through vegeta, as fast as
// cycleConcurrency workers go: acks per second.
func vegetaRate(b *testing.B, bodies [][]byte, n int) float64 {
	lst, wait := minimalListener(b, trivialVerifier(b))
	targets := make([]vegeta.Target, len(bodies))
	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for i, body := range bodies {
		targets[i] = vegeta.Target{Method: "POST", URL: lst, Body: body, Header: hdr}
	}
	atk := vegeta.NewAttacker(vegeta.Workers(cycleConcurrency), vegeta.MaxWorkers(cycleConcurrency), vegeta.KeepAlive(true))
	start := time.Now()
	acked := 0
	for res := range atk.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: 0}, 0, "ipn") {
		if res.Code == http.StatusOK {
			acked++
		}
		if acked == n {
			atk.Stop()
		}
	}
	elapsed := time.Since(start)
	wait()
	if acked < n {
		b.Fatalf("vegeta: %d of %d acked", acked, n)
	}
	return float64(n) / elapsed.Seconds()
}

// loadMinimal runs ipnlab load (cfg, its target filled in) against the
// minimal listener, whose postbacks go to the load's own emulator; it
// returns the report and the run's wall time (Run returns once every
// acked message was posted back).
func loadMinimal(b *testing.B, cfg load.Config) (load.Report, time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Target, _ = minimalListener(b, "http://"+ln.Addr().String()+"/cgi-bin/webscr")
	run, err := load.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer run.Close()
	srv := &http.Server{Handler: run.Handler()}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	start := time.Now()
	rep, err := run.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return rep, time.Since(start)
}
