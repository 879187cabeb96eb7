package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/load"
)

// lab is a load runner served on loopback, with the listener under test.
type lab struct {
	runner   *load.Runner
	verify   string // the emulator's verifier URL
	emulator string // the emulator's base URL
}

// listenerFunc builds the listener's handler once the emulator's URL is
// known (it posts back or looks up there).
type listenerFunc func(emulatorURL string) http.HandlerFunc

func newLab(cfg load.Config, listener listenerFunc) *lab {
	// The listener is started first, pointing at an emulator address
	// taken now, so the target URL is known when the runner is built.
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	emuURL := "http://" + emuLn.Addr().String()
	if cfg.Target == "" {
		lsrv := httptest.NewServer(listener(emuURL))
		DeferCleanup(lsrv.Close)
		cfg.Target = lsrv.URL + "/ipn"
	}
	r, err := load.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(r.Close)
	srv := &http.Server{Handler: r.Handler()}
	go func() { _ = srv.Serve(emuLn) }()
	DeferCleanup(srv.Close)
	return &lab{runner: r, verify: emuURL + "/cgi-bin/webscr", emulator: emuURL}
}

// postBack sends the IPN back to the verifier as a listener must, with
// mangle applied to the body first.
func postBack(verifyURL string, body []byte, mangle func([]byte) []byte) {
	if mangle != nil {
		body = mangle(body)
	}
	resp, err := http.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// alternating answers 500 to every odd request and 200 to every even one;
// before each 200 it posts the message back (mangled if asked).
func alternating(mangle func([]byte) []byte) (listenerFunc, *atomic.Int64) {
	var n atomic.Int64
	return func(emu string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if n.Add(1)%2 == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			postBack(emu+"/cgi-bin/webscr", body, mangle)
		}
	}, &n
}

// acking answers 200; before that it posts back when postback is true.
func acking(postback bool) listenerFunc {
	return func(emu string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if postback {
				postBack(emu+"/cgi-bin/webscr", body, nil)
			}
		}
	}
}

// runWithWall runs the lab on a manual wall clock, moving it by step
// until the run ends (pacing, duration, settle and progress follow it).
func runWithWall(l *lab, wall *clock.Manual, step time.Duration) (load.Report, error) {
	type result struct {
		rep load.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := l.runner.Run(context.Background())
		done <- result{rep, err}
	}()
	var res result
	Eventually(func() bool {
		select {
		case res = <-done:
			return true
		default:
			Expect(wall.Advance(step)).To(Succeed())
			return false
		}
	}).WithTimeout(time.Minute).WithPolling(time.Millisecond).Should(BeTrue())
	return res.rep, res.err
}

func text(rep load.Report) string {
	var buf bytes.Buffer
	Expect(rep.Write(&buf)).To(Succeed())
	GinkgoWriter.Println(buf.String())
	return buf.String()
}

