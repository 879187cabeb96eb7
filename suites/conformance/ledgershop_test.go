package conformance_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// A ledger shop: a prepaid-credit shop written as the README of an npm
// IPN package tells an integrator: answer 200 first, then verify, then
// check txn_id and credit the payer (matched by email). It records only
// the money it moved, in one ledger table: no row for a Pending payment,
// no status for a Denied one, no hold, no payer name. Its probe map knows
// money only, and has no idle query: the business checks must judge it
// on money alone, and settle on evidence.
type ledgerShop struct {
	shopDB
	verifyURL string
	// flaw is its money bug: "", trust-500, ignore-refunds, ignore-masspay,
	// no-dedupe (checks for a credit, then credits, with no unique key:
	// a race).
	flaw   string
	client *http.Client
	wg     sync.WaitGroup
	race   copyRace
}

// copyRace makes no-dedupe's race certain whenever copies of a payment
// are in the shop together: a copy that found no credit waits until every
// copy received so far has looked too (or left), at most 5 s. Left to the
// scheduler, copies on a busy machine reach the check one by one and the
// race is missed: the spec would then judge the machine, not the check.
type copyRace struct {
	mu       sync.Mutex
	cond     *sync.Cond
	inFlight map[string]int // copies received and not yet applied, by txn_id
	looked   map[string]int // copies that found no credit and wait, by txn_id
}

func (c *copyRace) init() {
	c.cond = sync.NewCond(&c.mu)
	c.inFlight, c.looked = map[string]int{}, map[string]int{}
}

func (c *copyRace) arrive(txn string) {
	c.mu.Lock()
	c.inFlight[txn]++
	c.mu.Unlock()
}

func (c *copyRace) leave(txn string) {
	c.mu.Lock()
	c.inFlight[txn]--
	c.mu.Unlock()
	c.cond.Broadcast()
}

// lookedAndFoundNone holds a copy in the window between its check and its
// credit until the other copies have checked as well.
func (c *copyRace) lookedAndFoundNone(txn string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.looked[txn]++
	defer func() { c.looked[txn]-- }()
	c.cond.Broadcast()
	expired := false
	stop := time.AfterFunc(5*time.Second, func() {
		c.mu.Lock()
		expired = true
		c.mu.Unlock()
		c.cond.Broadcast()
	})
	defer stop.Stop()
	for !expired && c.looked[txn] < c.inFlight[txn] {
		c.cond.Wait()
	}
}

const ledgerShopSchema = `
CREATE TABLE ledger (id %s PRIMARY KEY, txn_id TEXT NOT NULL, parent_txn_id TEXT NOT NULL, status TEXT NOT NULL,
	amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, customer TEXT NOT NULL%s);
CREATE TABLE waiting (txn_id TEXT PRIMARY KEY, parent_txn_id TEXT NOT NULL, status TEXT NOT NULL,
	amount_cents INTEGER NOT NULL, currency TEXT NOT NULL);
`

// ledgerShopMap is the map its team writes: money only, no idle query.
const ledgerShopMap = `
effects: |
  SELECT txn_id, status, amount_cents / 100.0 AS amount, currency, customer
  FROM ledger WHERE :provider = 'paypal' AND (txn_id = :txn_id OR parent_txn_id = :txn_id) ORDER BY id
transaction: |
  SELECT status, parent_txn_id, customer FROM ledger
  WHERE :provider = 'paypal' AND txn_id = :txn_id ORDER BY id DESC LIMIT 1
balances: |
  SELECT currency, SUM(amount_cents) / 100.0 AS balance FROM ledger WHERE customer = :customer GROUP BY currency
`

// moneyIn are the kinds of payment that credit the payer.
var moneyIn = []string{"web_accept", "cart", "express_checkout", "send_money", "virtual_terminal", "subscr_payment", "recurring_payment", "pro_hosted"}

func newLedgerShop(db *sql.DB, postgres bool, verifyURL, flaw string) *ledgerShop {
	id, unique := "INTEGER", ", UNIQUE (txn_id, status)"
	if postgres {
		id = "BIGSERIAL"
	}
	if flaw == "no-dedupe" {
		unique = ""
	}
	for _, stmt := range strings.Split(strings.TrimSpace(fmt.Sprintf(ledgerShopSchema, id, unique)), ";") {
		if strings.TrimSpace(stmt) != "" {
			_, err := db.Exec(stmt)
			Expect(err).NotTo(HaveOccurred())
		}
	}
	s := &ledgerShop{shopDB: shopDB{db, postgres}, verifyURL: verifyURL, flaw: flaw, client: &http.Client{Timeout: 5 * time.Second}}
	s.race.init()
	return s
}

