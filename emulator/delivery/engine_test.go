package delivery_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// listener answers each delivery with the next status of its script (the
// last one repeats) and remembers what it received.
type listener struct {
	mu       sync.Mutex
	script   []int
	received []*http.Request
	bodies   []string
	hang     bool
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.received = append(l.received, r)
	l.bodies = append(l.bodies, string(b))
	n := len(l.received)
	code := l.script[min(n, len(l.script))-1]
	hang := l.hang
	l.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "answer %d", n)
}

func (l *listener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.received)
}

var _ = Describe("Engine", func() {
	var (
		clk    *clock.Manual
		eng    *delivery.Engine
		lst    *listener
		srv    *httptest.Server
		events []delivery.Event
		evMu   sync.Mutex
	)
	submit := func(id string, mut ...func(*delivery.Submission)) delivery.Message {
		s := delivery.Submission{
			ID: id, Provider: "paypal", URL: srv.URL + "/ipn", Body: []byte("a=1"),
			ResendBody: []byte("a=1&resend=true"),
			Header:     http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Schedule:   doubling(), Ack: delivery.Only200,
		}
		for _, m := range mut {
			m(&s)
		}
		msg, err := eng.Submit(s)
		Expect(err).NotTo(HaveOccurred())
		clk.WaitIdle()
		return msg
	}
	get := func(id string) delivery.Message {
		m, ok := eng.Get(id)
		Expect(ok).To(BeTrue())
		return m
	}
	BeforeEach(func() {
		clk = clock.NewManual(t0)
		lst = &listener{script: []int{200}}
		srv = httptest.NewServer(lst)
		events = nil
		var err error
		eng, err = delivery.NewEngine(delivery.Config{Clock: clk, AckTimeout: 200 * time.Millisecond, OnEvent: func(e delivery.Event) {
			evMu.Lock()
			defer evMu.Unlock()
			events = append(events, e)
		}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { eng.Close(); srv.Close() })
	})

	It("delivers at once, with the given headers, and stops at the first 200", func() {
		submit("M1")
		m := get("M1")
		Expect(m.Status).To(Equal(delivery.Sent))
		Expect(m.Attempts).To(HaveLen(1))
		a := m.Attempts[0]
		Expect(a.Trigger).To(Equal(delivery.Initial))
		Expect(a.StatusCode).To(Equal(200))
		Expect(a.Acked).To(BeTrue())
		Expect(a.Response).To(Equal("answer 1"))
		Expect(a.Start).To(Equal(t0))
		Expect(lst.received[0].Header.Get("Content-Type")).To(Equal("application/x-www-form-urlencoded"))
		Expect(clk.Advance(5 * 24 * time.Hour)).To(Succeed())
		Expect(lst.count()).To(Equal(1))
	})

	It("sends the members of a burst together: a member connected first waits, its last byte unsent, until every member is ready", func() {
		// A body that arrives before the last member is even submitted was
		// not held. (Counting the connections the server had accepted
		// when the first body came was wrong beside a CPU hog: the kernel
		// completes a connection before the server's accept loop hears of
		// it.)
		var mu sync.Mutex
		conns, early, lastSubmitted := 0, 0, false
		race := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			mu.Lock()
			if !lastSubmitted {
				early++
			}
			mu.Unlock()
		}))
		race.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				mu.Lock()
				conns++
				mu.Unlock()
			}
		}
		race.Start()
		defer race.Close()
		connected := func() int {
			mu.Lock()
			defer mu.Unlock()
			return conns
		}
		burst := delivery.NewBurst(5)
		for i := range 5 {
			if i == 4 {
				mu.Lock()
				lastSubmitted = true
				mu.Unlock()
			}
			_, err := eng.Submit(delivery.Submission{ID: fmt.Sprint("B", i), Provider: "paypal", URL: race.URL, Body: []byte("a=1&b=2"),
				Schedule: doubling(), Ack: delivery.Only200, Burst: burst})
			Expect(err).NotTo(HaveOccurred())
			// The first member is connected (and would be sent at once
			// without the burst) before the next is even submitted.
			Eventually(connected).Should(Equal(i + 1))
		}
		clk.WaitIdle()
		for i := range 5 {
			Expect(get(fmt.Sprint("B", i)).Status).To(Equal(delivery.Sent))
		}
		mu.Lock()
		defer mu.Unlock()
		Expect(early).To(BeZero(), "%d bodies arrived before the last member was submitted", early)
	})

	It("lets a burst go when a member never comes: the others wait at most BurstWait", func() {
		burst := delivery.NewBurst(3)
		burst.Leave() // never submitted
		submit("B1", func(s *delivery.Submission) { s.Burst = burst })
		submit("B2", func(s *delivery.Submission) { s.Burst = burst })
		Expect(get("B1").Status).To(Equal(delivery.Sent))
		Expect(get("B2").Status).To(Equal(delivery.Sent))
	})

	It("retries 15 times on PayPal's schedule, then fails, in well under a second", func() {
		lst.script = []int{500}
		submit("M1")
		Expect(get("M1").Status).To(Equal(delivery.Retrying))
		start := time.Now()
		Expect(clk.Advance(5 * 24 * time.Hour)).To(Succeed())
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))

		m := get("M1")
		Expect(m.Status).To(Equal(delivery.Failed))
		Expect(m.Retries).To(Equal(15))
		Expect(m.Attempts).To(HaveLen(16))
		elapsed := time.Duration(0)
		for n := 1; n <= 15; n++ {
			elapsed += min(10*time.Second<<(n-1), 24*time.Hour)
			a := m.Attempts[n]
			Expect(a.Trigger).To(Equal(delivery.Retry))
			Expect(a.Start).To(Equal(t0.Add(elapsed)), "retry %d", n)
		}
		Expect(m.Attempts[13].Start.Sub(t0)).To(Equal(81910 * time.Second))  // 22.8 h
		Expect(m.Attempts[14].Start.Sub(t0)).To(Equal(163830 * time.Second)) // 45.5 h
		Expect(m.Attempts[15].Start.Sub(t0)).To(Equal(250230 * time.Second)) // 69.5 h
		Expect(m.Attempts[15].NextAttempt).To(BeNil())
		Expect(m.NextAttempt).To(BeNil())
	})

	It("stops retrying after a 200 in the middle of the schedule", func() {
		lst.script = []int{503, 500, 200}
		submit("M1")
		Expect(clk.Advance(5 * 24 * time.Hour)).To(Succeed())
		m := get("M1")
		Expect(m.Status).To(Equal(delivery.Sent))
		Expect(m.Attempts).To(HaveLen(3))
		Expect(m.AckedAt).To(HaveValue(Equal(t0.Add(30 * time.Second))))
		Expect(clk.Pending()).To(Equal(0))
	})

	It("treats a 201 as a failure under Only200, and as an ack with a note under Any2xx", func() {
		lst.script = []int{201}
		submit("strict")
		m := get("strict")
		Expect(m.Status).To(Equal(delivery.Retrying))
		Expect(m.Attempts[0].Note).To(ContainSubstring("only 200"))

		submit("lenient", func(s *delivery.Submission) { s.Ack = delivery.Any2xx })
		m = get("lenient")
		Expect(m.Status).To(Equal(delivery.Sent))
		Expect(m.Attempts[0].Note).To(ContainSubstring("strict mode fails it"))
	})

	It("counts no answer within the ack timeout as a failure", func() {
		lst.hang = true
		submit("M1")
		m := get("M1")
		Expect(m.Status).To(Equal(delivery.Retrying))
		Expect(m.Attempts[0].Error).To(Equal("no answer within 200ms"))
		Expect(m.Attempts[0].StatusCode).To(BeZero())
	})

	It("counts a refused connection as a failure", func() {
		closed := httptest.NewServer(http.NotFoundHandler())
		url := closed.URL
		closed.Close()
		submit("M1", func(s *delivery.Submission) { s.URL = url })
		m := get("M1")
		Expect(m.Status).To(Equal(delivery.Retrying))
		Expect(m.Attempts[0].Error).To(ContainSubstring("connection refused"))
	})

	It("does not follow redirects: a 302 is not an ack", func() {
		lst.script = []int{302}
		submit("M1")
		Expect(get("M1").Attempts[0].StatusCode).To(Equal(302))
		Expect(get("M1").Status).To(Equal(delivery.Retrying))
	})

	It("records only the first 4 KiB of an answer", func() {
		big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", 10000)))
		}))
		defer big.Close()
		submit("M1", func(s *delivery.Submission) { s.URL = big.URL })
		Expect(get("M1").Attempts[0].Response).To(HaveLen(4096))
	})

	It("resends by hand with the resend body, to another URL if asked, without touching the schedule", func() {
		lst.script = []int{500, 500, 200}
		submit("M1")
		other := &listener{script: []int{500}}
		osrv := httptest.NewServer(other)
		defer osrv.Close()

		m, err := eng.Resend("M1", osrv.URL+"/x")
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Resending).To(BeTrue())
		Expect(m.HistoryStatus()).To(Equal("Retrying - resending"))
		clk.WaitIdle()
		m = get("M1")
		Expect(m.Resending).To(BeFalse())
		Expect(m.Resent).To(BeTrue())
		Expect(m.Status).To(Equal(delivery.Retrying))
		Expect(other.bodies).To(Equal([]string{"a=1&resend=true"}))
		Expect(m.Attempts[1].Trigger).To(Equal(delivery.Manual))
		Expect(m.Attempts[1].URL).To(Equal(osrv.URL + "/x"))

		// The schedule goes on to the original URL: retry 1 (10 s) gets the
		// second 500, retry 2 (30 s) the 200.
		Expect(clk.Advance(time.Minute)).To(Succeed())
		m = get("M1")
		Expect(m.Status).To(Equal(delivery.Sent))
		Expect(lst.bodies).To(Equal([]string{"a=1", "a=1", "a=1"}))
		Expect(m.AckedAt).To(HaveValue(Equal(t0.Add(30 * time.Second))))
	})

	It("a manual resend that is acked ends the schedule; a failed message can be resent", func() {
		lst.script = []int{500}
		submit("M1")
		Expect(clk.Advance(5 * 24 * time.Hour)).To(Succeed())
		Expect(get("M1").Status).To(Equal(delivery.Failed))
		lst.mu.Lock()
		lst.script = []int{200}
		lst.mu.Unlock()
		_, err := eng.Resend("M1", "")
		Expect(err).NotTo(HaveOccurred())
		clk.WaitIdle()
		Expect(get("M1").Status).To(Equal(delivery.Sent))
	})

	It("holds a message as Held until released", func() {
		submit("M1", func(s *delivery.Submission) { s.Hold = true; s.URL = "" })
		Expect(get("M1").Status).To(Equal(delivery.Held))
		Expect(lst.count()).To(Equal(0))
		Expect(eng.Held()).To(Equal([]string{"M1"}))
		Expect(eng.Release("M1", srv.URL)).To(Succeed())
		clk.WaitIdle()
		Expect(get("M1").Status).To(Equal(delivery.Sent))
		Expect(eng.Release("M1", srv.URL)).To(MatchError(delivery.ErrNotHeld))
	})

	It("reports events in order: queued before attempts", func() {
		lst.script = []int{500, 200}
		submit("M1")
		Expect(clk.Advance(time.Minute)).To(Succeed())
		evMu.Lock()
		defer evMu.Unlock()
		types := []delivery.EventType{}
		for _, e := range events {
			types = append(types, e.Type)
		}
		Expect(types).To(Equal([]delivery.EventType{delivery.EventQueued, delivery.EventAttempt, delivery.EventAttempt}))
		Expect(events[2].Message.Status).To(Equal(delivery.Sent))
	})

	It("rejects bad submissions with precise errors", func() {
		_, err := eng.Submit(delivery.Submission{ID: "x", URL: "ftp://h/", Schedule: doubling()})
		Expect(err).To(MatchError(delivery.ErrBadURL))
		Expect(err.Error()).To(ContainSubstring("scheme must be http or https"))
		submit("dup")
		_, err = eng.Submit(delivery.Submission{ID: "dup", URL: srv.URL, Schedule: doubling()})
		Expect(err).To(MatchError(delivery.ErrDuplicate))
		_, err = eng.Resend("nope", "")
		Expect(err).To(MatchError(delivery.ErrNotFound))
	})

	It("delivers many messages due at the same instant concurrently and accounts for all", func() {
		lst.script = make([]int, 51)
		for i := range 50 {
			lst.script[i] = 500
		}
		lst.script[50] = 200
		for i := 0; i < 50; i++ {
			submit(fmt.Sprintf("M%d", i))
		}
		Expect(eng.List(func(m *delivery.Message) bool { return m.Status == delivery.Retrying })).To(HaveLen(50))
		Expect(clk.Advance(time.Hour)).To(Succeed())
		sent := eng.List(func(m *delivery.Message) bool { return m.Status == delivery.Sent })
		Expect(sent).To(HaveLen(50))
		for _, m := range sent {
			Expect(m.Attempts).To(HaveLen(2))
			Expect(m.Attempts[1].Start).To(Equal(t0.Add(10 * time.Second)))
		}
	})
})

