package sqlprobe

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers "sqlite"

	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/internal/redact"
	"github.com/ipnlab/ipnlab/orders"
	"github.com/ipnlab/ipnlab/probe"
)

// Scheme prefixes a probe DSN: --probe sql:DSN.
const Scheme = "sql:"

// Adapter answers the probe contract from a database.
type Adapter struct {
	db     *sql.DB
	driver string // sqlite, pgx or mysql
	dsn    string // redacted, for messages
	m      *Map
	stmts  map[string]string // each key's query, bound for the driver
	params map[string][]string
	knows  []probe.Fact

	mu   sync.Mutex
	pace pace
	// now is the time reads and quiet periods are judged at: the wall
	// clock (the pace specs drive one of their own).
	now func() time.Time
}

// factColumns are the transaction query's columns that answer a fact.
var factColumns = map[probe.Fact]string{probe.Holds: "held", probe.PayerNames: "payer_name"}

// Knows is what the map answers beyond money: what it declares (knows),
// or else what its transaction query's columns show (held: holds,
// payer_name: payer names). Statuses are never inferred: a status column
// every map has, but only a map that says so keeps the status of
// transactions it did not credit.
func (a *Adapter) Knows() []probe.Fact { return a.knows }

// Open connects to dsn (without the sql: prefix: sqlite:PATH,
// postgres://..., mysql://USER:PASS@HOST:PORT/DB), read-only where the
// driver allows, and checks every query of m against it: a query that
// fails, or lacks a column the contract needs, is an error naming its line
// in the map.
func Open(ctx context.Context, dsn string, m *Map) (*Adapter, error) {
	driver, source, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := openDB(driver, source)
	if err != nil {
		return nil, redact.Error(fmt.Errorf("probe %s: %w", dsn, err))
	}
	a := &Adapter{db: db, driver: driver, dsn: redact.DSN(dsn), m: m, stmts: map[string]string{}, params: map[string][]string{}, now: time.Now}
	style := "?"
	if driver == "pgx" {
		style = "$"
	}
	for _, q := range queries {
		text := m.Query(q.key)
		if text == "" {
			continue
		}
		a.stmts[q.key], a.params[q.key] = bind(text, style)
	}
	if driver == "sqlite" {
		// Before any query runs: the engine, not a lexer, says what each is.
		if err := a.checkSQLite(source); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := a.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// Caps on every probe query against PostgreSQL: a map's query cannot
// hold the listener's rows, wait on its locks, or sit in a transaction.
var postgresCaps = map[string]string{
	"statement_timeout":                   "5s",
	"lock_timeout":                        "1s",
	"idle_in_transaction_session_timeout": "10s",
}

// openDB opens the probe's pool. PostgreSQL always speaks the extended
// protocol, whatever the DSN asks (default_query_exec_mode): it parses
// exactly one statement, so E'\” or $tag$ quoting cannot smuggle in a
// second; each query is capped (postgresCaps); and a connection is reset
// (DISCARD ALL: advisory locks, settings, temporary tables) before reuse.
func openDB(driver, source string) (*sql.DB, error) {
	if driver != "pgx" {
		return sql.Open(driver, source)
	}
	cfg, err := pgx.ParseConfig(source)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	maps.Copy(cfg.RuntimeParams, postgresCaps)
	return stdlib.OpenDB(*cfg, stdlib.OptionResetSession(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DISCARD ALL")
		return err
	})), nil
}

// checkSQLite has SQLite prepare every query of the map (sqlitestmt.go).
func (a *Adapter) checkSQLite(source string) error {
	c, err := openSQLiteChecker(source)
	if err != nil {
		return fmt.Errorf("probe %s: %w", a.dsn, err)
	}
	defer c.Close()
	for _, q := range queries {
		if a.stmts[q.key] == "" {
			continue
		}
		err := c.check(a.stmts[q.key])
		switch {
		case errors.Is(err, ErrNotOneQuery):
			return &MapError{File: a.m.File, Line: a.m.Line(q.key), Msg: fmt.Sprintf("%s: %v", q.key, err), Err: err}
		case err != nil:
			return &MapError{File: a.m.File, Line: a.m.Line(q.key), Msg: fmt.Sprintf("%s: the query fails on %s: %v", q.key, a.dsn, err)}
		}
	}
	return nil
}

// Close closes the connections.
func (a *Adapter) Close() error { return a.db.Close() }

// check runs each query once, for a transaction no database has, and
// looks at its columns.
func (a *Adapter) check(ctx context.Context) error {
	if err := a.db.PingContext(ctx); err != nil {
		return fmt.Errorf("probe %s: %w", a.dsn, err)
	}
	for _, q := range queries {
		if a.stmts[q.key] == "" {
			continue
		}
		cols, _, err := a.query(ctx, q.key, map[string]string{ParamProvider: "paypal", ParamTxnID: "ipnlab-probe-check", ParamCustomer: "ipnlab-probe-check",
			ParamOrder: "ipnlab-probe-check", ParamAmount: "0.01", ParamCurrency: "XTS"})
		if err != nil {
			return &MapError{File: a.m.File, Line: a.m.Line(q.key), Msg: fmt.Sprintf("%s: the query fails on %s: %v", q.key, a.dsn, err)}
		}
		for _, c := range q.columns {
			if !containsFold(cols, c) {
				return &MapError{File: a.m.File, Line: a.m.Line(q.key), Msg: fmt.Sprintf("%s: the result has no column %s (it has %s); want %s, and may have %s",
					q.key, c, strings.Join(cols, ", "), strings.Join(q.columns, ", "), strings.Join(q.optional, ", "))}
			}
		}
		for _, c := range cols {
			if !containsFold(q.columns, c) && !containsFold(q.optional, c) {
				return &MapError{File: a.m.File, Line: a.m.Line(q.key), Msg: fmt.Sprintf("%s: unknown result column %s; want %s, and may have %s",
					q.key, c, strings.Join(q.columns, ", "), strings.Join(q.optional, ", "))}
			}
		}
		if q.key == "transaction" {
			if err := a.learnFacts(cols); err != nil {
				return err
			}
		}
	}
	return nil
}

// learnFacts sets what the map knows from its declaration, checking
// that the transaction query has a column for each fact declared, or
// infers it from those columns.
func (a *Adapter) learnFacts(cols []string) error {
	if !a.m.knowsDeclared {
		for _, f := range probe.Facts {
			if c, ok := factColumns[f]; ok && containsFold(cols, c) {
				a.knows = append(a.knows, f)
			}
			if f == probe.Orders && a.ReadsOrders() {
				a.knows = append(a.knows, f)
			}
		}
		return nil
	}
	for _, f := range a.m.Knows {
		if c, ok := factColumns[f]; ok && !containsFold(cols, c) {
			return &MapError{File: a.m.File, Line: a.m.Line("knows"), Msg: fmt.Sprintf("knows: %s, but the transaction query has no column %s to answer it", f, c)}
		}
		if f == probe.Orders && !a.ReadsOrders() {
			return &MapError{File: a.m.File, Line: a.m.Line("knows"), Msg: "knows: orders, but the map has no orders query to answer it"}
		}
	}
	a.knows = a.m.Knows
	return nil
}

// ReadsOrders reports whether the map answers for orders (its orders
// query).
func (a *Adapter) ReadsOrders() bool { return a.stmts["orders"] != "" }

// Order answers GET /probe/v1/orders/{ref}: the map's orders query, a row
// per currency received; ErrNoOrder when it has no row.
func (a *Adapter) Order(ctx context.Context, ref string) (probe.Order, error) {
	if !a.ReadsOrders() {
		return probe.Order{}, fmt.Errorf("probe %s: the probe map %s has no orders query", a.dsn, a.m.File)
	}
	_, rows, err := a.query(ctx, "orders", map[string]string{ParamOrder: ref})
	if err != nil {
		return probe.Order{}, fmt.Errorf("probe %s: order %s: %w", a.dsn, ref, err)
	}
	if len(rows) == 0 {
		return probe.Order{}, probe.ErrNoOrder
	}
	o := probe.Order{Ref: ref, Received: map[string]string{}}
	sums := map[string]generate.Money{}
	for _, r := range rows {
		paid, err := truth(r["paid"])
		if err != nil {
			return probe.Order{}, fmt.Errorf("probe %s: order %s: paid %q: %w", a.dsn, ref, r["paid"], err)
		}
		o.Paid = o.Paid || paid
		if strings.TrimSpace(r["received"]) == "" {
			continue // nothing received (a LEFT JOIN's NULL)
		}
		amount, err := money(r["received"])
		if err != nil {
			return probe.Order{}, fmt.Errorf("probe %s: order %s: received %q: %w", a.dsn, ref, r["received"], err)
		}
		sums[strings.ToUpper(strings.TrimSpace(r["currency"]))] += amount
	}
	for c, v := range sums {
		o.Received[c] = v.String()
	}
	return o, nil
}

// truth reads a paid column: 1/0, true/false, t/f, yes/no.
func truth(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "t", "yes", "y":
		return true, nil
	case "0", "false", "f", "no", "n", "":
		return false, nil
	}
	return false, errors.New("want 1 or 0, true or false")
}

