package conformance_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/explore"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// An order shop: orders first, then PayPal, as WooCommerce, Magento and
// django-paypal's own example work. A customer's order is created (here
// through the shop's POST /orders, the order source the harness calls),
// the payment names it in invoice, and the IPN handler verifies the
// message, then checks the order it names, its amount and its currency
// before it marks the order paid. Its schema and probe map are
// docs/probe.md's worked example for orders, read from the page.
type orderShop struct {
	shopDB
	verifyURL string
	flaw      string // "", no-amount-check, no-currency-check, no-paid-check, accept-unknown
	client    *http.Client
	mu        sync.Mutex // one IPN at a time per order, as a row lock would
}

// orderShopDocs reads the worked example's schema and map from
// docs/probe.md.
func orderShopDocs() (schema, probeMap string) {
	doc, err := os.ReadFile("../../docs/probe.md")
	Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile("(?s)<!-- orders-example -->\n```sql\n(.*?)```\n```yaml\n(.*?)```").FindSubmatch(doc)
	Expect(m).NotTo(BeNil(), "docs/probe.md has no worked orders example")
	return string(m[1]), string(m[2])
}

func newOrderShop(db *sql.DB, postgres bool, verifyURL, flaw string) *orderShop {
	schema, _ := orderShopDocs()
	if postgres {
		schema = strings.ReplaceAll(schema, "INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
	}
	for _, stmt := range strings.Split(schema, ";") {
		if strings.TrimSpace(stmt) != "" {
			_, err := db.Exec(stmt)
			Expect(err).NotTo(HaveOccurred(), stmt)
		}
	}
	return &orderShop{shopDB: shopDB{db, postgres}, verifyURL: verifyURL, flaw: flaw, client: &http.Client{Timeout: 5 * time.Second}}
}

func (s *orderShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/orders" {
		s.newOrder(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Verified in the handler, as django-paypal does; the answer is 200
	// whatever the verifier said.
	if verifyIPN(s.client, s.verifyURL, body, false) {
		s.apply(body)
	}
}

// newOrder creates an order of the amount and currency asked for: the
// order source the harness calls (--orders http://.../orders).
func (s *orderShop) newOrder(w http.ResponseWriter, r *http.Request) {
	var req struct{ Amount, Currency string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cents, ok := centsOf(req.Amount)
	if !ok {
		http.Error(w, "bad amount", http.StatusBadRequest)
		return
	}
	id, err := s.insertID(`INSERT INTO orders (total_cents, currency, status) VALUES (?, ?, 'pending')`, cents, req.Currency)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"ref": strconv.FormatInt(id, 10), "amount": req.Amount, "currency": req.Currency, "field": "invoice"})
}

func (s *orderShop) apply(body []byte) {
	f, err := url.ParseQuery(string(body))
	if err != nil || (f.Get("receiver_email") != emulator.DefaultReceiverEmail && f.Get("receiver_id") != emulator.DefaultReceiverID) {
		return
	}
	cents, ok := centsOf(f.Get("mc_gross"))
	txn, parent, status, cur := f.Get("txn_id"), f.Get("parent_txn_id"), f.Get("payment_status"), f.Get("mc_currency")
	if !ok || txn == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	capture := parent != "" && f.Get("auth_id") == parent
	switch {
	case (parent == "" || capture) && status == "Completed" && slices.Contains(moneyIn, f.Get("txn_type")):
		s.pay(f.Get("invoice"), txn, cents, cur)
	case parent != "" && (status == "Refunded" || status == "Reversed" || status == "Canceled_Reversal"):
		s.wait(txn, parent, status, cents, cur)
		s.applyWaiting(parent)
	}
}

// pay applies a Completed payment to the order it names, if it is that
// order's, for its amount, in its currency, and the order is not paid.
func (s *orderShop) pay(invoice, txn string, cents int64, cur string) {
	id, err := strconv.ParseInt(invoice, 10, 64)
	var total int64
	var currency, status string
	if err == nil {
		err = s.db.QueryRow(s.q(`SELECT total_cents, currency, status FROM orders WHERE id = ?`), id).Scan(&total, &currency, &status)
	}
	switch {
	case err != nil && s.flaw != "accept-unknown":
		return // no such order
	case err != nil:
		id = 0 // the flaw: a payment of no order is kept as received
	case cents != total && s.flaw != "no-amount-check":
		return
	case cur != currency && s.flaw != "no-currency-check":
		return
	case status == "paid" && s.flaw != "no-paid-check":
		var same int
		if s.db.QueryRow(s.q(`SELECT count(*) FROM payments WHERE txn_id = ?`), txn).Scan(&same); same == 0 {
			return // another payment for a paid order: not counted again
		}
	}
	res, err := s.db.Exec(s.q(`INSERT INTO payments (order_id, txn_id, parent_txn_id, payment_status, amount_cents, currency) VALUES (?, ?, '', 'Completed', ?, ?) ON CONFLICT DO NOTHING`),
		id, txn, cents, cur)
	if err != nil {
		return
	}
	if n, _ := res.RowsAffected(); n == 1 {
		_, _ = s.db.Exec(s.q(`UPDATE orders SET status = 'paid' WHERE id = ?`), id)
		s.applyWaiting(txn)
	}
}

// applyWaiting applies the refunds and reversals of a payment the shop
// applied to an order.
func (s *orderShop) applyWaiting(parent string) {
	var order int64
	if s.db.QueryRow(s.q(`SELECT order_id FROM payments WHERE txn_id = ? AND parent_txn_id = ''`), parent).Scan(&order) != nil {
		return
	}
	kids := s.waiting(parent)
	for _, k := range kids {
		if k.status == "Canceled_Reversal" {
			var n int
			if s.db.QueryRow(s.q(`SELECT count(*) FROM payments WHERE parent_txn_id = ? AND payment_status = 'Reversed'`), parent).Scan(&n); n == 0 {
				continue
			}
		}
		_, _ = s.db.Exec(s.q(`INSERT INTO payments (order_id, txn_id, parent_txn_id, payment_status, amount_cents, currency) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			order, k.txn, parent, k.status, k.cents, k.cur)
	}
}

// verifyIPN posts a message back until it gets an answer (five tries):
// VERIFIED with HTTP 200 (or any status, trusting a 500) is true.
func verifyIPN(client *http.Client, verifyURL string, body []byte, trust500 bool) bool {
	for try := 0; try < 5; try++ {
		resp, err := client.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
		if err != nil {
			time.Sleep(30 * time.Millisecond)
			continue
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ok := resp.StatusCode == http.StatusOK || trust500
		switch {
		case ok && string(answer) == "VERIFIED":
			return true
		case ok && string(answer) == "INVALID":
			return false
		}
		time.Sleep(30 * time.Millisecond)
	}
	return false
}

// orderShopVerdicts: the correct shop passes every business check it can
// be judged on; each broken one fails exactly the check naming its bug.
var orderShopVerdicts = map[string][]string{
	"":                  nil,
	"no-amount-check":   {"PP-ORDER-SHORT"},
	"no-currency-check": {"PP-ORDER-WRONG-CURRENCY"},
	"no-paid-check":     {"PP-ORDER-PAID-ONCE"},
	"accept-unknown":    {"PP-ORDER-UNKNOWN"},
}

// orderShopConfig starts an order shop and returns the configuration that
// judges it on the PayPal business level, its orders from its own POST
// /orders.
func orderShopConfig(db *sql.DB, postgres bool, dsn, flaw string, seed uint64) conformance.Config {
	ln := freeListener()
	s := newOrderShop(db, postgres, "http://"+ln.Addr().String()+"/cgi-bin/webscr", flaw)
	srv := httptest.NewServer(s)
	DeferCleanup(srv.Close)
	_, text := orderShopDocs()
	mapFile := filepath.Join(GinkgoT().TempDir(), "order-map.yaml")
	Expect(os.WriteFile(mapFile, []byte(text), 0o644)).To(Succeed())
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.Probe, cfg.ProbeMap, cfg.Orders = ln, srv.URL+"/ipn", "sql:"+dsn, mapFile, srv.URL+"/orders"
	cfg.Level, cfg.LabelFilter, cfg.Seed, cfg.Name = conformance.Business, "business", seed, "order shop ("+flaw+")"
	cfg.AckTimeout, cfg.PostbackWait = 2*time.Second, 2*time.Second
	return cfg
}

// runOrderShop judges an order shop on the PayPal business level.
func runOrderShop(db *sql.DB, postgres bool, dsn, flaw string, seed uint64) conformance.Report {
	rep, err := conformance.RunAll(context.Background(), orderShopConfig(db, postgres, dsn, flaw, seed), nil)
	Expect(err).NotTo(HaveOccurred())
	return rep
}

var _ = Describe("An order shop that checks each payment's order, amount and currency (--orders)", func() {
	It("passes every business check its money is right on, and each order bug fails exactly its check, for every seed (SQLite)", func() {
		for _, seed := range ledgerShopSeeds() {
			for flaw, want := range orderShopVerdicts {
				db, dsn := sqliteShopDB()
				rep := runOrderShop(db, false, dsn, flaw, seed)
				expectMoneyVerdicts(fmt.Sprintf("sqlite %q seed %d", flaw, seed), rep, want)
				got := byID(rep)
				Expect(got["PP-ORDER-PAID-ONCE"].Status).NotTo(Equal(scenarios.Skipped), "the order checks run")
				Expect(got["PP-MASSPAY-ITEMS"].Message).To(ContainSubstring("a check of prepaid credit"))
			}
		}
	})

	It("does the same on a real PostgreSQL server", func() {
		for flaw, want := range orderShopVerdicts {
			dsn := testenv.PostgresSchema("ordershop")
			db, err := sql.Open("pgx", dsn)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(db.Close)
			rep := runOrderShop(db, true, dsn, flaw, ledgerShopSeeds()[0])
			expectMoneyVerdicts(fmt.Sprintf("postgres %q", flaw), rep, want)
		}
	})

	It("is explored too: orders paid short, in another currency, twice or unknown join the histories; the correct shop breaks nothing, one that counts a second payment is found", func() {
		cases := []struct {
			flaw  string
			found bool
		}{{"", false}, {"no-paid-check", true}}
		// Both at once: each run waits out its shop's quiet periods.
		reps := make([]explore.Report, len(cases))
		errs := make([]error, len(cases))
		var wg sync.WaitGroup
		for i, tc := range cases {
			db, dsn := sqliteShopDB()
			cfg := orderShopConfig(db, false, dsn, tc.flaw, 0)
			histories := 30 // the flawed shop: until found
			if !tc.found {
				histories = 6
			}
			wg.Go(func() {
				reps[i], errs[i] = explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: 11, Histories: histories, MaxShrinks: 12})
			})
		}
		wg.Wait()
		for i, tc := range cases {
			rep, err := reps[i], errs[i]
			Expect(err).NotTo(HaveOccurred())
			Expect(rep.Aborted).To(BeEmpty())
			GinkgoWriter.Printf("order shop %q: %d histories, %.1fs\n", tc.flaw, rep.Histories, rep.Seconds)
			if !tc.found {
				Expect(rep.Violation).To(BeNil(), "%+v", rep.Violation)
				continue
			}
			Expect(rep.Violation).NotTo(BeNil(), "%q: nothing found in %d histories", tc.flaw, rep.Histories)
			Expect(rep.Violation.Invariant).To(Equal(explore.InvOrders), rep.Violation.Broke)
			Expect(rep.Violation.History).To(ContainSubstring("order_twice"))
		}
	})
})