var _ = Describe("Backoff", func() {
	It("doubles from its first wait up to its cap, for its count of retries", func() {
		s := doubling()
		Expect(s.Validate()).To(Succeed())
		w, ok := s.Next(1)
		Expect(ok).To(BeTrue())
		Expect(w).To(Equal(10 * time.Second))
		w, _ = s.Next(4)
		Expect(w).To(Equal(80 * time.Second))
		w, _ = s.Next(15)
		Expect(w).To(Equal(24 * time.Hour))
		_, ok = s.Next(16)
		Expect(ok).To(BeFalse())
	})
	It("a window ends the schedule when the waits add up past it", func() {
		s := delivery.Backoff{Initial: time.Minute, Factor: 2, Max: time.Hour, Window: 24 * time.Hour}
		Expect(s.Validate()).To(Succeed())
		n := 1
		for ; ; n++ {
			if _, ok := s.Next(n); !ok {
				break
			}
		}
		Expect(s.Elapsed(n - 1)).To(BeNumerically("<=", 24*time.Hour))
		Expect(s.Elapsed(n)).To(BeNumerically(">", 24*time.Hour))
	})
	It("refuses schedules that never end", func() {
		Expect(delivery.Backoff{Initial: time.Second, Factor: 2, Max: time.Hour}.Validate()).To(MatchError(ContainSubstring("never ends")))
	})
})

