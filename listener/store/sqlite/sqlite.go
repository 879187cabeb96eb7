// Package sqlite is the listener's store in SQLite (cgo-free), in WAL mode
// with full fsync on commit, so an acked notification survives a crash.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/ipnlab/ipnlab/listener/store"
)

const schema = `
CREATE TABLE IF NOT EXISTS inbox (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	provider    TEXT    NOT NULL,
	received_at TEXT    NOT NULL,
	remote_addr TEXT    NOT NULL,
	headers     TEXT    NOT NULL,
	body        BLOB    NOT NULL,
	state       TEXT    NOT NULL,
	detail      TEXT    NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS inbox_state ON inbox(state, id);
CREATE TABLE IF NOT EXISTS txns (
	provider    TEXT    NOT NULL,
	txn_id      TEXT    NOT NULL,
	parent_id   TEXT    NOT NULL DEFAULT '',
	kind        TEXT    NOT NULL DEFAULT '',
	status      TEXT    NOT NULL DEFAULT '',
	customer    TEXT    NOT NULL DEFAULT '',
	gross       INTEGER NOT NULL DEFAULT 0,
	fee         INTEGER NOT NULL DEFAULT 0,
	currency    TEXT    NOT NULL DEFAULT '',
	payer_email TEXT    NOT NULL DEFAULT '',
	payer_name  TEXT    NOT NULL DEFAULT '',
	held        TEXT    NOT NULL DEFAULT '',
	first_seen  TEXT    NOT NULL,
	updated     TEXT    NOT NULL,
	PRIMARY KEY (provider, txn_id)
);
CREATE INDEX IF NOT EXISTS txns_parent ON txns(provider, parent_id);
CREATE TABLE IF NOT EXISTS ledger (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	provider  TEXT    NOT NULL,
	txn_id    TEXT    NOT NULL,
	status    TEXT    NOT NULL,
	customer  TEXT    NOT NULL,
	amount    INTEGER NOT NULL,
	currency  TEXT    NOT NULL,
	parent_id TEXT    NOT NULL DEFAULT '',
	inbox_id  INTEGER NOT NULL,
	at        TEXT    NOT NULL,
	UNIQUE (provider, txn_id, status)
);
CREATE INDEX IF NOT EXISTS ledger_customer ON ledger(customer);
CREATE INDEX IF NOT EXISTS ledger_parent ON ledger(provider, parent_id);
CREATE TABLE IF NOT EXISTS payment_log (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	inbox_id INTEGER NOT NULL,
	provider TEXT    NOT NULL,
	txn_id   TEXT    NOT NULL,
	kind     TEXT    NOT NULL,
	status   TEXT    NOT NULL,
	verdict  TEXT    NOT NULL,
	action   TEXT    NOT NULL,
	detail   TEXT    NOT NULL,
	at       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS log_txn ON payment_log(txn_id);
`

// DB is a store.Store in SQLite.
//
// Writes go through one writer goroutine that commits them in groups: the
// writes that queue up while a commit is being synced share the next
// commit, each inside its own savepoint, so one failing write rolls back
// alone. Nobody hears "done" before the commit holding their write is on
// disk (synchronous=FULL). Reads use their own connections and, in WAL
// mode, never wait for the writer.
type DB struct {
	w     *sql.DB              // the one writer connection
	r     *sql.DB              // readers
	stmts map[string]*sql.Stmt // on the writer
	reads map[string]*sql.Stmt // on the readers
	ops   chan *writeOp
	quit  chan struct{}
	done  chan struct{}
}

var _ store.Store = (*DB)(nil)

// maxBatch bounds the writes one commit carries, so a long queue still
// hears back in steps.
const maxBatch = 256

// writeOp is one caller's write, run inside the group's transaction.
type writeOp struct {
	ctx context.Context
	run func(context.Context, *sql.Tx) error
	err chan error
}

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("sqlite: store closed")

// Open opens (or creates) the database at path.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	open := func(pragmas ...string) (*sql.DB, error) {
		q := url.Values{}
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		return sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	}
	w, err := open("journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	if _, err := w.Exec(schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: schema: %w", path, err)
	}
	d := &DB{w: w, r: w, ops: make(chan *writeOp, maxBatch), quit: make(chan struct{}), done: make(chan struct{})}
	// An in-memory database exists once per connection: it reads through
	// the writer.
	if !strings.Contains(path, ":memory:") && !strings.Contains(path, "mode=memory") {
		if d.r, err = open("busy_timeout(10000)", "query_only(1)"); err != nil {
			w.Close()
			return nil, fmt.Errorf("open %s for reading: %w", path, err)
		}
		d.r.SetMaxOpenConns(4)
	}
	if err := d.prepare(); err != nil {
		d.closeDBs()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	go d.writer()
	return d, nil
}

