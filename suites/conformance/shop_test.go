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
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
	"github.com/ipnlab/ipnlab/suites/conformance/webhookchecks"
)

// A shop: a small PayPal listener as a team writes one, with a schema of
// its own and no probe API. The business checks read its database through
// a probe map (--probe sql:DSN). flaw breaks it on purpose.
type shop struct {
	shopDB
	verifyURL string
	flaw      string // "", credit-twice, trust-500, refund-as-payment
	client    *http.Client
	wg        sync.WaitGroup
}

const shopSchema = `
CREATE TABLE payments (txn_id TEXT PRIMARY KEY, parent_txn_id TEXT NOT NULL, status TEXT NOT NULL, payer TEXT NOT NULL);
CREATE TABLE ledger (id %s PRIMARY KEY, txn_id TEXT NOT NULL, parent_txn_id TEXT NOT NULL, status TEXT NOT NULL,
	amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, payer TEXT NOT NULL);
CREATE TABLE notifications (id %s PRIMARY KEY, body TEXT NOT NULL, state TEXT NOT NULL);
`

// shopMap is the probe map a team writes for the shop's schema.
const shopMap = `
effects: |
  SELECT txn_id, status, amount_cents / 100.0 AS amount, currency, payer AS customer
  FROM ledger WHERE txn_id = :txn_id OR parent_txn_id = :txn_id ORDER BY id
transaction: |
  -- the shop keeps PayPal only
  SELECT status, parent_txn_id, payer AS customer FROM payments WHERE txn_id = :txn_id AND :provider = 'paypal'
idle: |
  SELECT count(*) AS busy FROM notifications WHERE state = 'new'
`

func newShop(db *sql.DB, postgres bool, verifyURL, flaw string) *shop {
	id := "INTEGER"
	if postgres {
		id = "BIGSERIAL"
	}
	for _, stmt := range strings.Split(strings.TrimSpace(fmt.Sprintf(shopSchema, id, id)), ";") {
		if strings.TrimSpace(stmt) != "" {
			_, err := db.Exec(stmt)
			Expect(err).NotTo(HaveOccurred())
		}
	}
	return &shop{shopDB: shopDB{db, postgres}, verifyURL: verifyURL, flaw: flaw, client: &http.Client{Timeout: 5 * time.Second}}
}

// shopDB is a test shop's database, SQLite or PostgreSQL.
type shopDB struct {
	db       *sql.DB
	postgres bool
}

// q writes ? placeholders as the driver wants them.
func (s shopDB) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteString("$" + strconv.Itoa(n))
	}
	return b.String()
}

