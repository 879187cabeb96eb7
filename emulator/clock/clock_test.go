package clock_test

import (
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

var _ = Describe("Manual", func() {
	var (
		m   *clock.Manual
		mu  sync.Mutex
		log []string
	)
	record := func(s string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, s+"@"+m.Now().Sub(t0).String())
		}
	}
	BeforeEach(func() {
		m = clock.NewManual(t0)
		log = nil
	})

	It("stands still until advanced", func() {
		Expect(m.Now()).To(Equal(t0))
		Expect(m.Advance(90 * time.Second)).To(Succeed())
		Expect(m.Now()).To(Equal(t0.Add(90 * time.Second)))
	})

	It("fires callbacks in time order at their own time, and waits for them", func() {
		m.At(t0.Add(20*time.Second), record("b"))
		m.At(t0.Add(10*time.Second), record("a"))
		m.At(t0.Add(time.Hour), record("late"))
		Expect(m.Advance(30 * time.Second)).To(Succeed())
		Expect(log).To(Equal([]string{"a@10s", "b@20s"}))
		Expect(m.Pending()).To(Equal(1))
	})

	It("tells where the next callback waits, and nothing once none does", func() {
		_, ok := m.Next()
		Expect(ok).To(BeFalse())
		late := m.At(t0.Add(time.Hour), record("late"))
		m.At(t0.Add(10*time.Second), record("a"))
		next, ok := m.Next()
		Expect(ok).To(BeTrue())
		Expect(next).To(Equal(t0.Add(10 * time.Second)))
		Expect(m.Advance(next.Sub(m.Now()))).To(Succeed())
		Expect(log).To(Equal([]string{"a@10s"}))
		next, _ = m.Next()
		Expect(next).To(Equal(t0.Add(time.Hour)))
		late.Stop()
		_, ok = m.Next()
		Expect(ok).To(BeFalse())
	})

	It("runs work scheduled by a callback inside the same window (a retry chain)", func() {
		var step func(n int) func()
		step = func(n int) func() {
			return func() {
				record("try")()
				if n < 15 {
					wait := min(10*time.Second<<(n-1), 24*time.Hour)
					m.At(m.Now().Add(wait), step(n+1))
				}
			}
		}
		m.At(t0.Add(10*time.Second), step(1))
		Expect(m.Advance(5 * 24 * time.Hour)).To(Succeed())
		Expect(log).To(HaveLen(15))
		Expect(log[14]).To(Equal("try@45h30m40s")) // 10 s + sum of min(10 s·2^(n-1), 24 h) for n = 1..14
	})

	It("starts callbacks due now at once, and WaitIdle waits for them", func() {
		done := make(chan struct{})
		m.At(t0, func() { <-done; record("now")() })
		close(done)
		m.WaitIdle()
		Expect(log).To(Equal([]string{"now@0s"}))
	})

	It("Stop keeps a callback from running", func() {
		t := m.At(t0.Add(time.Second), record("x"))
		Expect(t.Stop()).To(BeTrue())
		Expect(t.Stop()).To(BeFalse())
		Expect(m.Advance(time.Minute)).To(Succeed())
		Expect(log).To(BeEmpty())
	})

	It("RunUntilIdle moves to the last callback, and reports work left past its limit", func() {
		m.At(t0.Add(48*time.Hour), record("x"))
		moved, err := m.RunUntilIdle(72 * time.Hour)
		Expect(err).NotTo(HaveOccurred())
		Expect(moved).To(Equal(48 * time.Hour))
		m.At(m.Now().Add(100*time.Hour), record("y"))
		_, err = m.RunUntilIdle(time.Hour)
		Expect(err).To(MatchError(ContainSubstring("1 callbacks still waiting")))
	})

	It("refuses to move backwards", func() {
		Expect(m.Advance(-time.Second)).To(MatchError(clock.ErrNegative))
	})
})

var _ = Describe("Parse", func() {
	It("builds each mode", func() {
		for mode, want := range map[string]string{"real": "real", "manual": "manual", "scale:3600": "scale:3600"} {
			c, err := clock.Parse(mode, t0)
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Mode()).To(Equal(want))
		}
	})
	It("names the choices on a bad mode", func() {
		_, err := clock.Parse("fast", t0)
		Expect(err).To(MatchError(`clock mode "fast": want real, manual or scale:N`))
		_, err = clock.Parse("scale:-2", t0)
		Expect(err).To(MatchError(ContainSubstring("scale must be a number")))
	})
	It("a scaled clock runs faster than the wall", func() {
		c := clock.NewScaled(1e6)
		start := c.Now()
		fired := make(chan time.Time, 1)
		c.At(start.Add(time.Hour), func() { fired <- c.Now() })
		Eventually(fired).WithTimeout(2 * time.Second).Should(Receive(BeTemporally(">=", start.Add(time.Hour))))
	})
})

var _ = DescribeTable("ParseDuration",
	func(in string, want time.Duration, wantErr bool) {
		d, err := clock.ParseDuration(in)
		if wantErr {
			Expect(err).To(HaveOccurred())
			return
		}
		Expect(err).NotTo(HaveOccurred())
		Expect(d).To(Equal(want))
	},
	Entry("seconds", "90s", 90*time.Second, false),
	Entry("days", "4d", 96*time.Hour, false),
	Entry("days and hours", "1d12h", 36*time.Hour, false),
	Entry("hours", "96h", 96*time.Hour, false),
	Entry("negative", "-1s", time.Duration(0), true),
	Entry("junk", "soon", time.Duration(0), true),
	Entry("empty", "", time.Duration(0), true),
	Entry("a century exactly", "36500d", clock.MaxDuration, false),
	Entry("fractional days", "0.5d", 12*time.Hour, false),
	Entry("infinite days", "Infd", time.Duration(0), true),
	Entry("NaN days", "NaNd", time.Duration(0), true),
	Entry("1e300 days (overflowed to 292 years back)", "1e300d", time.Duration(0), true),
	Entry("days plus hours past int64", "106751d1000h", time.Duration(0), true),
	Entry("hours past int64", "9999999999999h", time.Duration(0), true),
	Entry("a sum past a century", "36500d1s", time.Duration(0), true),
	Entry("hex days", "0x10d", time.Duration(0), true),
	Entry("negative days", "-1d", time.Duration(0), true),
)

var _ = Describe("Clock limits", func() {
	It("refuses a NaN, zero or huge scale", func() {
		for _, mode := range []string{"scale:NaN", "scale:0", "scale:-1", "scale:Inf", "scale:1e10"} {
			_, err := clock.Parse(mode, time.Now())
			Expect(err).To(HaveOccurred(), mode)
		}
	})

	It("refuses to move a manual clock backwards or past a century, leaving it where it was", func() {
		start := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
		m := clock.NewManual(start)
		Expect(m.Advance(clock.MaxDuration + 1)).To(MatchError(clock.ErrTooLong))
		Expect(m.Advance(-time.Second)).To(MatchError(clock.ErrNegative))
		_, err := m.RunUntilIdle(clock.MaxDuration + 1)
		Expect(err).To(MatchError(clock.ErrTooLong))
		Expect(m.Now()).To(Equal(start))
	})
})