var _ = Describe("a load run", func() {
	It("reports a listener that answers 500 half the time as such, and follows the retries until all are acked", func() {
		handler, requests := alternating(nil)
		l := newLab(load.Config{Count: 100, Concurrency: 4}, handler)
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())

		// Requests alternate 500, 200, ...: the 100th 200 acks the last
		// message, so exactly 200 requests were made.
		Expect(requests.Load()).To(BeEquivalentTo(200))
		Expect(rep.Sent).To(Equal(100))
		Expect(rep.Attempts).To(Equal(200))
		Expect(rep.Answers).To(Equal(map[string]int{"200": 100, "500": 100}))
		Expect(rep.Retries).To(Equal(100))
		Expect(rep.Acked).To(Equal(100))
		Expect(rep.AckedFirst).To(BeNumerically("~", 50, 4))
		Expect(rep.Failed + rep.Waiting).To(BeZero())
		Expect(rep.AckLatency.Count).To(Equal(200))
		Expect(rep.AckLatency.P50).To(BeNumerically(">", 0))
		Expect(rep.Verification.Verified).To(Equal(100))
		Expect(rep.Verification.Postbacks).To(Equal(100))
		Expect(rep.Verification.None + rep.Verification.Invalid + rep.Verification.Repeated).To(BeZero())
		Expect(rep.Verification.Latency.Count).To(Equal(100))
		// The retries were stepped on PayPal's schedule: 10 s, 20 s, ...
		Expect(rep.SimulatedSeconds).To(BeNumerically(">=", 10))

		out := text(rep)
		Expect(out).To(ContainSubstring("200: 100 (50.0%), 500: 100 (50.0%)"))
		Expect(out).To(ContainSubstring("100 of 100 messages (100.0%)"))
		Expect(out).To(ContainSubstring("VERIFIED 100, INVALID 0"))
	})

	It("leaves failed messages waiting when retries are not followed", func() {
		handler, _ := alternating(nil)
		l := newLab(load.Config{Count: 100, Concurrency: 4, NoRetries: true}, handler)
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Answers).To(Equal(map[string]int{"200": 50, "500": 50}))
		Expect(rep.Acked).To(Equal(50))
		Expect(rep.AckedFirst).To(Equal(50))
		Expect(rep.Waiting).To(Equal(50))
		Expect(rep.Retries).To(BeZero())
		Expect(rep.SimulatedSeconds).To(BeZero())
		Expect(text(rep)).To(ContainSubstring("0 failed every retry, 50 still waiting for a retry"))
	})

	It("counts INVALID postbacks by the rule that failed them", func() {
		swapOrder := func(b []byte) []byte { // the first two fields swapped
			parts := bytes.SplitN(b, []byte("&"), 3)
			return bytes.Join([][]byte{parts[1], parts[0], parts[2]}, []byte("&"))
		}
		handler, _ := alternating(swapOrder)
		l := newLab(load.Config{Count: 20, Concurrency: 2, Verify: "strict"}, handler)
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Verification.Invalid).To(Equal(20))
		Expect(rep.Verification.Verified).To(BeZero())
		Expect(rep.Verification.InvalidRules).To(Equal(map[string]int{"order": 20}))
		Expect(rep.Verification.Latency.Count).To(BeZero())
		Expect(text(rep)).To(ContainSubstring("INVALID by rule: order 20"))
	})

	It("waits a quiet period for postbacks that never come, then reports them", func() {
		wall := clock.NewManual(time.Unix(0, 0))
		l := newLab(load.Config{Count: 10, Wall: wall, Settle: 3 * time.Second}, acking(false))
		rep, err := runWithWall(l, wall, 100*time.Millisecond)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Acked).To(Equal(10))
		Expect(rep.Verification.None).To(Equal(10))
		Expect(rep.Verification.Postbacks).To(BeZero())
		Expect(text(rep)).To(ContainSubstring("acked and never posted back 10"))
	})

	It("releases a backlog queued during an outage all at once, at PayPal's first retry", func() {
		var mu sync.Mutex
		starts := map[string]int{}
		l := newLab(load.Config{Backlog: 30}, func(emu string) http.HandlerFunc {
			inner := acking(true)(emu)
			return func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				starts[string(bytes.SplitN(body, []byte("&"), 2)[0])]++
				mu.Unlock()
				r.Body = io.NopCloser(bytes.NewReader(body))
				inner(w, r)
			}
		})
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Sent).To(Equal(30))
		Expect(rep.OutageAttempts).To(Equal(30))
		Expect(rep.Backlog).NotTo(BeNil())
		Expect(rep.Backlog.Messages).To(Equal(30))
		Expect(rep.Backlog.ReleasedAfter).To(Equal(10 * time.Second))
		Expect(rep.Backlog.Acked).To(Equal(30))
		Expect(rep.Backlog.Answers).To(Equal(map[string]int{"200": 30}))
		Expect(rep.Attempts).To(Equal(30))
		Expect(rep.Retries).To(Equal(30))
		Expect(rep.SimulatedSeconds).To(Equal(10.0))
		Expect(rep.Steady.Messages).To(BeZero())
		Expect(rep.Verification.Verified).To(Equal(30))
		out := text(rep)
		Expect(out).To(ContainSubstring("30 queued during an outage, released at once after 10s (clock)"))
		Expect(out).To(ContainSubstring("30 more failed during the simulated outage"))
	})

	It("keeps to the rate asked, on the wall clock, and reports progress", func() {
		wall := clock.NewManual(time.Unix(0, 0))
		var mu sync.Mutex
		var progress []load.Progress
		l := newLab(load.Config{
			Rate: 10, Duration: 2 * time.Second, Wall: wall, ProgressEvery: 500 * time.Millisecond,
			Progress: func(p load.Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() },
		}, acking(true))
		rep, err := runWithWall(l, wall, 50*time.Millisecond)
		Expect(err).NotTo(HaveOccurred())
		// Message i is due at i/10 s: 0 to 1.9 s are inside the 2 s.
		Expect(rep.Steady.Messages).To(Equal(20))
		Expect(rep.Steady.Seconds).To(BeNumerically(">=", 1.9))
		Expect(rep.Steady.AchievedRate).To(BeNumerically("<=", 20/1.9))
		Expect(rep.Steady.HeldBack).To(BeZero())
		Expect(rep.Acked).To(Equal(20))
		Expect(rep.Verification.Verified).To(Equal(20))

		mu.Lock()
		defer mu.Unlock()
		Expect(len(progress)).To(BeNumerically(">=", 4))
		Expect(progress[0].Phase).To(Equal(load.PhaseSend))
		last := progress[len(progress)-1]
		Expect(last.Phase).To(Equal(load.PhaseDone))
		Expect(last.Sent).To(Equal(20))
		Expect(last.Acked).To(Equal(20))
		Expect(last.Verified).To(Equal(20))
		Expect(last.String()).To(MatchRegexp(`^done +[0-9.]+s  sent 20 .* acked 20 .* verified 20  invalid 0(  rss \d+ MB)?$`))
	})

	It("says when a rate could not be kept because too many messages were in flight", func() {
		wall := clock.NewManual(time.Unix(0, 0))
		// Each answer waits a second of the wall clock; a message is due
		// every 10 ms and only one may be in flight.
		slow := func(emu string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				done := make(chan struct{})
				wall.At(wall.Now().Add(time.Second), func() { close(done) })
				<-done
			}
		}
		l := newLab(load.Config{Rate: 100, Count: 3, MaxInFlight: 1, Wall: wall, Settle: time.Second}, slow)
		rep, err := runWithWall(l, wall, 5*time.Millisecond)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Steady.Messages).To(Equal(3))
		Expect(rep.Steady.HeldBack).To(Equal(2))
		Expect(rep.Acked).To(Equal(3))
		Expect(rep.Steady.AchievedRate).To(BeNumerically("<", 100))
		Expect(text(rep)).To(MatchRegexp(`sent +3 messages in [0-9.]+s: \d+/s of 100/s asked \(held back 2 times: too many messages in flight\)`))
	})

	It("names transport failures: a closed port and a listener that never answers", func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		closed := "http://" + ln.Addr().String() + "/ipn"
		Expect(ln.Close()).To(Succeed())
		l := newLab(load.Config{Target: closed, Count: 5, NoRetries: true}, nil)
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Answers).To(Equal(map[string]int{"refused": 5}))
		Expect(rep.ErrorSamples["refused"]).To(ContainSubstring("connection refused"))
		Expect(rep.AckLatency.Count).To(BeZero())
		Expect(rep.Waiting).To(Equal(5))

		hang := func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				// Read the body first: the server notices the client has gone
				// (and ends the context) only once it reads the connection again.
				_, _ = io.ReadAll(r.Body)
				<-r.Context().Done()
			}
		}
		l = newLab(load.Config{Count: 2, NoRetries: true, AckTimeout: 50 * time.Millisecond}, hang)
		rep, err = l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Answers).To(Equal(map[string]int{"timeout": 2}))
		Expect(text(rep)).To(ContainSubstring("timeout: no answer within 50ms"))
	})

	It("sends PayDo messages and counts the listener's status lookups", func() {
		lookingUp := func(emu string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				var msg struct {
					Transaction struct {
						ID string `json:"id"`
					} `json:"transaction"`
				}
				if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				req, _ := http.NewRequest(http.MethodGet, emu+"/paydo/v1/transactions/"+msg.Transaction.ID, nil)
				req.Header.Set("Authorization", "Bearer "+paydo.DefaultAPIToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					http.Error(w, "lookup failed", http.StatusBadGateway)
					return
				}
				resp.Body.Close()
			}
		}
		l := newLab(load.Config{Provider: load.PayDo, Count: 12, Concurrency: 3}, lookingUp)
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Answers).To(Equal(map[string]int{"200": 12}))
		Expect(rep.Verification.LookedUp).To(Equal(12))
		Expect(rep.Verification.Lookups).To(Equal(12))
		Expect(rep.Verification.Unknown + rep.Verification.None).To(BeZero())
		Expect(text(rep)).To(ContainSubstring("12 messages looked up, 0 acked and never looked up"))
	})

	It("sends PayPal REST webhooks, signed, that the reference listener verifies and credits, and settles once they are acknowledged", func() {
		ca, err := intercept.LoadOrCreate(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		var ref *listener.Listener
		verifying := func(emu string) http.HandlerFunc {
			ref, err = listener.New(listener.Config{VerifyURL: emu + "/cgi-bin/webscr", ReceiverEmails: []string{"merchant@example.com"},
				Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}}, DB: filepath.Join(GinkgoT().TempDir(), "l.db"),
				PayPalREST: listener.PayPalRESTConfig{WebhookID: load.DefaultWebhookID, APIURL: emu, CertRoots: ca.CertPath()},
				Logger:     slog.New(slog.NewTextHandler(io.Discard, nil))})
			Expect(err).NotTo(HaveOccurred())
			Expect(ref.Start(context.Background())).To(Succeed())
			DeferCleanup(ref.Close)
			return ref.Handler().ServeHTTP
		}
		emuLn, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		emuURL := "http://" + emuLn.Addr().String()
		lsrv := httptest.NewServer(verifying(emuURL))
		DeferCleanup(lsrv.Close)
		r, err := load.New(load.Config{Provider: load.PayPalREST, Target: lsrv.URL + listener.PayPalRESTPath, SigningCA: ca,
			PayerEmail: "customer@example.com", Count: 20, Concurrency: 4})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(r.Close)
		srv := &http.Server{Handler: r.Handler()}
		go func() { _ = srv.Serve(emuLn) }()
		DeferCleanup(srv.Close)

		rep, err := r.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Answers).To(Equal(map[string]int{"200": 20}))
		Expect(text(rep)).To(ContainSubstring("the listener's own"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		Expect(ref.WaitIdle(ctx)).To(Succeed())
		lines, err := ref.Store().Log(context.Background(), "", 100)
		Expect(err).NotTo(HaveOccurred())
		credited := 0
		for _, l := range lines {
			if l.Action == "credited" {
				credited++
			}
		}
		Expect(credited).To(Equal(20), "every event verified with the CA's certificate and credited")

		_, err = load.New(load.Config{Provider: load.PayDo, Target: lsrv.URL, WebhookID: "WH-X"})
		Expect(err).To(MatchError(ContainSubstring("a webhook id and a signing CA apply to paypalrest messages only")))
		_, err = load.New(load.Config{Provider: load.PayPalREST, Target: lsrv.URL, Kinds: []string{"PAYMENT.CAPTURE.COMPLETD"}})
		Expect(err).To(MatchError(ContainSubstring(`paypalrest kind "PAYMENT.CAPTURE.COMPLETD": want one of`)))
	})

	It("stops when its context ends, with the report so far", func() {
		l := newLab(load.Config{}, acking(true))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rep, err := l.runner.Run(ctx)
		Expect(err).To(MatchError(context.Canceled))
		Expect(rep.Sent).To(BeZero())
		_, err = l.runner.Run(context.Background())
		Expect(err).To(MatchError(ContainSubstring("runs once")))
	})

	It("writes its report as JSON with latencies in milliseconds", func() {
		l := newLab(load.Config{Count: 3}, acking(true))
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		raw, err := json.Marshal(rep)
		Expect(err).NotTo(HaveOccurred())
		var back map[string]any
		Expect(json.Unmarshal(raw, &back)).To(Succeed())
		Expect(back).To(HaveKeyWithValue("sent", 3.0))
		Expect(back["answers"]).To(Equal(map[string]any{"200": 3.0}))
		Expect(back["ack_latency"]).To(HaveKey("p99.9_ms"))
		Expect(back["verification"]).To(HaveKeyWithValue("verified", 3.0))
	})
})