// OrderSource is the map's open_order query as an order source (--orders
// sql): each call answers an unpaid order it has not answered before.
func (a *Adapter) OrderSource() (orders.Source, error) {
	if a.stmts["open_order"] == "" {
		return nil, fmt.Errorf("%w sql: the probe map %s has no open_order query", orders.ErrSource, a.m.File)
	}
	return &sqlOrders{a: a, given: map[string]bool{}}, nil
}

type sqlOrders struct {
	a     *Adapter
	mu    sync.Mutex
	given map[string]bool
}

func (s *sqlOrders) String() string { return "sql (" + s.a.m.File + ": open_order)" }

func (s *sqlOrders) New(ctx context.Context, req orders.Request) (orders.Order, error) {
	_, rows, err := s.a.query(ctx, "open_order", map[string]string{ParamAmount: req.Amount.String(), ParamCurrency: req.Currency})
	if err != nil {
		return orders.Order{}, fmt.Errorf("%w %s: %w", orders.ErrSource, s, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		o, err := orders.Parse(r["ref"], r["amount"], r["currency"], r["field"])
		if err != nil {
			return orders.Order{}, fmt.Errorf("%w %s: %w", orders.ErrSource, s, err)
		}
		if !s.given[o.Ref] {
			s.given[o.Ref] = true
			return o, nil
		}
	}
	return orders.Order{}, fmt.Errorf("%w %s: no unpaid order of %s %s left to pay (%d given already): create more", orders.ErrSource, s, req.Amount, req.Currency, len(s.given))
}

// query runs key's query in a read-only transaction, its parameters
// taken from vals by name, and returns its columns (lower case) and rows,
// each a map of column to text.
func (a *Adapter) query(ctx context.Context, key string, vals map[string]string) ([]string, []map[string]string, error) {
	args := make([]any, 0, len(a.params[key]))
	for _, name := range a.params[key] {
		args = append(args, vals[name])
	}
	tx, err := a.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: a.driver != "sqlite"})
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback() //nolint:errcheck // read only: nothing to keep
	rows, err := tx.QueryContext(ctx, a.stmts[key], args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	for i := range cols {
		cols[i] = strings.ToLower(cols[i])
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = text(vals[i])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if a.driver == "pgx" {
		// A session advisory lock outlives the transaction, held on an
		// idle pooled connection: the query may not keep one.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
			return nil, nil, err
		}
	}
	return cols, out, nil
}