// Statements prepared once on the writer's connection: parsing SQL is a
// good part of a write's cost in the pure-Go SQLite.
const (
	sqlAddInbox = `INSERT INTO inbox(provider, received_at, remote_addr, headers, body, state, detail) VALUES(?,?,?,?,?,?,?)`
	sqlSetInbox = `UPDATE inbox SET state = ?, detail = ?, attempts = ? WHERE id = ?`
	sqlPutTxn   = `INSERT INTO txns(provider, txn_id, parent_id, kind, status, customer, gross, fee, currency, payer_email, payer_name, held, first_seen, updated)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(provider, txn_id) DO UPDATE SET parent_id=excluded.parent_id, kind=excluded.kind, status=excluded.status,
		customer=excluded.customer, gross=excluded.gross, fee=excluded.fee, currency=excluded.currency,
		payer_email=excluded.payer_email, payer_name=excluded.payer_name, held=excluded.held, updated=excluded.updated`
	sqlAddEntry = `INSERT INTO ledger(provider, txn_id, status, customer, amount, currency, parent_id, inbox_id, at)
		VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(provider, txn_id, status) DO NOTHING`
	sqlHasEntry                             = `SELECT COUNT(*) FROM ledger WHERE provider = ? AND txn_id = ? AND status = ?`
	sqlAddLog                               = `INSERT INTO payment_log(inbox_id, provider, txn_id, kind, status, verdict, action, detail, at) VALUES(?,?,?,?,?,?,?,?,?)`
	sqlTxn                                  = txnQuery + ` WHERE provider = ? AND txn_id = ?`
	sqlChildren                             = txnQuery + ` WHERE provider = ? AND parent_id = ? ORDER BY first_seen, txn_id`
	sqlSavepoint, sqlRollbackTo, sqlRelease = `SAVEPOINT w`, `ROLLBACK TO w`, `RELEASE w`
)

// Reads, prepared once on the readers' pool: a listener's probe is polled
// while a run settles, and parsing was most of a poll's cost.
const (
	sqlInbox        = inboxQuery + ` WHERE id = ?`
	sqlPendingInbox = inboxQuery + ` WHERE state = ? ORDER BY id`
	// Two indexed lookups: "txn_id = ? OR parent_id = ?" under one
	// provider term makes SQLite scan the whole ledger.
	sqlEntries = entryQuery + ` WHERE provider = ?1 AND txn_id = ?2
		UNION ALL ` + entryQuery + ` WHERE provider = ?1 AND parent_id = ?2 AND txn_id <> ?2 ORDER BY id`
	sqlBalances = `SELECT currency, SUM(amount) FROM ledger WHERE customer = ? GROUP BY currency`
	sqlLog      = logQuery + ` ORDER BY id DESC LIMIT ?`
	sqlTxnLog   = logQuery + ` WHERE txn_id = ? ORDER BY id DESC LIMIT ?`
	sqlCounts   = `SELECT state, COUNT(*) FROM inbox GROUP BY state`

	entryQuery = `SELECT id, provider, txn_id, status, customer, amount, currency, parent_id, inbox_id, at FROM ledger`
	logQuery   = `SELECT id, inbox_id, provider, txn_id, kind, status, verdict, action, detail, at FROM payment_log`
)

