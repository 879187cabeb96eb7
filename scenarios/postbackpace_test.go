package scenarios_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/scenarios"
)

var _ = Describe("Waiting for a postback", func() {
	It("lasts PostbackWait, or four times the slowest postback the run has seen: a listener slowed by a busy machine is not judged as never posting back", func() {
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		// A listener that acks at once and posts back after delay.
		slow := func(delay time.Duration) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				go func() {
					time.Sleep(delay)
					resp, err := http.Post(emu.VerifyURL(), "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
					if err == nil {
						resp.Body.Close()
					}
				}()
			}))
			DeferCleanup(srv.Close)
			return srv.URL
		}
		sc, err := scenarios.Parse("verified.yaml", []byte(head+"  - send: {as: pay, kind: web_accept}\n  - expect: {message: pay, verdict: VERIFIED}\n"))
		Expect(err).NotTo(HaveOccurred())
		run := func(listener string, pace *scenarios.PostbackPace) scenarios.Result {
			return scenarios.Run(context.Background(), scenarios.Env{Emulator: emu.Emulator, Targets: map[string]string{"paypal": listener}, PostbackWait: time.Second, PostbackPace: pace}, sc)
		}

		lateOnce := slow(1200 * time.Millisecond)
		Expect(run(lateOnce, nil).Status).To(Equal(scenarios.Failed), "a second's wait, nothing learned: 1.2 s is too late")

		pace := &scenarios.PostbackPace{}
		Expect(run(slow(600*time.Millisecond), pace).Status).To(Equal(scenarios.Passed))
		Expect(pace.Wait(time.Second)).To(BeNumerically(">=", 4*600*time.Millisecond), "the slowest postback, four times")
		Expect(run(lateOnce, pace).Status).To(Equal(scenarios.Passed), "the run has seen postbacks take 0.6 s: it waits 2.4 s")

		// The verdict names the wait asked for, not the stretched one: a
		// seed's report must not change with how busy the machine was.
		mute := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(mute.Close)
		res := run(mute.URL, pace)
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.Message).To(ContainSubstring("never posted back within 1s"))
	})

	It("learns the listener's pace, not the time a message waited in the retry queue: a postback after a retry teaches nothing", func() {
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		// Down for the first delivery (500, no postback); then it posts
		// back at once, and acks.
		var deliveries atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if deliveries.Add(1) == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			resp, err := http.Post(emu.VerifyURL(), "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
			if err == nil {
				resp.Body.Close()
			}
		}))
		DeferCleanup(srv.Close)
		sc, err := scenarios.Parse("retried.yaml", []byte(head+"  - send: {as: pay, kind: web_accept}\n  - advance: {by: 1m}\n  - expect: {message: pay, verdict: VERIFIED}\n"))
		Expect(err).NotTo(HaveOccurred())
		pace := &scenarios.PostbackPace{}
		res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu.Emulator, Targets: map[string]string{"paypal": srv.URL}, PostbackWait: 300 * time.Millisecond, PostbackPace: pace}, sc)
		Expect(res.Status).To(Equal(scenarios.Passed), res.Message)
		Expect(deliveries.Load()).To(BeNumerically("==", 2))
		// The message waited at least the 300 ms the send step gave its
		// first delivery's postback before the clock moved: learned, that
		// would stretch every later wait to four times as much.
		Expect(pace.Wait(0)).To(BeZero(), "nothing learned from a retried message")
	})

	It("learns nothing from a postback the verifier itself held (a slow fault): its answer came when the verifier chose, not the listener", func() {
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		// Acks, then posts back at once.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			go func() {
				resp, err := http.Post(emu.VerifyURL(), "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
				if err == nil {
					resp.Body.Close()
				}
			}()
		}))
		DeferCleanup(srv.Close)
		sc, err := scenarios.Parse("held.yaml", []byte(head+"  - send: {as: pay, kind: web_accept, fault: {kind: slow, delay: 300ms, count: 1}}\n  - expect: {message: pay, verdict: VERIFIED}\n"))
		Expect(err).NotTo(HaveOccurred())
		pace := &scenarios.PostbackPace{}
		res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu.Emulator, Targets: map[string]string{"paypal": srv.URL}, PostbackWait: time.Second, PostbackPace: pace}, sc)
		Expect(res.Status).To(Equal(scenarios.Passed), res.Message)
		// Learned, the 300 ms the verifier held its answer would stretch
		// every later wait of the run to 1.2 s (a session's held postback
		// made every outage check of a listener failing it wait 8 s).
		Expect(pace.Wait(0)).To(BeNumerically("<", 300*time.Millisecond), "the verifier's own delay is no pace of the listener's")
	})
})