// text is a column's value as text: numbers as written, bytes as UTF-8.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(x)
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case driver.Valuer: // a driver's own type (PostgreSQL's numeric)
		if v, err := x.Value(); err == nil {
			if _, again := v.(driver.Valuer); !again {
				return text(v)
			}
		}
	case fmt.Stringer:
		return x.String()
	}
	if rv := reflect.ValueOf(v); rv.CanInt() {
		return strconv.FormatInt(rv.Int(), 10)
	}
	return fmt.Sprint(v)
}

// Transaction answers GET /probe/v1/transactions/{provider}/{txn_id}.
func (a *Adapter) Transaction(ctx context.Context, provider, txnID string) (probe.Transaction, error) {
	about := map[string]string{ParamProvider: provider, ParamTxnID: txnID}
	_, rows, err := a.query(ctx, "transaction", about)
	if err != nil {
		return probe.Transaction{}, fmt.Errorf("probe %s: transaction %s: %w", a.dsn, txnID, err)
	}
	if len(rows) == 0 {
		return probe.Transaction{}, probe.ErrNoTransaction // no row
	}
	own := rows[0]
	t := probe.Transaction{Provider: provider, TxnID: txnID, ParentTxnID: own["parent_txn_id"], Status: own["status"],
		Customer: own["customer"], PayerName: own["payer_name"], Held: own["held"], Effects: []probe.Effect{}, Net: map[string]string{}}
	_, effects, err := a.query(ctx, "effects", about)
	if err != nil {
		return probe.Transaction{}, fmt.Errorf("probe %s: effects of %s: %w", a.dsn, txnID, err)
	}
	net := map[string]generate.Money{}
	for _, e := range effects {
		amount, err := money(e["amount"])
		if err != nil {
			return probe.Transaction{}, fmt.Errorf("probe %s: effects of %s: amount %q: %w", a.dsn, txnID, e["amount"], err)
		}
		cur := strings.ToUpper(strings.TrimSpace(e["currency"]))
		t.Effects = append(t.Effects, probe.Effect{TxnID: e["txn_id"], Status: e["status"], Amount: amount.String(), Currency: cur, Customer: e["customer"]})
		net[cur] += amount
	}
	for c, v := range net {
		t.Net[c] = v.String()
	}
	return t, nil
}