var _ = Describe("percentiles", func() {
	It("takes the smallest sample at or above each share", func() {
		var s []time.Duration
		for i := 1000; i >= 1; i-- {
			s = append(s, time.Duration(i)*time.Millisecond)
		}
		p := load.PercentilesOf(s)
		Expect(p.Count).To(Equal(1000))
		Expect(p.P50).To(Equal(500 * time.Millisecond))
		Expect(p.P90).To(Equal(900 * time.Millisecond))
		Expect(p.P99).To(Equal(990 * time.Millisecond))
		Expect(p.P999).To(Equal(999 * time.Millisecond))
		Expect(p.Max).To(Equal(time.Second))
		Expect(load.PercentilesOf(nil)).To(Equal(load.Percentiles{}))
		Expect(load.PercentilesOf([]time.Duration{7}).P999).To(Equal(time.Duration(7)))
	})
})

var _ = DescribeTable("a bad configuration is refused before anything runs",
	func(cfg load.Config, want string) {
		if cfg.Target == "" {
			cfg.Target = "http://127.0.0.1:1/ipn"
		}
		_, err := load.New(cfg)
		Expect(err).To(MatchError(ContainSubstring(want)))
		Expect(errors.Is(err, load.ErrConfig)).To(BeTrue())
	},
	Entry("no target", load.Config{Target: " "}, `target " "`),
	Entry("a target that is not http", load.Config{Target: "ftp://127.0.0.1/x"}, "want an http:// or https:// URL"),
	Entry("an unknown provider", load.Config{Provider: "stripe"}, `provider "stripe": want paypal, paydo or paypalrest`),
	Entry("an unknown PayPal kind", load.Config{Kinds: []string{"web_acept"}}, `paypal kind "web_acept": want one of`),
	Entry("a PayPal kind for PayDo", load.Config{Provider: load.PayDo, Kinds: []string{"web_accept"}}, "want one of transfer, checkout"),
	Entry("a payer for PayDo", load.Config{Provider: load.PayDo, PayerEmail: "a@b.c"}, "PayPal messages only"),
	Entry("rate and concurrency", load.Config{Rate: 5, Concurrency: 2}, "a rate or a concurrency, not both"),
	Entry("a negative rate", load.Config{Rate: -1}, "rate -1: must be positive"),
	Entry("a negative count", load.Config{Count: -3}, "count -3"),
	Entry("a negative backlog", load.Config{Backlog: -3}, "backlog -3"),
	Entry("a negative duration", load.Config{Duration: -time.Second}, "duration -1s"),
	Entry("a negative settle", load.Config{Settle: -time.Second}, "settle -1s"),
	Entry("an unknown verify mode", load.Config{Verify: "lenient"}, `verify mode "lenient"`),
)

