package listener_test

import (
	"context"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store"
)

// countingStore is a team's own store decoration: it counts the
// transactions the listener runs.
type countingStore struct {
	store.Store
	mu  *sync.Mutex
	txs *int
}

func (s countingStore) Tx(ctx context.Context, f func(store.Tx) error) error {
	s.mu.Lock()
	*s.txs++
	s.mu.Unlock()
	return s.Store.Tx(ctx, f)
}

var _ = Describe("The reference listener's seams", func() {
	It("hands each verified PayPal notification to a rules decoration, decoded, and applies what it passes on by the reference rules", func() {
		var mu sync.Mutex
		var seen []listener.Delivery
		r := newRig(func(c *listener.Config) {
			c.WrapRules = func(next listener.Rules) listener.Rules {
				return listener.RulesFunc(func(d *listener.Delivery) error {
					mu.Lock()
					seen = append(seen, *d)
					mu.Unlock()
					if d.Fields["mc_gross"] == "99.00" { // the team's policy: held for a look
						return d.Log(d.Txn, d.Kind, d.Status, "held", "over the team's limit")
					}
					return next.Apply(d)
				})
			}
		})
		small := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "10.00"}, Charset: "windows-1252",
			Set: emulator.Fields{{Name: "first_name", Value: "Jörg"}}})
		big := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "99.00"}})
		Expect(r.balance("USD")).To(Equal("10.00"), "the reference rules credited what the decoration passed on, and only that")

		mu.Lock()
		defer mu.Unlock()
		Expect(seen).To(HaveLen(2))
		Expect(seen[0].Verdict).To(Equal("VERIFIED"))
		Expect([]string{seen[0].Txn, seen[0].Kind, seen[0].Status}).To(Equal([]string{small.TxnID, "web_accept", "Completed"}))
		Expect(seen[0].Fields["first_name"]).To(Equal("Jörg"), "decoded in the message's charset")
		Expect(seen[1].Txn).To(Equal(big.TxnID))
		lines, err := r.lst.Store().Log(context.Background(), big.TxnID, 10)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(1))
		Expect([]string{lines[0].Action, lines[0].Detail, lines[0].Verdict}).To(Equal([]string{"held", "over the team's limit", "VERIFIED"}))
	})

	It("keeps its state in a store decoration of the team's own", func() {
		var mu sync.Mutex
		var txs int
		r := newRig(func(c *listener.Config) {
			c.WrapStore = func(st store.Store) store.Store { return countingStore{st, &mu, &txs} }
		})
		r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "10.00"}})
		Expect(r.balance("USD")).To(Equal("10.00"))
		mu.Lock()
		defer mu.Unlock()
		Expect(txs).To(BeNumerically(">=", 1))
	})

	It("refuses a decoration that returns nothing, saying which", func() {
		cfg := baseConfig("http://127.0.0.1:9/cgi-bin/webscr", GinkgoT().TempDir()+"/l.db")
		cfg.WrapRules = func(listener.Rules) listener.Rules { return nil }
		_, err := listener.New(cfg)
		Expect(err).To(MatchError("listener config: WrapRules returned no rules"))
		cfg.WrapRules, cfg.WrapStore = nil, func(store.Store) store.Store { return nil }
		_, err = listener.New(cfg)
		Expect(err).To(MatchError("listener config: WrapStore returned no store"))
	})
})