// ReadsBalances reports whether the map answers for customers' balances
// (its balances query).
func (a *Adapter) ReadsBalances() bool { return a.stmts["balances"] != "" }

// Balances answers GET /probe/v1/customers/{id}: the map's balances query,
// a row per currency. It is an error when the map has none.
func (a *Adapter) Balances(ctx context.Context, customer string) (map[string]string, error) {
	if !a.ReadsBalances() {
		return nil, fmt.Errorf("probe %s: the probe map %s has no balances query", a.dsn, a.m.File)
	}
	_, rows, err := a.query(ctx, "balances", map[string]string{ParamCustomer: customer})
	if err != nil {
		return nil, fmt.Errorf("probe %s: balances of %s: %w", a.dsn, customer, err)
	}
	sums := map[string]generate.Money{}
	for _, r := range rows {
		amount, err := money(r["balance"])
		if err != nil {
			return nil, fmt.Errorf("probe %s: balances of %s: balance %q: %w", a.dsn, customer, r["balance"], err)
		}
		sums[strings.ToUpper(strings.TrimSpace(r["currency"]))] += amount
	}
	out := make(map[string]string, len(sums))
	for c, v := range sums {
		out[c] = v.String()
	}
	return out, nil
}

// money reads an amount in currency units ("25", "25.5", "-25.50", 25.499999
// from a float column), to the cent.
func money(s string) (generate.Money, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	return generate.Money(math.Round(f * 100)), nil
}

// Idle waits (up to wait) until nothing is being processed: every
// transaction of txns is quiet by the shop's pace (pace.go), and the
// map's idle query, if any, counts nothing busy. With no txns, the
// answers read are none: it waits settle, or the idle query's word.
func (a *Adapter) Idle(ctx context.Context, wait time.Duration, txns ...string) (bool, error) {
	deadline := time.Now().Add(wait)
	first := time.Now()
	for {
		if err := a.readAnswers(ctx, txns); err != nil {
			return false, err
		}
		// With no transactions to read, the idle query's word, or settle.
		quiet := len(txns) > 0 || a.stmts["idle"] != "" || time.Since(first) >= a.m.Settle
		a.mu.Lock()
		for _, txn := range txns {
			quiet = quiet && a.quietFor(txn, a.now())
		}
		a.mu.Unlock()
		if quiet && a.stmts["idle"] != "" {
			busy, err := a.busy(ctx, txns)
			if err != nil {
				return false, err
			}
			quiet = busy == 0
		}
		if quiet {
			return true, nil
		}
		if !sleepUntil(ctx, deadline, paceStep) {
			return false, ctx.Err()
		}
	}
}