// ServeHTTP answers 200 at once, as the package's README says, and
// verifies afterwards.
func (s *ledgerShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	txn := ""
	if f, err := url.ParseQuery(string(body)); err == nil {
		txn = f.Get("txn_id")
	}
	s.race.arrive(txn)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.race.leave(txn)
		// A job runner picks the message up a moment later.
		time.Sleep(30 * time.Millisecond)
		if verifyIPN(s.client, s.verifyURL, body, s.flaw == "trust-500") {
			s.apply(body)
		}
	}()
}

func (s *ledgerShop) apply(body []byte) {
	f, err := url.ParseQuery(string(body))
	if err != nil {
		return
	}
	if f.Get("txn_type") == "masspay" {
		s.applyMassPay(f)
		return
	}
	if f.Get("receiver_email") != emulator.DefaultReceiverEmail && f.Get("receiver_id") != emulator.DefaultReceiverID {
		return // another merchant's
	}
	cur := f.Get("mc_currency")
	if cur != "USD" && cur != "EUR" {
		return
	}
	cents, ok := centsOf(f.Get("mc_gross"))
	txn, parent, status := f.Get("txn_id"), f.Get("parent_txn_id"), f.Get("payment_status")
	if !ok || txn == "" {
		return
	}
	switch {
	case parent == "" && status == "Completed" && slices.Contains(moneyIn, f.Get("txn_type")):
		if s.credit(txn, "", status, cents, cur, f.Get("payer_email")) {
			s.applyWaiting(txn)
		}
	case parent != "" && (status == "Refunded" || status == "Reversed" || status == "Canceled_Reversal"):
		if s.flaw == "ignore-refunds" {
			return
		}
		s.wait(txn, parent, status, cents, cur)
		s.applyWaiting(parent)
	}
}

