package tail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/tail"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

var _ = Describe("A tail", func() {
	It("prints a line per event, coloured only when asked", func() {
		bus := events.NewBus(16)
		next := t0.Add(10 * time.Second)
		bus.Publish(events.MessageQueued, t0, "paypal", "M1", api.Summary{ID: "M1", Provider: "paypal", Kind: "web_accept", TxnID: "T1", URL: "http://127.0.0.1:9/ipn", Status: "Queued"})
		bus.Publish(events.Attempt, t0, "paypal", "M1", map[string]any{
			"message": api.Summary{ID: "M1", Status: "Retrying", NextAttempt: &next},
			"attempt": delivery.Attempt{Number: 1, Trigger: delivery.Initial, StatusCode: 500}})
		bus.Publish(events.Postback, t0, "paypal", "M1", map[string]any{"verdict": paypal.Verdict{Result: paypal.Verified}})
		bus.Publish(events.Postback, t0, "paypal", "", map[string]any{"verdict": paypal.Verdict{Result: paypal.Invalid, Rule: paypal.RuleUnknownMessage}})
		var plain, colour bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		Expect(tail.Follow(ctx, tail.BusSource(bus), 0, tail.Printer{W: &plain}, nil)).To(Succeed())
		Expect(plain.String()).To(Equal(`2026-11-20 12:00:00  M1  created  paypal web_accept txn T1 → http://127.0.0.1:9/ipn
2026-11-20 12:00:00  M1  attempt 1 (initial) → HTTP 500: not acknowledged; next attempt 2026-11-20 12:00:10
2026-11-20 12:00:00  M1  postback → VERIFIED
2026-11-20 12:00:00  (no message)  postback → INVALID
`))
		ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel2()
		Expect(tail.Follow(ctx2, tail.BusSource(bus), 0, tail.Printer{W: &colour, Color: true}, func(ev events.Event) bool { return ev.Type == events.Postback })).To(Succeed())
		Expect(colour.String()).To(ContainSubstring("\x1b[32mM1  postback → VERIFIED\x1b[0m"))
		Expect(colour.String()).To(ContainSubstring("\x1b[31m(no message)  postback → INVALID\x1b[0m"))
		Expect(colour.String()).NotTo(ContainSubstring("created"))
	})

	It("shows what the listener was answered first: an injected fault's answer, the emulator's verdict after it, labelled, in red", func() {
		bus := events.NewBus(16)
		for _, p := range []api.Postback{
			{Verdict: paypal.Verdict{Result: paypal.Verified}, Fault: paypal.FaultInvalid, Status: 200, Answer: "INVALID"},
			{Verdict: paypal.Verdict{Result: paypal.Verified}, Fault: paypal.FaultStatus500, Status: 500, Answer: "VERIFIED"},
			{Verdict: paypal.Verdict{Result: paypal.Verified}, Fault: paypal.FaultGarbage, Status: 200, Answer: "<html><body>down</body></html>"},
			{Verdict: paypal.Verdict{Result: paypal.Verified}, Fault: paypal.FaultDrop},
		} {
			p.Received = p.Answered()
			bus.Publish(events.Postback, t0, "paypal", "M1", p)
		}
		var colour bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		Expect(tail.Follow(ctx, tail.BusSource(bus), 0, tail.Printer{W: &colour, Color: true}, nil)).To(Succeed())
		Expect(colour.String()).To(Equal("2026-11-20 12:00:00  \x1b[31mM1  postback → INVALID (fault invalid injected; the emulator's verdict, not sent: VERIFIED)\x1b[0m\n" +
			"2026-11-20 12:00:00  \x1b[31mM1  postback → VERIFIED with HTTP 500 (fault status500 injected; the emulator's verdict, not sent: VERIFIED)\x1b[0m\n" +
			"2026-11-20 12:00:00  \x1b[31mM1  postback → an HTML page with HTTP 200 (fault garbage injected; the emulator's verdict, not sent: VERIFIED)\x1b[0m\n" +
			"2026-11-20 12:00:00  \x1b[31mM1  postback → no answer (the connection was closed) (fault drop injected; the emulator's verdict, not sent: VERIFIED)\x1b[0m\n"))
	})

	It("prints a postback made while its attempt was under way after that attempt's line, as a person reads the exchange", func() {
		// A listener that verifies before it answers: the verifier's
		// answer is on the bus before the attempt ends.
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0), Seed: 1}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		lst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			resp, err := http.Post(emu.VerifyURL(), "application/x-www-form-urlencoded", strings.NewReader("cmd=_notify-validate&"+string(body)))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}))
		DeferCleanup(lst.Close)
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: lst.URL})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { m, _ := emu.Engine().Get(v.ID); return len(m.Attempts) }).Should(Equal(1))

		var order []string
		evs, _ := emu.Events().Since(0, 0)
		for _, ev := range evs {
			order = append(order, ev.Type)
		}
		Expect(order).To(Equal([]string{events.MessageQueued, events.Postback, events.Attempt}), "the bus has the postback first")
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		Expect(tail.Follow(ctx, tail.BusSource(emu.Events()), 0, tail.Printer{W: &out}, nil)).To(Succeed())
		Expect(out.String()).To(MatchRegexp(`(?s)^[^\n]*  created  [^\n]*\n[^\n]*  attempt 1 \(initial\) → HTTP 200: acknowledged\n[^\n]*  postback → VERIFIED\n$`))
	})

	It("prints a held postback when the events end before its attempt's line", func() {
		bus := events.NewBus(16)
		bus.Publish(events.Postback, t0, "paypal", "M1", api.Postback{Verdict: paypal.Verdict{Result: paypal.Verified}, Received: "VERIFIED", DuringAttempt: 1})
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		Expect(tail.Follow(ctx, tail.BusSource(bus), 0, tail.Printer{W: &out}, nil)).To(Succeed())
		Expect(out.String()).To(Equal("2026-11-20 12:00:00  M1  postback → VERIFIED\n"))
	})

	It("colours only a terminal, never with NO_COLOR or in CI", func() {
		f, err := os.CreateTemp(GinkgoT().TempDir(), "out")
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		Expect(tail.ColorFor(f)).To(BeFalse(), "a file")
		GinkgoT().Setenv("NO_COLOR", "1")
		Expect(tail.ColorFor(os.Stdout)).To(BeFalse())
	})

	It("skips an event it cannot read rather than printing garbage", func() {
		_, ok := tail.Format(events.Event{Type: events.Attempt, Data: json.RawMessage(`{"attempt": 7}`)})
		Expect(ok).To(BeFalse())
	})
})