// Drained waits (up to wait) until the shop shows txn recorded, and
// neither its answers nor the verifier's answers about it have moved for
// the spread period (pace.go): the shop has done the work it was sent,
// though a late write may still follow. It paces a sender that must not
// pile work up on the shop (bursts of copies); it never judges: Idle
// does.
func (a *Adapter) Drained(ctx context.Context, wait time.Duration, txn string) (bool, error) {
	deadline := time.Now().Add(wait)
	for {
		if err := a.readAnswers(ctx, []string{txn}); err != nil {
			return false, err
		}
		a.mu.Lock()
		drained := a.drained(txn, a.now())
		a.mu.Unlock()
		if drained {
			return true, nil
		}
		if !sleepUntil(ctx, deadline, paceStep) {
			return false, ctx.Err()
		}
	}
}

// readAnswers reads the answers for txns, noting each transaction's
// (pace.go).
func (a *Adapter) readAnswers(ctx context.Context, txns []string) error {
	for _, txn := range txns {
		var answers strings.Builder
		var found []string
		parent := ""
		for _, p := range a.providersOf(txn) {
			t, err := a.Transaction(ctx, p, txn)
			if err != nil && !errors.Is(err, probe.ErrNoTransaction) {
				return err
			}
			if err == nil {
				// Only what the shop has: the same answers whether or
				// not the other provider is still read.
				found = append(found, p)
				fmt.Fprintf(&answers, "%s:%v|", p, t)
				parent = cmp.Or(parent, t.ParentTxnID)
			}
		}
		if len(found) == 1 {
			a.noteProvider(txn, found[0])
		}
		a.read(txn, parent, answers.String(), len(found) > 0, a.now())
	}
	return nil
}

// providersOf is whose transactions txn is read as: both until the
// shop has it under one provider's name alone, then that one (a
// transaction id is a provider's), halving the reads a wait makes. A
// map that answers for both (its query ignores :provider) keeps both.
func (a *Adapter) providersOf(txn string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.pace.provider[txn]; p != "" {
		return []string{p}
	}
	return []string{"paypal", "paydo"}
}

func (a *Adapter) noteProvider(txn, p string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pace.provider == nil {
		a.pace.provider = map[string]string{}
	}
	a.pace.provider[txn] = p
}

// busy is what the idle query counts for txns (all, with none).
func (a *Adapter) busy(ctx context.Context, txns []string) (int, error) {
	busy := 0
	for _, txn := range txnsOrAll(txns) {
		_, rows, err := a.query(ctx, "idle", map[string]string{ParamTxnID: txn})
		if err != nil {
			return 0, fmt.Errorf("probe %s: idle: %w", a.dsn, err)
		}
		if len(rows) > 0 {
			n, err := strconv.Atoi(strings.TrimSpace(rows[0]["busy"]))
			if err != nil {
				return 0, fmt.Errorf("probe %s: idle: busy %q is not a count", a.dsn, rows[0]["busy"])
			}
			busy += n
		}
	}
	return busy, nil
}

func txnsOrAll(txns []string) []string {
	if len(txns) == 0 {
		return []string{""}
	}
	return txns
}

// sleepUntil sleeps step, or until the deadline; false once it is past.
func sleepUntil(ctx context.Context, deadline time.Time, step time.Duration) bool {
	left := time.Until(deadline)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(step, left))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// parseDSN turns a probe DSN into a driver and its data source.
func parseDSN(dsn string) (driver, source string, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", fmt.Errorf("probe sql:sqlite:PATH: the path is empty")
		}
		// Read-only, and refused at the engine too. The path is escaped:
		// a ? or # in it would end the file name and start parameters.
		return "sqlite", "file:" + uriPath.Replace(path) + "?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(5000)", nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return "", "", redact.Error(fmt.Errorf("probe %s: %w", dsn, err))
		}
		q := u.Query()
		q.Set("default_transaction_read_only", "on")
		u.RawQuery = q.Encode()
		return "pgx", u.String(), nil
	case strings.HasPrefix(dsn, "mysql://"):
		u, err := url.Parse(dsn)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("probe %s: want mysql://USER:PASSWORD@HOST:PORT/DATABASE", redact.DSN(dsn))
		}
		cfg := mysql.NewConfig()
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
		return "mysql", cfg.FormatDSN(), nil
	}
	return "", "", fmt.Errorf("probe sql:%s: want sql:sqlite:PATH, sql:postgres://USER:PASSWORD@HOST/DB or sql:mysql://USER:PASSWORD@HOST:PORT/DB", redact.DSN(dsn))
}

// uriPath escapes what would end a file name in an SQLite URI.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