var _ = Describe("Backoff.Elapsed", func() {
	It("adds the waits up exactly, at the same cost for any retry", func() {
		sum := func(b delivery.Backoff, n int) time.Duration {
			var t time.Duration
			for i := 1; i <= n; i++ {
				w, _ := (delivery.Backoff{Initial: b.Initial, Factor: b.Factor, Max: b.Max, MaxRetries: n}).Next(i)
				t += w
			}
			return t
		}
		for _, b := range []delivery.Backoff{
			doubling(),
			{Initial: time.Second, Factor: 1, Max: time.Second, Window: 6 * time.Hour},
			{Initial: time.Second, Factor: 1, Max: time.Minute, Window: 6 * time.Hour},
			{Initial: 3 * time.Second, Factor: 1.5, Max: 10 * time.Minute},
			{Initial: time.Millisecond, Factor: 2, Max: 24 * time.Hour},
			{Initial: time.Second, Factor: 1.001, Max: 2 * time.Second},
		} {
			for _, n := range []int{0, 1, 2, 13, 14, 15, 16, 64, 65, 200, 1000} {
				got, want := b.Elapsed(n), sum(b, n)
				if b.Factor == 1.001 {
					Expect(got).To(BeNumerically("~", want, time.Duration(n)), "%+v retry %d", b, n)
				} else {
					Expect(got).To(Equal(want), "%+v retry %d", b, n)
				}
			}
		}
		// A constant 1 s schedule over 6 h: its last retry is 21,600 s in.
		Expect((delivery.Backoff{Initial: time.Second, Factor: 1, Max: time.Second, Window: 6 * time.Hour}).Elapsed(21600)).To(Equal(6 * time.Hour))
	})
})
