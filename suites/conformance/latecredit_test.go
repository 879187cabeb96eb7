package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/probe"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// lateCredits is a listener that verifies every copy and credits each
// VERIFIED one, the first at once and the later copies of the same
// transaction lateBy after it (other workers that looked for an earlier
// credit before the first was written). Its probe says honestly what it
// holds and whether it is still busy.
type lateCredits struct {
	verifyURL string
	lateBy    time.Duration

	mu       sync.Mutex
	busy     map[string]int
	verified map[string]int // copies verified so far
	effects  map[string][]probe.Effect
	changed  chan struct{}
}

func newLateCredits(verifyURL string, lateBy time.Duration) *lateCredits {
	return &lateCredits{verifyURL: verifyURL, lateBy: lateBy, busy: map[string]int{}, verified: map[string]int{}, effects: map[string][]probe.Effect{}, changed: make(chan struct{})}
}

func (l *lateCredits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == probe.IdlePath:
		l.idle(w, r)
	case strings.HasPrefix(r.URL.Path, probe.TransactionsPath+"paypal/"):
		l.transaction(w, strings.TrimPrefix(r.URL.Path, probe.TransactionsPath+"paypal/"))
	case strings.HasPrefix(r.URL.Path, "/probe/"):
		http.NotFound(w, r)
	default:
		body, _ := io.ReadAll(r.Body)
		f, _ := url.ParseQuery(string(body))
		txn := f.Get("txn_id")
		l.mu.Lock()
		l.busy[txn]++
		l.mu.Unlock()
		go l.process(body, txn, f.Get("mc_gross"), f.Get("mc_currency"))
	}
}

func (l *lateCredits) process(body []byte, txn, gross, currency string) {
	defer func() {
		l.mu.Lock()
		l.busy[txn]--
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}()
	resp, err := http.Post(l.verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
	if err != nil {
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(answer) != "VERIFIED" {
		return
	}
	l.mu.Lock()
	n := l.verified[txn]
	l.verified[txn]++
	l.mu.Unlock()
	if n > 0 {
		time.Sleep(l.lateBy)
	}
	l.mu.Lock()
	l.effects[txn] = append(l.effects[txn], probe.Effect{TxnID: txn, Status: "Completed", Amount: gross, Currency: currency, Customer: "C1"})
	l.mu.Unlock()
}

func (l *lateCredits) idle(w http.ResponseWriter, r *http.Request) {
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	txns := r.URL.Query()["txn_id"]
	deadline := time.Now().Add(wait)
	for {
		l.mu.Lock()
		busy, changed := 0, l.changed
		for _, t := range txns {
			busy += l.busy[t]
		}
		l.mu.Unlock()
		left := time.Until(deadline)
		if busy == 0 || left <= 0 {
			_ = json.NewEncoder(w).Encode(probe.Idle{Idle: busy == 0, Busy: busy, TxnIDs: txns})
			return
		}
		select {
		case <-changed:
		case <-time.After(left):
		}
	}
}

func (l *lateCredits) transaction(w http.ResponseWriter, txn string) {
	l.mu.Lock()
	effects := append([]probe.Effect{}, l.effects[txn]...)
	l.mu.Unlock()
	if len(effects) == 0 {
		http.NotFound(w, nil)
		return
	}
	net := 0.0
	for _, e := range effects {
		var v float64
		fmt.Sscanf(e.Amount, "%f", &v)
		net += v
	}
	_ = json.NewEncoder(w).Encode(probe.Transaction{Provider: "paypal", TxnID: txn, Status: "Completed", Customer: "C1",
		Effects: effects, Net: map[string]string{effects[0].Currency: fmt.Sprintf("%.2f", net)}})
}

var _ = Describe("A count judged while the listener is still busy with the transaction", func() {
	It("is not final: copies credited one after another, not at the same instant, fail PP-CONCURRENT-COPIES", func() {
		ln := freeListener()
		l := newLateCredits("http://"+ln.Addr().String()+"/cgi-bin/webscr", time.Second)
		srv := httptest.NewServer(l)
		DeferCleanup(srv.Close)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Probe, cfg.Focus = ln, srv.URL+"/ipn", srv.URL, "PP-CONCURRENT-COPIES"
		cfg.AckTimeout, cfg.PostbackWait, cfg.Settle = time.Second, time.Second, 5*time.Second
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		got := byID(rep)["PP-CONCURRENT-COPIES"]
		Expect(got.Status).To(Equal(scenarios.Failed), got.Message)
		Expect(got.Message).To(ContainSubstring("has 10 balance effect(s), want 1"))
	})
})