var _ = It("gives a missing target its own message", func() {
	_, err := load.New(load.Config{})
	Expect(err).To(MatchError(ContainSubstring("the listener URL is required")))
	Expect(strings.Contains(err.Error(), "load configuration")).To(BeTrue())
})

var _ = Describe("a listener that verifies from a queue", func() {
	// queued runs 200 messages past a listener that acks each at once and
	// posts them all back only once the last one came.
	queued := func(limit int) (load.Report, *lab) {
		var mu sync.Mutex
		var bodies [][]byte
		l := newLab(load.Config{Count: 200, Concurrency: 4, HistoryLimit: limit, Settle: 20 * time.Second}, func(emu string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, body) // acked now, verified later
				mu.Unlock()
			}
		})
		done := make(chan load.Report, 1)
		go func() {
			defer GinkgoRecover()
			rep, err := l.runner.Run(context.Background())
			Expect(err).NotTo(HaveOccurred())
			done <- rep
		}()
		Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(bodies) }).WithTimeout(10 * time.Second).Should(Equal(200))
		mu.Lock()
		for _, body := range bodies {
			postBack(l.verify, body, nil)
		}
		mu.Unlock()
		var rep load.Report
		Eventually(done).WithTimeout(20 * time.Second).Should(Receive(&rep))
		return rep, l
	}

	It("has its late postbacks VERIFIED: History keeps what still awaits one past its limit", func() {
		rep, _ := queued(100)
		Expect(rep.Verification.Verified).To(Equal(200), "every late postback found its message")
		Expect(rep.Verification.Unmatched).To(BeZero())
	})

	It("keeps no more than twice its limit when the listener falls too far behind, and says what it lost", func() {
		rep, l := queued(20)
		Expect(len(l.runner.Emulator().Engine().List(nil))).To(BeNumerically("<=", 2*20+4), "memory stays bounded")
		Expect(rep.Verification.Verified + rep.Verification.Unmatched).To(Equal(200))
		Expect(rep.Verification.Unmatched).To(BeNumerically(">=", 200-2*20-4), "a postback for a message that left counts as matching no message")
	})
})

var _ = Describe("a long load run", func() {
	It("keeps a bounded number of its own messages, and still accounts for every one", func() {
		l := newLab(load.Config{Count: 600, Concurrency: 4, HistoryLimit: 50}, acking(true))
		rep, err := l.runner.Run(context.Background())
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Acked).To(Equal(600))
		Expect(rep.Verification.Verified).To(Equal(600))
		Expect(len(l.runner.Emulator().Engine().List(nil))).To(BeNumerically("<=", 50+4), "the emulator kept every message")
		Expect(len(l.runner.Emulator().PayPal().Postbacks(""))).To(BeNumerically("<=", 50+4), "and every postback")
		Expect(l.runner.LiveRecords()).To(BeNumerically("<=", 2*(50+4)), "the load's own records of them leave with them")
		Expect(rep.AckLatency.Count).To(Equal(600))
		Expect(rep.Verification.Latency.Count).To(Equal(600))
		if runtime.GOOS == "linux" {
			Expect(rep.RSS.StartBytes).To(BeNumerically(">", 0))
			Expect(rep.RSS.EndBytes).To(BeNumerically(">", 0))
		}
	})
})