// insertID inserts a row with query (? placeholders) and returns its id.
func (s shopDB) insertID(query string, args ...any) (int64, error) {
	if s.postgres {
		var id int64
		err := s.db.QueryRow(s.q(query+" RETURNING id"), args...).Scan(&id)
		return id, err
	}
	res, err := s.db.Exec(query, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// waitingChild is a refund, reversal or canceled reversal a shop keeps
// until the payment it names is applied.
type waitingChild struct {
	txn, status, cur string
	cents            int64
}

// waiting are the children waiting for parent, reversals first.
func (s shopDB) waiting(parent string) []waitingChild {
	rows, err := s.db.Query(s.q(`SELECT txn_id, status, amount_cents, currency FROM waiting WHERE parent_txn_id = ? ORDER BY status DESC`), parent)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var kids []waitingChild
	for rows.Next() {
		var k waitingChild
		if rows.Scan(&k.txn, &k.status, &k.cents, &k.cur) == nil {
			kids = append(kids, k)
		}
	}
	return kids
}

// wait keeps a child until its payment is applied (once: the key).
func (s shopDB) wait(txn, parent, status string, cents int64, cur string) {
	_, _ = s.db.Exec(s.q(`INSERT INTO waiting (txn_id, parent_txn_id, status, amount_cents, currency) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		txn, parent, status, cents, cur)
}

func (s *shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, err := s.insertID(`INSERT INTO notifications (body, state) VALUES (?, 'new')`, string(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.process(id, body)
	}()
}

// process verifies a notification (three tries) and applies it.
func (s *shop) process(id int64, body []byte) {
	defer func() { _, _ = s.db.Exec(s.q(`UPDATE notifications SET state = 'done' WHERE id = ?`), id) }()
	verified := false
	for try := 0; try < 3 && !verified; try++ {
		resp, err := s.client.Post(s.verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(answer) == "INVALID" {
			return
		}
		verified = string(answer) == "VERIFIED" && (resp.StatusCode == http.StatusOK || s.flaw == "trust-500")
		if !verified {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !verified {
		return
	}
	f, err := url.ParseQuery(string(body))
	if err != nil {
		return
	}
	txn, parent, status := f.Get("txn_id"), f.Get("parent_txn_id"), f.Get("payment_status")
	gross, err := strconv.ParseFloat(f.Get("mc_gross"), 64)
	if err != nil || txn == "" {
		return
	}
	cents := int64(gross*100 + 0.5*sign(gross))
	if s.flaw == "refund-as-payment" && parent != "" {
		parent, status, cents = "", "Completed", abs(cents)
	}
	upsert := `INSERT INTO payments (txn_id, parent_txn_id, status, payer) VALUES (?, ?, ?, ?)
		ON CONFLICT (txn_id) DO UPDATE SET status = excluded.status`
	_, _ = s.db.Exec(s.q(upsert), txn, parent, status, f.Get("payer_email"))
	switch status {
	case "Completed", "Refunded", "Reversed":
	default:
		return
	}
	if s.flaw != "credit-twice" {
		var n int
		if s.db.QueryRow(s.q(`SELECT count(*) FROM ledger WHERE txn_id = ? AND status = ?`), txn, status).Scan(&n); n > 0 {
			return
		}
	}
	_, _ = s.db.Exec(s.q(`INSERT INTO ledger (txn_id, parent_txn_id, status, amount_cents, currency, payer) VALUES (?, ?, ?, ?, ?, ?)`),
		txn, parent, status, cents, f.Get("mc_currency"), f.Get("payer_email"))
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// shopChecks are the business checks the shop's logic covers.
const shopChecks = "PP-CREDIT-ONCE,PP-DUPLICATE-RESEND,PP-STATUS500-NEVER-CREDITS,PP-REFUND-FULL,PP-REFUND-PARTIAL"

// runShop judges a shop on the business checks through the probe map.
func runShop(db *sql.DB, postgres bool, dsn, flaw string) conformance.Report {
	ln := freeListener()
	s := newShop(db, postgres, "http://"+ln.Addr().String()+"/cgi-bin/webscr", flaw)
	srv := httptest.NewServer(s)
	DeferCleanup(func() { srv.Close(); s.wg.Wait() })
	mapFile := filepath.Join(GinkgoT().TempDir(), "shop-map.yaml")
	Expect(os.WriteFile(mapFile, []byte(shopMap), 0o644)).To(Succeed())
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.Probe, cfg.ProbeMap = ln, srv.URL, "sql:"+dsn, mapFile
	cfg.Focus, cfg.Seed, cfg.Name = shopChecks, 11, "shop ("+flaw+")"
	rep, err := conformance.RunAll(context.Background(), cfg, nil)
	Expect(err).NotTo(HaveOccurred())
	return rep
}

// shopVerdicts: the correct shop passes every check it covers; each
// broken one fails exactly the checks that name its bug.
var shopVerdicts = map[string][]string{
	"":                  nil,
	"credit-twice":      {"PP-DUPLICATE-RESEND"},
	"trust-500":         {"PP-STATUS500-NEVER-CREDITS"},
	"refund-as-payment": {"PP-REFUND-FULL", "PP-REFUND-PARTIAL"},
}

func expectShopVerdicts(flaw string, rep conformance.Report) {
	var failed []string
	for _, c := range rep.Checks {
		if c.Status == scenarios.Disabled {
			continue
		}
		Expect(c.Status).To(BeElementOf(scenarios.Passed, scenarios.Failed), "%q %s: %s", flaw, c.ID, c.Message)
		if c.Status == scenarios.Failed {
			failed = append(failed, c.ID)
		}
	}
	if shopVerdicts[flaw] == nil {
		Expect(failed).To(BeEmpty(), "the correct shop")
		return
	}
	Expect(failed).To(ConsistOf(shopVerdicts[flaw]), "shop with %q", flaw)
}

var _ = Describe("Business checks read from a listener's own database (--probe sql:)", func() {
	It("judge a shop with no probe API on SQLite: each broken variant fails exactly its check", func() {
		for flaw := range shopVerdicts {
			path := filepath.Join(GinkgoT().TempDir(), "shop.db")
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(db.Close)
			expectShopVerdicts(flaw, runShop(db, false, "sqlite:"+path, flaw))
		}
	})

	It("judge the same shop on a real PostgreSQL server", func() {
		for flaw := range shopVerdicts {
			// A schema of its own for each shop, dropped afterwards.
			dsn := testenv.PostgresSchema("shop")
			db, err := sql.Open("pgx", dsn)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(db.Close)
			expectShopVerdicts(flaw, runShop(db, true, dsn, flaw))
		}
	})

	It("gives the reference listener's SQLite database, through the map in docs/, the verdicts its HTTP probe gives", func() {
		ln := freeListener()
		ref, dbPath := referenceListenerDB(ln)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener = ln, ref.URL+"/ipn/paypal", ref.URL+"/ipn/paydo"
		cfg.Probe, cfg.ProbeMap = "sql:sqlite:"+dbPath, "../../docs/probe-map-reference.yaml"
		cfg.AckTimeout, cfg.Level, cfg.LabelFilter = 2*time.Second, conformance.Business, "business"
		Expect(webhookchecks.Configure(&cfg, ref.URL+listener.PayPalRESTPath, labWebhookID, labCA())).To(Succeed())
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		n := 0
		for _, c := range rep.Checks {
			if c.Level != conformance.Business || c.Check.HasLabel("orders") {
				continue // the order checks need an order shop
			}
			n++
			Expect(c.Status).To(Equal(scenarios.Passed), "%s: %s\n%s", c.ID, c.Message, strings.Join(c.Evidence, "\n"))
		}
		Expect(n).To(BeNumerically(">=", 31))
	})

	It("refuses a map that would write, names an unknown key, a missing query or a wrong column by file and line", func() {
		path := filepath.Join(GinkgoT().TempDir(), "ref.db")
		db, err := sql.Open("sqlite", "file:"+path)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(db.Close)
		newShop(db, false, "http://127.0.0.1:1/", "")
		ln := freeListener()
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(srv.Close)
		for _, tc := range []struct{ yaml, want string }{
			{"effects: DELETE FROM ledger\ntransaction: SELECT status FROM payments", `map.yaml:1: effects: a DELETE statement: want a SELECT`},
			{"effects: SELECT 1; DROP TABLE ledger\ntransaction: SELECT status FROM payments", `map.yaml:1: effects: one statement only`},
			{"effects: SELECT txn_id, status, amount_cents AS amount, currency FROM ledger\n", `map.yaml:1: transaction is required`},
			{"transaction: SELECT status FROM payments\neffect: SELECT 1\n", `map.yaml:2: unknown key "effect"`},
			{"transaction: SELECT status FROM payments WHERE txn_id = :txn\neffects: SELECT 1\n", `map.yaml:1: transaction: unknown parameter :txn; want :provider, :txn_id`},
			{"transaction: SELECT status FROM payments WHERE txn_id = :txn_id\neffects: |\n  SELECT txn_id, status, currency FROM ledger WHERE txn_id = :txn_id\n", `map.yaml:2: effects: the result has no column amount`},
			{"transaction: SELECT status FROM paymnts WHERE txn_id = :txn_id\neffects: SELECT txn_id, status, amount_cents AS amount, currency FROM ledger\n", `map.yaml:1: transaction: the query fails on sqlite:`},
		} {
			mapFile := filepath.Join(GinkgoT().TempDir(), "map.yaml")
			Expect(os.WriteFile(mapFile, []byte(tc.yaml), 0o644)).To(Succeed())
			cfg := conformance.Defaults()
			cfg.EmulatorListener, cfg.Listener, cfg.Probe, cfg.ProbeMap = ln, srv.URL, "sql:sqlite:"+path, mapFile
			_, err := conformance.RunAll(context.Background(), cfg, nil)
			Expect(err).To(MatchError(conformance.ErrHarness), tc.want)
			Expect(err.Error()).To(ContainSubstring(tc.want))
			ln = freeListener()
		}
		// The map is checked before the listener is asked for: its
		// mistakes are named while the listener is not up yet.
		mapFile := filepath.Join(GinkgoT().TempDir(), "map.yaml")
		Expect(os.WriteFile(mapFile, []byte("transaction: SELECT status FROM paymnts WHERE txn_id = :txn_id\neffects: SELECT txn_id, status, amount_cents AS amount, currency FROM ledger\n"), 0o644)).To(Succeed())
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Probe, cfg.ProbeMap = ln, "http://127.0.0.1:1/ipn", "sql:sqlite:"+path, mapFile
		_, err = conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).To(MatchError(ContainSubstring("map.yaml:1: transaction: the query fails")))

		var before int
		Expect(db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&before)).To(Succeed())
		Expect(before).To(Equal(3), "nothing was dropped")
	})

	It("never shows the database password: not in the report's config, not in replay commands", func() {
		cfg := conformance.Defaults()
		cfg.Listener, cfg.Probe, cfg.ProbeMap = "http://127.0.0.1:1/", "sql:postgres://shop:s3cret@127.0.0.1:1/shop", "map.yaml"
		Expect(fmt.Sprint(cfg.Resolved())).NotTo(ContainSubstring("s3cret"))
		Expect(cfg.Resolved()).To(HaveKeyWithValue("probe", "sql:postgres://shop:[redacted]@127.0.0.1:1/shop"))
	})
})