// credit writes a ledger row once: the unique key keeps copies out.
func (s *ledgerShop) credit(txn, parent, status string, cents int64, cur, customer string) bool {
	if s.flaw == "no-dedupe" {
		var n int
		if s.db.QueryRow(s.q(`SELECT count(*) FROM ledger WHERE txn_id = ? AND status = ?`), txn, status).Scan(&n); n > 0 {
			return false
		}
		s.race.lookedAndFoundNone(txn)
	}
	res, err := s.db.Exec(s.q(`INSERT INTO ledger (txn_id, parent_txn_id, status, amount_cents, currency, customer) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		txn, parent, status, cents, cur, customer)
	if err != nil {
		return false
	}
	n, _ := res.RowsAffected()
	return n == 1
}

// applyWaiting applies the refunds and reversals of a payment it
// credited: a reversal's cancellation only after the reversal.
func (s *ledgerShop) applyWaiting(parent string) {
	var customer string
	if s.db.QueryRow(s.q(`SELECT customer FROM ledger WHERE txn_id = ? AND parent_txn_id = ''`), parent).Scan(&customer) != nil {
		return // not credited (yet): the children wait
	}
	kids := s.waiting(parent)
	for _, k := range kids {
		if k.status == "Canceled_Reversal" {
			var n int
			if s.db.QueryRow(s.q(`SELECT count(*) FROM ledger WHERE parent_txn_id = ? AND status = 'Reversed'`), parent).Scan(&n); n == 0 {
				continue
			}
		}
		s.credit(k.txn, parent, k.status, k.cents, k.cur, customer)
	}
}

// applyMassPay credits each Completed item of a payer's Mass Pay to the
// payer; the merchant's own Mass Pay pays out, and credits no one.
func (s *ledgerShop) applyMassPay(f url.Values) {
	if s.flaw == "ignore-masspay" || f.Get("payer_email") == emulator.DefaultReceiverEmail {
		return
	}
	for i := 1; f.Get("masspay_txn_id_"+strconv.Itoa(i)) != ""; i++ {
		n := strconv.Itoa(i)
		cents, ok := centsOf(f.Get("mc_gross_" + n))
		if ok && f.Get("status_"+n) == "Completed" && f.Get("receiver_email_"+n) == emulator.DefaultReceiverEmail {
			s.credit(f.Get("masspay_txn_id_"+n), "", "Completed", cents, f.Get("mc_currency_"+n), f.Get("payer_email"))
		}
	}
}

func centsOf(s string) (int64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return int64(f*100 + 0.5*sign(f)), true
}

// ledgerShopVerdicts: the correct shop passes every business check it can
// be judged on; each broken one fails exactly the checks naming its bug.
var ledgerShopVerdicts = map[string][]string{
	"":               nil,
	"trust-500":      {"PP-STATUS500-NEVER-CREDITS"},
	"ignore-refunds": {"PP-CHARGEBACK", "PP-DUPLICATE-REFUND", "PP-OUT-OF-ORDER-REFUND", "PP-REFUND-FULL", "PP-REFUND-PARTIAL"},
	"ignore-masspay": {"PP-MASSPAY-ITEMS"},
	"no-dedupe":      {"PP-CONCURRENT-COPIES"},
}

// runLedgerShop judges a ledger shop on the PayPal business level through
// its map, with the idle query given ("" for none).
func runLedgerShop(db *sql.DB, postgres bool, dsn, flaw, idle string, seed uint64) conformance.Report {
	return runLedgerShopWith(db, postgres, dsn, flaw, idle, seed, "")
}

// runLedgerShopFocus judges a SQLite ledger shop on the checks focus names.
func runLedgerShopFocus(db *sql.DB, dsn, flaw string, seed uint64, focus string) conformance.Report {
	return runLedgerShopWith(db, false, dsn, flaw, "", seed, focus)
}

func runLedgerShopWith(db *sql.DB, postgres bool, dsn, flaw, idle string, seed uint64, focus string) conformance.Report {
	ln := freeListener()
	s := newLedgerShop(db, postgres, "http://"+ln.Addr().String()+"/cgi-bin/webscr", flaw)
	srv := httptest.NewServer(s)
	DeferCleanup(func() { srv.Close(); s.wg.Wait() })
	mapFile := filepath.Join(GinkgoT().TempDir(), "ledger-map.yaml")
	text := ledgerShopMap
	if idle != "" {
		text += "idle: " + idle + "\n"
	}
	Expect(os.WriteFile(mapFile, []byte(text), 0o644)).To(Succeed())
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.Probe, cfg.ProbeMap = ln, srv.URL, "sql:"+dsn, mapFile
	cfg.Level, cfg.LabelFilter, cfg.Seed, cfg.Name = conformance.Business, "business", seed, "ledger shop ("+flaw+")"
	cfg.AckTimeout, cfg.PostbackWait, cfg.Focus = 2*time.Second, 2*time.Second, focus
	rep, err := conformance.RunAll(context.Background(), cfg, nil)
	Expect(err).NotTo(HaveOccurred())
	return rep
}

// expectMoneyVerdicts checks that a shop failed exactly want (nil: none),
// and that every check it could not be judged on was skipped saying so,
// never failed.
func expectMoneyVerdicts(what string, rep conformance.Report, want []string) {
	var failed []string
	for _, c := range rep.Checks {
		switch c.Status {
		case scenarios.Disabled:
		case scenarios.Skipped:
			Expect(c.Message).To(Or(ContainSubstring("the probe does not declare"), ContainSubstring("a check of prepaid credit"),
				ContainSubstring("needs an order source")), "%s %s", what, c.ID)
		case scenarios.Failed:
			failed = append(failed, c.ID)
		default:
			Expect(c.Status).To(Equal(scenarios.Passed), "%s %s: %s\n%s", what, c.ID, c.Message, strings.Join(c.Evidence, "\n"))
		}
	}
	if want == nil {
		Expect(failed).To(BeEmpty(), "%s: %v", what, failedStories(rep))
		return
	}
	Expect(failed).To(ConsistOf(want), "%s: %v", what, failedStories(rep))
}

func failedStories(rep conformance.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Status == scenarios.Failed || c.Status == scenarios.Blocked || c.Status == scenarios.Error {
			out = append(out, c.ID+": "+c.Message+" | "+strings.Join(c.Evidence, " | "))
		}
	}
	return out
}

// ledgerShopSeeds are the seeds each shop variant is judged on: one under
// the race detector, three in make test's sweep without it.
func ledgerShopSeeds() []uint64 {
	seeds := []uint64{3, 17, 4242}
	if raceDetector {
		return seeds[:1]
	}
	return seeds
}

func sqliteShopDB() (*sql.DB, string) {
	path := filepath.Join(GinkgoT().TempDir(), "shop.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(db.Close)
	return db, "sqlite:" + path
}

var _ = Describe("A shop that records only the money it moved, acks first and has no idle query", func() {
	It("passes every business check its money is right on, and each money bug fails exactly its checks, for every seed (SQLite)", func() {
		for _, seed := range ledgerShopSeeds() {
			for flaw, want := range ledgerShopVerdicts {
				db, dsn := sqliteShopDB()
				rep := runLedgerShop(db, false, dsn, flaw, "", seed)
				expectMoneyVerdicts(fmt.Sprintf("sqlite %q seed %d", flaw, seed), rep, want)
			}
		}
	})

	It("does the same on a real PostgreSQL server", func() {
		for _, seed := range ledgerShopSeeds()[:1] {
			for flaw, want := range ledgerShopVerdicts {
				dsn := testenv.PostgresSchema("ledgershop")
				db, err := sql.Open("pgx", dsn)
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(db.Close)
				rep := runLedgerShop(db, true, dsn, flaw, "", seed)
				expectMoneyVerdicts(fmt.Sprintf("postgres %q seed %d", flaw, seed), rep, want)
			}
		}
	})

	It("cannot be passed by an idle query that claims idle before the shop has even posted back (SELECT 0)", func() {
		for _, flaw := range []string{"", "trust-500"} {
			db, dsn := sqliteShopDB()
			rep := runLedgerShop(db, false, dsn, flaw, "SELECT 0 AS busy", ledgerShopSeeds()[0])
			expectMoneyVerdicts(fmt.Sprintf("idle: SELECT 0, %q", flaw), rep, ledgerShopVerdicts[flaw])
		}
	})

	It("says what it did not judge: the bookkeeping checks are skipped, naming the facts the probe lacks", func() {
		db, dsn := sqliteShopDB()
		rep := runLedgerShop(db, false, dsn, "", "", ledgerShopSeeds()[0])
		got := byID(rep)
		Expect(got["PP-RECORD-HOLD"].Status).To(Equal(scenarios.Skipped))
		Expect(got["PP-RECORD-HOLD"].Message).To(ContainSubstring("the probe does not declare holds (it knows money only"))
		Expect(got["PP-RECORD-FINAL-STATUS"].Message).To(ContainSubstring("does not declare statuses"))
		Expect(got["PP-CHARSET-NAME"].Message).To(ContainSubstring("does not declare payer_names"))
		var out bytes.Buffer
		rep.WriteConsole(&out)
		Expect(out.String()).To(ContainSubstring("not judged: the probe does not declare holds"))
	})

	It("catches its double-credit race on purpose: PP-CONCURRENT-COPIES fails the shop without a lock in at least 19 of 20 runs, for every seed, and never the locked one", func() {
		runs, locked := 20, 3
		if raceDetector {
			runs, locked = 2, 1
		}
		caught := 0
		var evidence []string
		for seed := range uint64(runs) {
			db, dsn := sqliteShopDB()
			c := byID(runLedgerShopFocus(db, dsn, "no-dedupe", 100+seed, "PP-CONCURRENT-COPIES"))["PP-CONCURRENT-COPIES"]
			if c.Status == scenarios.Failed {
				caught++
				evidence = c.Evidence
			}
		}
		Expect(caught).To(BeNumerically(">=", runs-runs/20), "caught in %d of %d runs", caught, runs)
		// The failure shows the burst and its interleaving.
		Expect(evidence).To(ContainElement(MatchRegexp(`^burst \d+ of 17: 10 copies of transaction \S+, delivered together$`)))
		Expect(evidence).To(ContainElement(MatchRegexp(`^  \+[0-9.]+ ms copy \d+ \(\S+\) answered$`)))
		Expect(evidence).To(ContainElement(MatchRegexp(`^  \+[0-9.]+ ms a copy was posted back$`)))
		for seed := range uint64(locked) {
			db, dsn := sqliteShopDB()
			c := byID(runLedgerShopFocus(db, dsn, "", 100+seed, "PP-CONCURRENT-COPIES"))["PP-CONCURRENT-COPIES"]
			Expect(c.Status).To(Equal(scenarios.Passed), "the locked shop: %s\n%s", c.Message, strings.Join(c.Evidence, "\n"))
		}
	})
})
