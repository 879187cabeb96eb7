package sqlprobe_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	_ "modernc.org/sqlite"

	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/probe"
	"github.com/ipnlab/ipnlab/probe/sqlprobe"
)

// shopDB makes the schema docs/probe.md's worked map is written for.
func shopDB() string {
	path := filepath.Join(GinkgoT().TempDir(), "shop.db")
	db, err := sql.Open("sqlite", "file:"+path)
	Expect(err).NotTo(HaveOccurred())
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id TEXT)`,
		`CREATE TABLE payments (id INTEGER PRIMARY KEY, order_id INTEGER, paypal_txn_id TEXT, parent_txn_id TEXT,
			payment_status TEXT, amount_cents INTEGER, currency TEXT, created_at TEXT)`,
		`CREATE TABLE ipn_messages (id INTEGER PRIMARY KEY, state TEXT)`,
		`INSERT INTO orders VALUES (1, 'C1')`,
		`INSERT INTO payments VALUES (1, 1, 'PAY1', '', 'Completed', 8000, 'usd', '2026-01-01'),
			(2, 1, 'REF1', 'PAY1', 'Refunded', -3050, 'usd', '2026-01-02')`,
	} {
		_, err := db.Exec(stmt)
		Expect(err).NotTo(HaveOccurred(), stmt)
	}
	return path
}

// docsMap is the worked map of docs/probe.md.
func docsMap() []byte {
	doc, err := os.ReadFile("../../docs/probe.md")
	Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile("(?s)A worked map.*?```yaml\n(.*?)```").FindSubmatch(doc)
	Expect(m).NotTo(BeNil(), "docs/probe.md has no worked map")
	return m[1]
}

var _ = Describe("The SQL probe adapter", func() {
	It("answers with docs/probe.md's worked map: effects of a payment and its refund, net per currency, unknown transactions", func() {
		m, err := sqlprobe.ParseMap("probe.md", docsMap())
		Expect(err).NotTo(HaveOccurred())
		a, err := sqlprobe.Open(context.Background(), "sqlite:"+shopDB(), m)
		Expect(err).NotTo(HaveOccurred())
		defer a.Close()
		t, err := a.Transaction(context.Background(), "paypal", "PAY1")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Status).To(Equal("Completed"))
		Expect(t.Customer).To(Equal("C1"))
		Expect(t.Effects).To(Equal([]probe.Effect{
			{TxnID: "PAY1", Status: "Completed", Amount: "80.00", Currency: "USD", Customer: "C1"},
			{TxnID: "REF1", Status: "Refunded", Amount: "-30.50", Currency: "USD", Customer: "C1"},
		}))
		Expect(t.Net).To(Equal(map[string]string{"USD": "49.50"}))
		_, err = a.Transaction(context.Background(), "paypal", "NOPE")
		Expect(err).To(MatchError(probe.ErrNoTransaction))
		_, err = a.Transaction(context.Background(), "paydo", "PAY1")
		Expect(err).To(MatchError(probe.ErrNoTransaction), "the map answers for PayPal only")
		idle, err := a.Idle(context.Background(), time.Second, "PAY1")
		Expect(err).NotTo(HaveOccurred())
		Expect(idle).To(BeTrue())
		Expect(a.ReadsBalances()).To(BeTrue())
		Expect(a.Balances(context.Background(), "C1")).To(Equal(map[string]string{"USD": "49.50"}))
		Expect(a.Balances(context.Background(), "NOPE")).To(BeEmpty(), "a customer with no rows has nothing")
	})

	It("reads balances only with a balances query, which takes :customer alone", func() {
		const minimal = "effects: SELECT 'x' AS txn_id, 's' AS status, 1 AS amount, 'USD' AS currency\ntransaction: SELECT 'Completed' AS status\n"
		m, err := sqlprobe.ParseMap("m.yaml", []byte(minimal))
		Expect(err).NotTo(HaveOccurred())
		a, err := sqlprobe.Open(context.Background(), "sqlite:"+shopDB(), m)
		Expect(err).NotTo(HaveOccurred())
		defer a.Close()
		Expect(a.ReadsBalances()).To(BeFalse())
		_, err = a.Balances(context.Background(), "C1")
		Expect(err).To(MatchError(ContainSubstring("the probe map m.yaml has no balances query")))
		_, err = sqlprobe.ParseMap("m.yaml", []byte(minimal+"balances: SELECT currency, 1 AS balance FROM payments WHERE paypal_txn_id = :txn_id\n"))
		Expect(err).To(MatchError(ContainSubstring("balances: unknown parameter :txn_id; want :customer")))
		m, err = sqlprobe.ParseMap("m.yaml", []byte(minimal+"balances: SELECT currency FROM payments WHERE order_id = :customer\n"))
		Expect(err).NotTo(HaveOccurred())
		_, err = sqlprobe.Open(context.Background(), "sqlite:"+shopDB(), m)
		Expect(err).To(MatchError(ContainSubstring("balances: the result has no column balance")))
	})

	It("reads the database without writing to it, even when asked", func() {
		path := shopDB()
		m, err := sqlprobe.ParseMap("m.yaml", []byte("effects: SELECT 'x' AS txn_id, 's' AS status, 1 AS amount, 'USD' AS currency\n"+
			"transaction: WITH d AS (SELECT 1) SELECT 'Completed' AS status FROM d\n"))
		Expect(err).NotTo(HaveOccurred())
		a, err := sqlprobe.Open(context.Background(), "sqlite:"+path, m)
		Expect(err).NotTo(HaveOccurred())
		defer a.Close()
		_, err = sqlprobe.ParseMap("m.yaml", []byte("effects: INSERT INTO orders VALUES (2, 'x') RETURNING id AS txn_id\ntransaction: SELECT 1\n"))
		Expect(err).To(MatchError(sqlprobe.ErrMap))
	})

	Describe("a map that hides statements from a lexer", func() {
		// Each attack passes the loader's quick look (one SELECT, as far
		// as ' and " quotes tell) but is several statements to SQLite;
		// the driver would run them all when the map is first checked.
		effects := "effects: SELECT paypal_txn_id AS txn_id, payment_status AS status, amount_cents AS amount, currency FROM payments WHERE paypal_txn_id = :txn_id\n"
		count := func(path string) int {
			db, err := sql.Open("sqlite", "file:"+path)
			Expect(err).NotTo(HaveOccurred())
			defer db.Close()
			var n int
			Expect(db.QueryRow(`SELECT count(*) FROM payments`).Scan(&n)).To(Succeed())
			return n
		}
		DescribeTable("is refused by SQLite's own parse, before any query runs, and writes nothing",
			func(hide func(path string) string) {
				path := shopDB()
				m, err := sqlprobe.ParseMap("m.yaml", []byte(effects+"transaction: "+hide(path)+"\n"))
				Expect(err).NotTo(HaveOccurred(), "the loader's lexical look lets it through")
				_, err = sqlprobe.Open(context.Background(), "sqlite:"+path, m)
				Expect(err).To(MatchError(sqlprobe.ErrMap))
				Expect(err).To(MatchError(sqlprobe.ErrNotOneQuery))
				Expect(err.Error()).To(ContainSubstring("m.yaml:2: transaction: "))
				Expect(count(path)).To(Equal(2), "the shop's payments are all there")
			},
			Entry("a bracketed name holding a quote", func(path string) string {
				return "SELECT 'Completed' AS status, 1 AS [a'] WHERE 0; COMMIT; PRAGMA query_only=0; ATTACH 'file:" + path + "' AS rw; DELETE FROM rw.payments; SELECT 1 AS [']"
			}),
			Entry("a backquoted name holding a quote", func(path string) string {
				return "SELECT 'Completed' AS status, 1 AS `a'` WHERE 0; COMMIT; PRAGMA query_only=0; ATTACH 'file:" + path + "' AS rw; DELETE FROM rw.payments; SELECT 1 AS `'`"
			}),
		)
		It("refuses statements SQLite calls read-only that are not queries, and a query that writes", func() {
			path := shopDB()
			for _, q := range []string{
				"WITH gone AS (SELECT 1) DELETE FROM payments RETURNING payment_status AS status",
				"SELECT 'Completed' AS status; SELECT 2",
			} {
				m, err := sqlprobe.ParseMap("m.yaml", []byte(effects+"transaction: "+q+"\n"))
				if err != nil {
					Expect(err).To(MatchError(sqlprobe.ErrMap), q)
					continue
				}
				_, err = sqlprobe.Open(context.Background(), "sqlite:"+path, m)
				Expect(err).To(MatchError(sqlprobe.ErrNotOneQuery), q)
			}
			Expect(count(path)).To(Equal(2))
		})
		It("opens a path holding ? or # as that file, read-only, never another", func() {
			dir := GinkgoT().TempDir()
			path := filepath.Join(dir, "shop?mode=rwc#1.db")
			Expect(os.Rename(shopDB(), path)).To(Succeed())
			m, err := sqlprobe.ParseMap("m.yaml", []byte(effects+"transaction: SELECT payment_status AS status FROM payments WHERE paypal_txn_id = :txn_id\n"))
			Expect(err).NotTo(HaveOccurred())
			a, err := sqlprobe.Open(context.Background(), "sqlite:"+path, m)
			Expect(err).NotTo(HaveOccurred())
			defer a.Close()
			t, err := a.Transaction(context.Background(), "paypal", "PAY1")
			Expect(err).NotTo(HaveOccurred())
			Expect(t.Status).To(Equal("Completed"))
			entries, err := os.ReadDir(dir)
			Expect(err).NotTo(HaveOccurred())
			for _, e := range entries {
				Expect(e.Name()).To(HavePrefix("shop?mode=rwc#1.db"), "no other file was created")
			}
		})
	})

	Describe("on PostgreSQL, a map that hides statements from a lexer", func() {
		// The DSN asks for the simple protocol, which runs every statement
		// of a string; each attack ends the read-only transaction, turns
		// read-only off and deletes.
		DescribeTable("is refused whatever the DSN asks, and writes nothing",
			func(attack string) {
				dsn := testenv.PostgresSchema("probe_attack")
				db, err := sql.Open("pgx", dsn)
				Expect(err).NotTo(HaveOccurred())
				defer db.Close()
				_, err = db.Exec(`CREATE TABLE payments (paypal_txn_id TEXT, payment_status TEXT, amount_cents INTEGER, currency TEXT);
					INSERT INTO payments VALUES ('PAY1', 'Completed', 8000, 'USD'), ('PAY2', 'Completed', 100, 'USD')`)
				Expect(err).NotTo(HaveOccurred())
				m, err := sqlprobe.ParseMap("m.yaml", []byte("effects: SELECT paypal_txn_id AS txn_id, payment_status AS status, amount_cents AS amount, currency FROM payments WHERE paypal_txn_id = :txn_id\n"+
					"transaction: "+attack+"\n"))
				Expect(err).NotTo(HaveOccurred(), "the loader's lexical look lets it through")
				_, err = sqlprobe.Open(context.Background(), dsn+"&default_query_exec_mode=simple_protocol", m)
				Expect(err).To(MatchError(sqlprobe.ErrMap))
				Expect(err.Error()).To(ContainSubstring("m.yaml:2: transaction: "))
				var n int
				Expect(db.QueryRow(`SELECT count(*) FROM payments`).Scan(&n)).To(Succeed())
				Expect(n).To(Equal(2), "the shop's payments are all there")
			},
			Entry("an E'' string with an escaped quote", `SELECT E'\'' AS status WHERE false; COMMIT; SET default_transaction_read_only = off; COMMIT; DELETE FROM payments; SELECT E'\''`),
			Entry("dollar quotes holding a quote", `SELECT $q$'$q$ AS status WHERE false; COMMIT; SET default_transaction_read_only = off; COMMIT; DELETE FROM payments; SELECT $q$'$q$`),
		)
	})

	Describe("on PostgreSQL, through docs/probe.md's least-privilege role", func() {
		var (
			shop    *sql.Conn // the listener's own session
			roleDSN string
		)
		BeforeEach(func() {
			dsn := testenv.PostgresSchema("probe_role")
			u, err := url.Parse(dsn)
			Expect(err).NotTo(HaveOccurred())
			db, err := sql.Open("pgx", dsn)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(db.Close)
			shop, err = db.Conn(context.Background())
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(shop.Close)
			_, err = shop.ExecContext(context.Background(), `CREATE TABLE payments (paypal_txn_id TEXT, payment_status TEXT, amount_cents INTEGER, currency TEXT);
				INSERT INTO payments VALUES ('PAY1', 'Completed', 8000, 'USD')`)
			Expect(err).NotTo(HaveOccurred())
			doc, err := os.ReadFile("../../docs/probe.md")
			Expect(err).NotTo(HaveOccurred())
			block := regexp.MustCompile("(?s)<!-- probe-role -->\n```sql\n(.*?)```").FindSubmatch(doc)
			Expect(block).NotTo(BeNil(), "docs/probe.md has no probe-role block")
			role := fmt.Sprintf("ipnlab_probe_%d", time.Now().UnixNano())
			database, schema := strings.TrimPrefix(u.Path, "/"), u.Query().Get("search_path")
			grants := strings.NewReplacer("ipnlab_probe", role, "DATABASE shop", "DATABASE "+database,
				"SCHEMA public", "SCHEMA "+schema, "change-me", "probe-secret").Replace(string(block[1]))
			DeferCleanup(func() {
				for _, stmt := range []string{"REVOKE ALL ON ALL TABLES IN SCHEMA " + schema, "REVOKE ALL ON SCHEMA " + schema, "REVOKE ALL ON DATABASE " + database} {
					_, _ = db.Exec(stmt + " FROM " + role)
				}
				_, err := db.Exec("DROP ROLE " + role)
				Expect(err).NotTo(HaveOccurred())
			})
			for _, stmt := range strings.Split(strings.TrimSpace(grants), ";\n") {
				_, err := db.Exec(stmt)
				Expect(err).NotTo(HaveOccurred(), stmt)
			}
			u.User = url.UserPassword(role, "probe-secret")
			roleDSN = u.String()
		})
		open := func(transaction string) (*sqlprobe.Adapter, error) {
			m, err := sqlprobe.ParseMap("m.yaml", []byte("effects: SELECT paypal_txn_id AS txn_id, payment_status AS status, amount_cents AS amount, currency FROM payments WHERE paypal_txn_id = :txn_id\n"+
				"transaction: "+transaction+"\n"))
			Expect(err).NotTo(HaveOccurred())
			a, err := sqlprobe.Open(context.Background(), roleDSN, m)
			if err == nil {
				DeferCleanup(a.Close)
			}
			return a, err
		}

		It("reads what it was granted", func() {
			a, err := open("SELECT payment_status AS status FROM payments WHERE paypal_txn_id = :txn_id")
			Expect(err).NotTo(HaveOccurred())
			t, err := a.Transaction(context.Background(), "paypal", "PAY1")
			Expect(err).NotTo(HaveOccurred())
			Expect(t.Status).To(Equal("Completed"))
		})

		It("cannot end the listener's session", func() {
			var pid int
			Expect(shop.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid)).To(Succeed())
			_, err := open(fmt.Sprintf("SELECT pg_terminate_backend(%d)::text AS status", pid))
			// insufficient_privilege: its wording varies with the server's
			// version and with whether the listener's role is a superuser
			// (a throwaway server's is).
			Expect(err).To(MatchError(ContainSubstring("SQLSTATE 42501")))
			Expect(shop.PingContext(context.Background())).To(Succeed())
		})

		It("ends a query that sleeps at the statement timeout, not the sleep's end", func() {
			start := time.Now()
			_, err := open("SELECT pg_sleep(60)::text AS status")
			Expect(err).To(MatchError(ContainSubstring("statement timeout")))
			Expect(time.Since(start)).To(BeNumerically("<", 30*time.Second))
		})

		It("keeps no session advisory lock once a query is done", func() {
			a, err := open("SELECT payment_status AS status FROM payments, (SELECT pg_advisory_lock(4242)) AS l WHERE paypal_txn_id = :txn_id")
			Expect(err).NotTo(HaveOccurred())
			_, err = a.Transaction(context.Background(), "paypal", "PAY1")
			Expect(err).NotTo(HaveOccurred())
			var got bool
			Expect(shop.QueryRowContext(context.Background(), "SELECT pg_try_advisory_lock(4242)").Scan(&got)).To(Succeed())
			Expect(got).To(BeTrue(), "the listener can take the lock")
			_, err = shop.ExecContext(context.Background(), "SELECT pg_advisory_unlock(4242)")
			Expect(err).NotTo(HaveOccurred())
		})
	})

	It("waits for answers to stop changing when the map has no idle query", func() {
		m, err := sqlprobe.ParseMap("m.yaml", []byte("settle: 50ms\neffects: SELECT paypal_txn_id AS txn_id, payment_status AS status, amount_cents AS amount, currency FROM payments WHERE paypal_txn_id = :txn_id\n"+
			"transaction: SELECT payment_status AS status FROM payments WHERE paypal_txn_id = :txn_id\n"))
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Settle).To(Equal(50 * time.Millisecond))
		path := shopDB()
		a, err := sqlprobe.Open(context.Background(), "sqlite:"+path, m)
		Expect(err).NotTo(HaveOccurred())
		defer a.Close()
		Expect(a.Quiet()).To(Equal(50*time.Millisecond), "the quiet period after a postback is the map's settle")
		idle, err := a.Idle(context.Background(), 2*time.Second, "PAY1")
		Expect(err).NotTo(HaveOccurred())
		Expect(idle).To(BeTrue())

		// The listener writes: the answers changed just now, so a short
		// wait is not enough ...
		db, err := sql.Open("sqlite", "file:"+path)
		Expect(err).NotTo(HaveOccurred())
		defer db.Close()
		_, err = db.Exec(`UPDATE payments SET payment_status = 'Reversed' WHERE paypal_txn_id = 'PAY1'`)
		Expect(err).NotTo(HaveOccurred())
		idle, err = a.Idle(context.Background(), 10*time.Millisecond, "PAY1")
		Expect(err).NotTo(HaveOccurred())
		Expect(idle).To(BeFalse(), "not stable for settle within the wait")
		// ... but waits shorter than settle add up: a caller that asks in
		// short waits (a scenario looks at the emulator between them)
		// sees the answers settle, instead of waiting its whole window.
		Eventually(func() bool {
			idle, err := a.Idle(context.Background(), 20*time.Millisecond, "PAY1")
			Expect(err).NotTo(HaveOccurred())
			return idle
		}).WithTimeout(5 * time.Second).WithPolling(time.Millisecond).Should(BeTrue())
	})

	Describe("learning the shop's pace", func() {
		// The adapter judges reads and quiet periods on a clock the specs
		// move themselves: no figure here depends on how busy the
		// machine is.
		var (
			a      *sqlprobe.Adapter
			shop   *sql.DB
			now    time.Time
			settle = "1s"
		)
		tick := func(d time.Duration) { now = now.Add(d) }
		JustBeforeEach(func() { // after a context's own BeforeEach sets settle
			m, err := sqlprobe.ParseMap("m.yaml", []byte("settle: "+settle+"\neffects: SELECT paypal_txn_id AS txn_id, payment_status AS status, amount_cents AS amount, currency FROM payments WHERE paypal_txn_id = :txn_id\n"+
				"transaction: SELECT payment_status AS status, parent_txn_id FROM payments WHERE paypal_txn_id = :txn_id\n"))
			Expect(err).NotTo(HaveOccurred())
			path := shopDB()
			a, err = sqlprobe.Open(context.Background(), "sqlite:"+path, m)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(a.Close)
			now = time.Date(2026, 1, 3, 12, 0, 0, 0, time.UTC)
			sqlprobe.SetNow(a, func() time.Time { return now })
			shop, err = sql.Open("sqlite", "file:"+path)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(shop.Close)
		})
		// look reads txn's answers once, now (a wait of 0 reads and gives
		// up); idle says whether it then counts as idle.
		idle := func(txn string) bool {
			quiet, err := a.Idle(context.Background(), 0, txn)
			Expect(err).NotTo(HaveOccurred())
			return quiet
		}
		look := func(txn string) { idle(txn) }
		write := func(stmt string, args ...any) {
			_, err := shop.Exec(stmt, args...)
			Expect(err).NotTo(HaveOccurred())
		}
		// pay times one prompt write: read, the verifier answers, the shop
		// writes 2ms later, read 3ms after the answer.
		pay := func(txn string) {
			look(txn)
			a.Answered(now, txn)
			tick(2 * time.Millisecond)
			write(`INSERT INTO payments VALUES (NULL, 1, ?, '', 'Completed', 1000, 'usd', '2026-01-03')`, txn)
			tick(time.Millisecond)
			look(txn)
		}
		// quietAfter is how long txn takes to count as idle from now,
		// read every 5ms.
		quietAfter := func(txn string) time.Duration {
			start := now
			for !idle(txn) {
				Expect(now.Sub(start)).To(BeNumerically("<", 10*time.Second), "never idle")
				tick(5 * time.Millisecond)
			}
			return now.Sub(start)
		}

		It("waits settle until it has timed ten writes; then, after a write that followed the answer, the spread period (20ms at least)", func() {
			Expect(a.Quiet()).To(Equal(time.Second))
			for i := 1; i < 10; i++ {
				pay(fmt.Sprintf("P%d", i))
			}
			Expect(a.Quiet()).To(Equal(time.Second), "nine writes timed are not enough")
			Expect(quietAfter("P9")).To(BeNumerically(">=", 995*time.Millisecond), "the last write waits settle")
			pay("P10")
			Expect(a.Quiet()).To(Equal(20*time.Millisecond), "one write per answer: no spread timed")
			Expect(quietAfter("P10")).To(BeNumerically("<", 100*time.Millisecond))
			Expect(a.Longest()).To(Equal(5*time.Second), "a failing judgement waits five settle periods (the writes were quicker)")
		})

		It("waits four times the slowest latency, 40ms at least, after an answer no write followed yet", func() {
			for i := 1; i <= 10; i++ {
				pay(fmt.Sprintf("P%d", i))
			}
			look("P11")
			answered := now
			a.Answered(answered, "P11") // a negative case: the shop writes nothing
			quietAfter("P11")
			Expect(now.Sub(answered)).To(BeNumerically(">=", 40*time.Millisecond), "4 x 3ms is less than the floor")
			Expect(now.Sub(answered)).To(BeNumerically("<", 50*time.Millisecond))
		})

		It("times a second write after the same answer as the shop's spread, and waits four times it after a write", func() {
			for i := 1; i <= 10; i++ {
				pay(fmt.Sprintf("P%d", i))
			}
			look("P11")
			a.Answered(now, "P11")
			tick(time.Millisecond)
			look("P11") // read after the answer: the next change is surely its write
			write(`INSERT INTO payments VALUES (NULL, 1, 'P11', '', 'Pending', 1000, 'usd', '2026-01-03')`)
			tick(time.Millisecond)
			look("P11")
			// The shop credits in a second statement 30ms later; the
			// adapter keeps reading meanwhile.
			for range 6 {
				tick(5 * time.Millisecond)
				look("P11")
			}
			write(`UPDATE payments SET payment_status = 'Completed' WHERE paypal_txn_id = 'P11'`)
			tick(time.Millisecond)
			look("P11")
			Expect(a.Quiet()).To(Equal(4 * 31 * time.Millisecond))
		})

		It("takes a first look after the answer for no write: the write after it is the latency, not a spread", func() {
			for i := 1; i <= 10; i++ {
				txn := fmt.Sprintf("P%d", i)
				a.Answered(now, txn)
				look(txn) // the first read comes after the answer
				for range 3 {
					tick(5 * time.Millisecond)
					look(txn)
				}
				write(`INSERT INTO payments VALUES (NULL, 1, ?, '', 'Completed', 1000, 'usd', '2026-01-03')`, txn)
				tick(time.Millisecond)
				look(txn)
			}
			Expect(a.Quiet()).To(Equal(20*time.Millisecond), "one write per answer: no spread")
		})

		It("does not take a change whose read before it came before the answer for the answer's write: a row saved at the ack may be older", func() {
			for i := 1; i <= 10; i++ {
				pay(fmt.Sprintf("P%d", i))
			}
			look("P11")
			// The shop saves the message when it acks, before verifying; the
			// answer comes, then the adapter's next read sees that row.
			write(`INSERT INTO payments VALUES (NULL, 1, 'P11', '', 'Received', 1000, 'usd', '2026-01-03')`)
			answered := now
			a.Answered(answered, "P11")
			tick(time.Millisecond)
			look("P11")
			quietAfter("P11")
			Expect(now.Sub(answered)).To(BeNumerically(">=", 40*time.Millisecond), "the latency period from the answer: its write may still come")
		})

		It("learns a slow write, and never waits more than settle", func() {
			for i := 1; i <= 10; i++ {
				pay(fmt.Sprintf("P%d", i))
			}
			look("P11")
			a.Answered(now, "P11")
			// The shop writes 400ms after the answer; the adapter keeps
			// reading meanwhile, as it does while a check waits.
			for range 80 {
				tick(5 * time.Millisecond)
				look("P11")
			}
			write(`INSERT INTO payments VALUES (NULL, 1, 'P11', '', 'Completed', 1000, 'usd', '2026-01-03')`)
			tick(time.Millisecond)
			look("P11")
			look("P12")
			a.Answered(now, "P12")
			Expect(quietAfter("P12")).To(BeNumerically(">=", time.Second), "4 x 400ms is more than settle: settle")
			Expect(a.Longest()).To(Equal(5*time.Second), "five settle periods: more than 4 x 400ms")
		})

		Context("with a short settle", func() {
			BeforeEach(func() { settle = "20ms" })
			AfterEach(func() { settle = "1s" })
			It("has a failing judgement wait four times the slowest write when that is longer than five settle periods", func() {
				Expect(a.Longest()).To(Equal(100 * time.Millisecond))
				look("P1")
				a.Answered(now, "P1")
				for range 20 {
					tick(5 * time.Millisecond)
					look("P1")
				}
				write(`INSERT INTO payments VALUES (NULL, 1, 'P1', '', 'Completed', 1000, 'usd', '2026-01-03')`)
				tick(time.Millisecond)
				look("P1")
				Expect(a.Longest()).To(Equal(4 * 101 * time.Millisecond))
			})
		})

		It("calls a payment drained once the shop recorded it and it stayed still for the spread period, short of the latency period a judgement waits", func() {
			for i := 1; i <= 9; i++ {
				pay(fmt.Sprintf("P%d", i))
			}
			// One slow write: the latency period becomes 4 x 100ms or more.
			look("P10")
			a.Answered(now, "P10")
			for range 20 {
				tick(5 * time.Millisecond)
				look("P10")
			}
			write(`INSERT INTO payments VALUES (NULL, 1, 'P10', '', 'Completed', 1000, 'usd', '2026-01-03')`)
			tick(time.Millisecond)
			look("P10")

			ctx := context.Background()
			drained := func(txn string) bool {
				ok, err := a.Drained(ctx, 0, txn)
				Expect(err).NotTo(HaveOccurred())
				return ok
			}
			look("P11")
			a.Answered(now, "P11")
			tick(100 * time.Millisecond)
			Expect(drained("P11")).To(BeFalse(), "the shop has no row for it yet")

			write(`INSERT INTO payments VALUES (NULL, 1, 'P11', '', 'Completed', 1000, 'usd', '2026-01-03')`)
			tick(time.Millisecond)
			look("P11")
			copyAnswered := now
			a.Answered(copyAnswered, "P11") // a copy's postback, answered after the write
			for !drained("P11") {
				Expect(now.Sub(copyAnswered)).To(BeNumerically("<", time.Second), "never drained")
				tick(5 * time.Millisecond)
			}
			Expect(now.Sub(copyAnswered)).To(BeNumerically(">=", 20*time.Millisecond), "still for the spread period since the last answer")
			Expect(now.Sub(copyAnswered)).To(BeNumerically("<", 400*time.Millisecond))
			Expect(idle("P11")).To(BeFalse(), "a judgement still waits the latency period after the copy's answer: its write may come")
		})

		It("does not time a write it saw only after a gap in its reads: it may be older than the answer", func() {
			for i := 1; i <= 12; i++ {
				txn := fmt.Sprintf("P%d", i)
				look(txn)
				a.Answered(now, txn)
				write(`INSERT INTO payments VALUES (NULL, 1, ?, '', 'Completed', 1000, 'usd', '2026-01-03')`, txn)
				tick(50 * time.Millisecond)
				look(txn)
			}
			Expect(a.Quiet()).To(Equal(time.Second))
		})

		It("times a refund released by its payment's postback from that postback, not from the refund's own", func() {
			for i := range 10 {
				ref, parent := fmt.Sprintf("R%d", i), fmt.Sprintf("PP%d", i)
				write(`INSERT INTO payments VALUES (NULL, 1, ?, ?, 'Held', -500, 'usd', '2026-01-03')`, ref, parent)
				a.Answered(now.Add(-time.Hour), ref) // the refund came first
				look(ref)
				a.Answered(now, parent, "") // the payment's postback
				tick(2 * time.Millisecond)
				write(`UPDATE payments SET payment_status = 'Refunded' WHERE paypal_txn_id = ?`, ref)
				tick(time.Millisecond)
				look(ref)
			}
			Expect(a.Quiet()).To(Equal(20*time.Millisecond), "ten latencies timed, each within the reads")
		})
	})

	It("says what it knows beyond money: what the map declares, checked against its columns, or what its columns show", func() {
		path := shopDB()
		open := func(yaml string) (*sqlprobe.Adapter, error) {
			m, err := sqlprobe.ParseMap("m.yaml", []byte(yaml))
			if err != nil {
				return nil, err
			}
			a, err := sqlprobe.Open(context.Background(), "sqlite:"+path, m)
			if err == nil {
				DeferCleanup(a.Close)
			}
			return a, err
		}
		effects := "effects: SELECT paypal_txn_id AS txn_id, payment_status AS status, amount_cents AS amount, currency FROM payments WHERE paypal_txn_id = :txn_id\n"
		a, err := open(effects + "transaction: SELECT payment_status AS status FROM payments WHERE paypal_txn_id = :txn_id\n")
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Knows()).To(BeEmpty(), "a status column alone says nothing of transactions it did not credit")
		a, err = open(effects + "transaction: SELECT payment_status AS status, '' AS held FROM payments WHERE paypal_txn_id = :txn_id\n")
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Knows()).To(Equal([]probe.Fact{probe.Holds}))
		a, err = open("knows: [statuses, payer_names]\n" + effects + "transaction: SELECT payment_status AS status, 'x' AS payer_name, '' AS held FROM payments WHERE paypal_txn_id = :txn_id\n")
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Knows()).To(Equal([]probe.Fact{probe.Statuses, probe.PayerNames}), "declared: what it says, not what its columns show")
		_, err = open("knows: [holds]\n" + effects + "transaction: SELECT payment_status AS status FROM payments WHERE paypal_txn_id = :txn_id\n")
		Expect(err).To(MatchError(ContainSubstring("m.yaml:1: knows: holds, but the transaction query has no column held")))
		_, err = open("knows: [status]\n" + effects + "transaction: SELECT 1 AS status\n")
		Expect(err).To(MatchError(ContainSubstring(`m.yaml:1: knows: unknown fact "status"; want statuses, holds, payer_names, orders`)))
		_, err = open("knows: statuses\n" + effects + "transaction: SELECT 1 AS status\n")
		Expect(err).To(MatchError(ContainSubstring("m.yaml:1: knows: want a list")))
	})

	It("keeps :: casts and quoted colons, and refuses DSNs it cannot read, hiding passwords", func() {
		_, err := sqlprobe.ParseMap("m.yaml", []byte("effects: SELECT txn_id::text, ':not_a_param' AS status FROM x WHERE txn_id = :txn_id\ntransaction: SELECT 1 AS status\n"))
		Expect(err).NotTo(HaveOccurred())
		m, err := sqlprobe.ParseMap("m.yaml", []byte("effects: SELECT 1\ntransaction: SELECT 1\n"))
		Expect(err).NotTo(HaveOccurred())
		_, err = sqlprobe.Open(context.Background(), "oracle://u:s3cret@h/db", m)
		Expect(err).To(MatchError(ContainSubstring("want sql:sqlite:PATH")))
		Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
		_, err = sqlprobe.Open(context.Background(), "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=1", m)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
	})

	It("follows docs/probe.md's status rules: each worked example answers as the page says", func() {
		doc, err := os.ReadFile("../../docs/probe.md")
		Expect(err).NotTo(HaveOccurred())
		rules := regexp.MustCompile("(?s)<!-- status-rule: ([a-z-]+) -->\n```sql\n(.*?)```\n```yaml\n(.*?)```\nanswers: ([^\n]+)").FindAllSubmatch(doc, -1)
		Expect(len(rules)).To(BeNumerically(">=", 3), "docs/probe.md's worked status rules")
		for _, r := range rules {
			name, schema, query, answers := string(r[1]), string(r[2]), r[3], string(r[4])
			path := filepath.Join(GinkgoT().TempDir(), name+".db")
			db, err := sql.Open("sqlite", "file:"+path)
			Expect(err).NotTo(HaveOccurred())
			for _, stmt := range strings.Split(schema, ";") {
				if strings.TrimSpace(stmt) != "" {
					_, err := db.Exec(stmt)
					Expect(err).NotTo(HaveOccurred(), "%s: %s", name, stmt)
				}
			}
			db.Close()
			m, err := sqlprobe.ParseMap(name, append([]byte("knows: [statuses]\neffects: SELECT txn_id, payment_status AS status, 0 AS amount, 'USD' AS currency FROM paypal_ipn WHERE txn_id = :txn_id AND 0\n"), query...))
			Expect(err).NotTo(HaveOccurred(), name)
			a, err := sqlprobe.Open(context.Background(), "sqlite:"+path, m)
			Expect(err).NotTo(HaveOccurred(), name)
			for _, answer := range strings.Split(answers, ";") {
				txn, status, _ := strings.Cut(strings.TrimSpace(answer), " ")
				t, err := a.Transaction(context.Background(), "paypal", txn)
				Expect(err).NotTo(HaveOccurred(), "%s: %s", name, txn)
				Expect(t.Status).To(Equal(status), "status rule %s: %s", name, txn)
			}
			a.Close()
		}
	})
})