func (d *DB) prepare() error {
	d.stmts = map[string]*sql.Stmt{}
	for _, q := range []string{sqlAddInbox, sqlSetInbox, sqlPutTxn, sqlAddEntry, sqlHasEntry, sqlAddLog, sqlTxn, sqlChildren, sqlSavepoint, sqlRollbackTo, sqlRelease} {
		st, err := d.w.Prepare(q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.stmts[q] = st
	}
	d.reads = map[string]*sql.Stmt{}
	for _, q := range []string{sqlInbox, sqlPendingInbox, sqlTxn, sqlEntries, sqlBalances, sqlLog, sqlTxnLog, sqlCounts} {
		st, err := d.r.Prepare(q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.reads[q] = st
	}
	return nil
}

// stmt is q prepared, bound to tx.
func (d *DB) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	return tx.StmtContext(ctx, d.stmts[q])
}

// write queues run and waits until the commit that carries it is synced.
func (d *DB) write(ctx context.Context, run func(context.Context, *sql.Tx) error) error {
	op := &writeOp{ctx: context.WithoutCancel(ctx), run: run, err: make(chan error, 1)}
	select {
	case d.ops <- op:
	case <-d.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued it runs whatever the caller does: cancelling an
	// interrupted statement would roll back the whole group.
	select {
	case err := <-op.err:
		return err
	case <-d.done:
		// Queued as Close drained the queue: it ran if the writer saw it.
		select {
		case err := <-op.err:
			return err
		default:
			return ErrClosed
		}
	}
}

func (d *DB) writer() {
	defer close(d.done)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		var first *writeOp
		select {
		case first = <-d.ops:
		case <-d.quit:
			// Writes queued before Close still land.
			for {
				select {
				case op := <-d.ops:
					d.commit([]*writeOp{op})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-d.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		d.commit(batch)
	}
}

// commit runs a group in one transaction, each write in a savepoint, and
// tells every caller its outcome once the commit is synced.
func (d *DB) commit(batch []*writeOp) {
	errs := make([]error, len(batch))
	fail := func(err error) {
		for i, op := range batch {
			op.err <- errors.Join(errs[i], err)
		}
	}
	ctx := context.Background()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	for i, op := range batch {
		if _, err := d.stmt(ctx, tx, sqlSavepoint).Exec(); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		if errs[i] = op.run(op.ctx, tx); errs[i] != nil {
			if _, err := d.stmt(ctx, tx, sqlRollbackTo).Exec(); err != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("roll back a failed write: %w", err))
				return
			}
		}
		if _, err := d.stmt(ctx, tx, sqlRelease).Exec(); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("release: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	for i, op := range batch {
		op.err <- errs[i]
	}
}

// Close lets queued writes land, then closes the database.
func (d *DB) Close() error {
	select {
	case <-d.quit:
		return nil
	default:
	}
	close(d.quit)
	<-d.done
	return d.closeDBs()
}

func (d *DB) closeDBs() error {
	var errs []error
	for _, st := range d.stmts {
		errs = append(errs, st.Close())
	}
	if d.r != d.w {
		errs = append(errs, d.r.Close())
	}
	return errors.Join(append(errs, d.w.Close())...)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTS(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// AddInbox implements store.Store.
func (d *DB) AddInbox(ctx context.Context, it store.InboxItem) (int64, error) {
	h, err := json.Marshal(it.Headers)
	if err != nil {
		return 0, err
	}
	if it.State == "" {
		it.State = store.InboxPending
	}
	if it.Body == nil {
		it.Body = []byte{}
	}
	var id int64
	err = d.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := d.stmt(ctx, tx, sqlAddInbox).ExecContext(ctx, it.Provider, ts(it.ReceivedAt), it.RemoteAddr, string(h), it.Body, it.State, it.Detail)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store inbox: %w", err)
	}
	return id, nil
}

const inboxQuery = `SELECT id, provider, received_at, remote_addr, headers, body, state, detail, attempts FROM inbox`

func scanInbox(row scanner) (store.InboxItem, error) {
	var it store.InboxItem
	var received, headers string
	err := row.Scan(&it.ID, &it.Provider, &received, &it.RemoteAddr, &headers, &it.Body, &it.State, &it.Detail, &it.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return it, store.ErrNotFound
	}
	if err != nil {
		return it, err
	}
	it.ReceivedAt = parseTS(received)
	err = json.Unmarshal([]byte(headers), &it.Headers)
	return it, err
}

// Inbox implements store.Store.
func (d *DB) Inbox(ctx context.Context, id int64) (store.InboxItem, error) {
	return scanInbox(d.reads[sqlInbox].QueryRowContext(ctx, id))
}

// PendingInbox implements store.Store.
func (d *DB) PendingInbox(ctx context.Context) ([]store.InboxItem, error) {
	rows, err := d.reads[sqlPendingInbox].QueryContext(ctx, store.InboxPending)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.InboxItem
	for rows.Next() {
		it, err := scanInbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// SetInboxState implements store.Store.
func (d *DB) SetInboxState(ctx context.Context, id int64, state, detail string, attempts int) error {
	return d.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := d.stmt(ctx, tx, sqlSetInbox).ExecContext(ctx, state, detail, attempts, id)
		return err
	})
}

// Tx implements store.Store: f runs on the writer, inside a savepoint of
// the group's transaction.
func (d *DB) Tx(ctx context.Context, f func(store.Tx) error) error {
	return d.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return f(&sqlTx{ctx: ctx, tx: tx, d: d})
	})
}

// Txn implements store.Store.
func (d *DB) Txn(ctx context.Context, provider, txnID string) (store.Txn, error) {
	return scanTxn(d.reads[sqlTxn].QueryRowContext(ctx, provider, txnID))
}

// Entries implements store.Store.
func (d *DB) Entries(ctx context.Context, provider, txnID string) ([]store.Entry, error) {
	rows, err := d.reads[sqlEntries].QueryContext(ctx, provider, txnID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Entry
	for rows.Next() {
		var e store.Entry
		var at string
		if err := rows.Scan(&e.ID, &e.Provider, &e.TxnID, &e.Status, &e.Customer, &e.Amount, &e.Currency, &e.ParentID, &e.InboxID, &at); err != nil {
			return nil, err
		}
		e.At = parseTS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Balances implements store.Store.
func (d *DB) Balances(ctx context.Context, customer string) (map[string]int64, error) {
	rows, err := d.reads[sqlBalances].QueryContext(ctx, customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var cur string
		var sum int64
		if err := rows.Scan(&cur, &sum); err != nil {
			return nil, err
		}
		out[cur] = sum
	}
	return out, rows.Err()
}

// Log implements store.Store.
func (d *DB) Log(ctx context.Context, txnID string, limit int) ([]store.LogLine, error) {
	if limit <= 0 {
		limit = 1000
	}
	q, args := sqlLog, []any{limit}
	if txnID != "" {
		q, args = sqlTxnLog, []any{txnID, limit}
	}
	rows, err := d.reads[q].QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LogLine
	for rows.Next() {
		var l store.LogLine
		var at string
		if err := rows.Scan(&l.ID, &l.InboxID, &l.Provider, &l.TxnID, &l.Kind, &l.Status, &l.Verdict, &l.Action, &l.Detail, &at); err != nil {
			return nil, err
		}
		l.At = parseTS(at)
		out = append(out, l)
	}
	// Oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rows.Err()
}

// Counts implements store.Store.
func (d *DB) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := d.reads[sqlCounts].QueryContext(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

const txnQuery = `SELECT provider, txn_id, parent_id, kind, status, customer, gross, fee, currency, payer_email, payer_name, held, first_seen, updated FROM txns`

type scanner interface{ Scan(...any) error }

func scanTxn(row scanner) (store.Txn, error) {
	var t store.Txn
	var first, updated string
	err := row.Scan(&t.Provider, &t.TxnID, &t.ParentID, &t.Kind, &t.Status, &t.Customer, &t.Gross, &t.Fee, &t.Currency, &t.PayerEmail, &t.PayerName, &t.Held, &first, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return t, store.ErrNotFound
	}
	t.FirstSeen, t.Updated = parseTS(first), parseTS(updated)
	return t, err
}

type sqlTx struct {
	ctx context.Context
	tx  *sql.Tx
	d   *DB
}

func (t *sqlTx) stmt(q string) *sql.Stmt { return t.d.stmt(t.ctx, t.tx, q) }

func (t *sqlTx) Txn(provider, txnID string) (store.Txn, error) {
	return scanTxn(t.stmt(sqlTxn).QueryRowContext(t.ctx, provider, txnID))
}

func (t *sqlTx) PutTxn(x store.Txn) error {
	_, err := t.stmt(sqlPutTxn).ExecContext(t.ctx, x.Provider, x.TxnID, x.ParentID, x.Kind, x.Status, x.Customer, x.Gross, x.Fee, x.Currency, x.PayerEmail, x.PayerName, x.Held, ts(x.FirstSeen), ts(x.Updated))
	return err
}

func (t *sqlTx) Children(provider, parentID string) ([]store.Txn, error) {
	rows, err := t.stmt(sqlChildren).QueryContext(t.ctx, provider, parentID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Txn
	for rows.Next() {
		x, err := scanTxn(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

func (t *sqlTx) AddEntry(e store.Entry) (bool, error) {
	res, err := t.stmt(sqlAddEntry).ExecContext(t.ctx, e.Provider, e.TxnID, e.Status, e.Customer, e.Amount, e.Currency, e.ParentID, e.InboxID, ts(e.At))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *sqlTx) HasEntry(provider, txnID, status string) (bool, error) {
	var n int
	err := t.stmt(sqlHasEntry).QueryRowContext(t.ctx, provider, txnID, status).Scan(&n)
	return n > 0, err
}

func (t *sqlTx) AddLog(l store.LogLine) error {
	_, err := t.stmt(sqlAddLog).ExecContext(t.ctx, l.InboxID, l.Provider, l.TxnID, l.Kind, l.Status, l.Verdict, l.Action, l.Detail, ts(l.At))
	return err
}

func (t *sqlTx) SetInboxState(id int64, state, detail string, attempts int) error {
	_, err := t.stmt(sqlSetInbox).ExecContext(t.ctx, state, detail, attempts, id)
	return err
}
