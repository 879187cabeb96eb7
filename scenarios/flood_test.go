package scenarios_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/scenarios"
)

// slowRetrier is a listener that takes INVALID for a verifier error and
// asks again, slower each time, as one on a starved machine does; its
// probe says it is busy until it gives up.
type slowRetrier struct {
	verifyURL string
	gaps      []time.Duration // before each postback after the first
	mu        sync.Mutex
	busy      int
}

func (l *slowRetrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.busy++
	l.mu.Unlock()
	go func() {
		defer func() { l.mu.Lock(); l.busy--; l.mu.Unlock() }()
		for i := 0; i <= len(l.gaps); i++ {
			if i > 0 {
				time.Sleep(l.gaps[i-1]) // the listener's own pace, under test
			}
			resp, err := http.Post(l.verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
			if err != nil {
				return
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(answer) != "INVALID" {
				return
			}
		}
	}()
}

func (l *slowRetrier) Transaction(context.Context, string, string) (scenarios.ProbeTransaction, error) {
	return scenarios.ProbeTransaction{}, scenarios.ErrNoTransaction
}

func (l *slowRetrier) Idle(ctx context.Context, wait time.Duration, _ ...string) (bool, error) {
	deadline := time.Now().Add(wait)
	for {
		l.mu.Lock()
		idle := l.busy == 0
		l.mu.Unlock()
		if idle || !time.Now().Before(deadline) {
			return idle, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = Describe("A listener that posts a definitive INVALID back again", func() {
	It("fails postbacks_max when its third postback comes late, not only when the machine let it come before the judgement", func() {
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		lst := &slowRetrier{verifyURL: emu.VerifyURL(), gaps: []time.Duration{10 * time.Millisecond, 700 * time.Millisecond}}
		srv := httptest.NewServer(lst)
		DeferCleanup(srv.Close)
		sc, err := scenarios.Parse("flood.yaml", []byte(head+"  - send: {as: pay, kind: web_accept, fault: {kind: invalid}}\n"+
			"  - expect: {message: pay, verify_url: true, postbacks_max: 2}\n"))
		Expect(err).NotTo(HaveOccurred())
		res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu.Emulator, Targets: map[string]string{"paypal": srv.URL},
			Probe: lst, Settle: 5 * time.Second, PostbackWait: time.Second}, sc)
		Expect(res.Status).To(Equal(scenarios.Failed), "%+v", res)
		Expect(res.Message).To(ContainSubstring("posted back 3 times, at most 2 expected"))
	})
})
