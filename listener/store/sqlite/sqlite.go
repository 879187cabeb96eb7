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
type DB struct {
	db *sql.DB
}

var _ store.Store = (*DB)(nil)

// Open opens (or creates) the database at path.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One connection: SQLite has one writer, and serialising here avoids
	// SQLITE_BUSY under concurrent duplicates.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: schema: %w", path, err)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

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
	res, err := d.db.ExecContext(ctx, `INSERT INTO inbox(provider, received_at, remote_addr, headers, body, state, detail) VALUES(?,?,?,?,?,?,?)`,
		it.Provider, ts(it.ReceivedAt), it.RemoteAddr, string(h), it.Body, it.State, it.Detail)
	if err != nil {
		return 0, fmt.Errorf("store inbox: %w", err)
	}
	return res.LastInsertId()
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
	return scanInbox(d.db.QueryRowContext(ctx, inboxQuery+` WHERE id = ?`, id))
}

// PendingInbox implements store.Store.
func (d *DB) PendingInbox(ctx context.Context) ([]store.InboxItem, error) {
	rows, err := d.db.QueryContext(ctx, inboxQuery+` WHERE state = ? ORDER BY id`, store.InboxPending)
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
	_, err := d.db.ExecContext(ctx, `UPDATE inbox SET state = ?, detail = ?, attempts = ? WHERE id = ?`, state, detail, attempts, id)
	return err
}

// Tx implements store.Store.
func (d *DB) Tx(ctx context.Context, f func(store.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(&sqlTx{ctx: ctx, tx: tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Txn implements store.Store.
func (d *DB) Txn(ctx context.Context, provider, txnID string) (store.Txn, error) {
	return scanTxn(d.db.QueryRowContext(ctx, txnQuery+` WHERE provider = ? AND txn_id = ?`, provider, txnID))
}

// Entries implements store.Store.
func (d *DB) Entries(ctx context.Context, provider, txnID string) ([]store.Entry, error) {
	// Two indexed lookups: "txn_id = ? OR parent_id = ?" under one provider
	// term makes SQLite scan the whole ledger.
	const cols = `SELECT id, provider, txn_id, status, customer, amount, currency, parent_id, inbox_id, at FROM ledger`
	rows, err := d.db.QueryContext(ctx, cols+` WHERE provider = ?1 AND txn_id = ?2
		UNION ALL `+cols+` WHERE provider = ?1 AND parent_id = ?2 AND txn_id <> ?2 ORDER BY id`, provider, txnID)
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
	rows, err := d.db.QueryContext(ctx, `SELECT currency, SUM(amount) FROM ledger WHERE customer = ? GROUP BY currency`, customer)
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
	q := `SELECT id, inbox_id, provider, txn_id, kind, status, verdict, action, detail, at FROM payment_log`
	args := []any{}
	if txnID != "" {
		q += ` WHERE txn_id = ?`
		args = append(args, txnID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := d.db.QueryContext(ctx, q, args...)
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
	rows, err := d.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM inbox GROUP BY state`)
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
}

func (t *sqlTx) Txn(provider, txnID string) (store.Txn, error) {
	return scanTxn(t.tx.QueryRowContext(t.ctx, txnQuery+` WHERE provider = ? AND txn_id = ?`, provider, txnID))
}

func (t *sqlTx) PutTxn(x store.Txn) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO txns(provider, txn_id, parent_id, kind, status, customer, gross, fee, currency, payer_email, payer_name, held, first_seen, updated)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(provider, txn_id) DO UPDATE SET parent_id=excluded.parent_id, kind=excluded.kind, status=excluded.status,
		customer=excluded.customer, gross=excluded.gross, fee=excluded.fee, currency=excluded.currency,
		payer_email=excluded.payer_email, payer_name=excluded.payer_name, held=excluded.held, updated=excluded.updated`,
		x.Provider, x.TxnID, x.ParentID, x.Kind, x.Status, x.Customer, x.Gross, x.Fee, x.Currency, x.PayerEmail, x.PayerName, x.Held, ts(x.FirstSeen), ts(x.Updated))
	return err
}

func (t *sqlTx) Children(provider, parentID string) ([]store.Txn, error) {
	rows, err := t.tx.QueryContext(t.ctx, txnQuery+` WHERE provider = ? AND parent_id = ? ORDER BY first_seen, txn_id`, provider, parentID)
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
	res, err := t.tx.ExecContext(t.ctx, `INSERT INTO ledger(provider, txn_id, status, customer, amount, currency, parent_id, inbox_id, at)
		VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(provider, txn_id, status) DO NOTHING`,
		e.Provider, e.TxnID, e.Status, e.Customer, e.Amount, e.Currency, e.ParentID, e.InboxID, ts(e.At))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t *sqlTx) HasEntry(provider, txnID, status string) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(t.ctx, `SELECT COUNT(*) FROM ledger WHERE provider = ? AND txn_id = ? AND status = ?`, provider, txnID, status).Scan(&n)
	return n > 0, err
}

func (t *sqlTx) AddLog(l store.LogLine) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO payment_log(inbox_id, provider, txn_id, kind, status, verdict, action, detail, at) VALUES(?,?,?,?,?,?,?,?,?)`,
		l.InboxID, l.Provider, l.TxnID, l.Kind, l.Status, l.Verdict, l.Action, l.Detail, ts(l.At))
	return err
}

func (t *sqlTx) SetInboxState(id int64, state, detail string, attempts int) error {
	_, err := t.tx.ExecContext(t.ctx, `UPDATE inbox SET state = ?, detail = ?, attempts = ? WHERE id = ?`, state, detail, attempts, id)
	return err
}
