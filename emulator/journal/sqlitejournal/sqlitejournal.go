// Package sqlitejournal is the emulator's journal in one SQLite file
// (modernc.org/sqlite, no cgo). It is apart from package journal so that
// what only needs the interface (the emulator library, its Go client) does
// not link SQLite.
package sqlitejournal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// ErrInUse is returned when another process has the journal open.
var ErrInUse = errors.New("journal is in use by another process")

// schemaVersion is stored in SQLite's user_version; a newer file is refused.
const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS records (
	kind  TEXT NOT NULL,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (kind, key)
);`

// The SQLite journal is a journal.Journal.
var _ journal.Journal = (*SQLite)(nil)

// SQLite is a Journal in one SQLite file, in WAL mode. Commits are not
// fsync'd one by one (synchronous=NORMAL): a killed process loses nothing,
// only a power cut can take the last commits. One process writes it (an
// advisory lock on PATH.lock); others may read it while it runs, so
// sqlite3's .backup and Backup work on a live journal.
type SQLite struct {
	db   *sql.DB
	path string
	lock *os.File
	// Prepared once: parsing the SQL of every write cost more than the
	// write itself.
	upsert, remove *sql.Stmt
}

// Open opens (or creates) the journal at path.
func Open(path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("journal: empty path")
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(2000)", "wal_autocheckpoint(8192)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", fileURI(path, q))
	if err != nil {
		_ = unlockFile(lock)
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	// One connection serialises the writers.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	j := &SQLite{db: db, path: path, lock: lock}
	if err := j.init(); err != nil {
		db.Close()
		_ = unlockFile(lock)
		return nil, err
	}
	return j, nil
}

func (j *SQLite) init() error {
	var version int
	if err := j.db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		return j.wrapOpen(err)
	}
	if version > schemaVersion {
		return fmt.Errorf("journal %s: written by a newer ipnlab (schema %d, this one knows %d)", j.path, version, schemaVersion)
	}
	// The first write takes the exclusive lock; do it now so a second
	// process fails at start, not at its first message.
	if _, err := j.db.Exec(schema); err != nil {
		return j.wrapOpen(err)
	}
	if _, err := j.db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return j.wrapOpen(err)
	}
	var err error
	if j.upsert, err = j.db.Prepare(`INSERT INTO records(kind, key, value) VALUES(?, ?, ?)
		ON CONFLICT(kind, key) DO UPDATE SET value = excluded.value`); err != nil {
		return j.wrapOpen(err)
	}
	if j.remove, err = j.db.Prepare(`DELETE FROM records WHERE kind = ? AND key = ?`); err != nil {
		return j.wrapOpen(err)
	}
	return nil
}

func (j *SQLite) wrapOpen(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") {
		return fmt.Errorf("journal %s: %w", j.path, ErrInUse)
	}
	if strings.Contains(msg, "file is not a database") {
		return fmt.Errorf("journal %s: not an ipnlab journal (not a SQLite file)", j.path)
	}
	return fmt.Errorf("journal %s: %w", j.path, err)
}

// fileURI is the SQLite URI of path: the path escaped, so that '?' or '#'
// in a file name stays in the name instead of starting a query.
func fileURI(path string, q url.Values) string {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// Backup copies the journal at path, live or not, to out (which must not
// exist) as one consistent SQLite file, with SQLite's VACUUM INTO: what a
// restore starts from (ipnlab serve --store sqlite:OUT).
func Backup(path, out string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("backup to %s: the file exists (a backup never overwrites)", out)
	}
	q := url.Values{"mode": {"ro"}}
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", fileURI(path, q))
	if err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'records'`).Scan(&tables); err != nil || tables != 1 {
		return fmt.Errorf("backup %s: not an ipnlab journal", path)
	}
	if _, err := db.Exec(`VACUUM INTO ?`, out); err != nil {
		return fmt.Errorf("backup %s to %s: %w", path, out, err)
	}
	return nil
}

// Write implements Journal.
func (j *SQLite) Write(entries ...journal.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx := context.Background()
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal write: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	upsert, remove := tx.StmtContext(ctx, j.upsert), tx.StmtContext(ctx, j.remove)
	for _, e := range entries {
		if e.Delete {
			_, err = remove.ExecContext(ctx, e.Kind, e.Key)
		} else {
			v := e.Value
			if v == nil {
				v = []byte{}
			}
			_, err = upsert.ExecContext(ctx, e.Kind, e.Key, v)
		}
		if err != nil {
			return fmt.Errorf("journal write %s/%s: %w", e.Kind, e.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal commit: %w", err)
	}
	return nil
}

// Purge implements journal.Purger.
func (j *SQLite) Purge(kindPrefix string) error {
	if _, err := j.db.Exec(`DELETE FROM records WHERE substr(kind, 1, ?) = ?`, len(kindPrefix), kindPrefix); err != nil {
		return fmt.Errorf("journal purge %s: %w", kindPrefix, err)
	}
	return nil
}

// Scan implements Journal. An upsert keeps a record's rowid, so rowid
// order is the order of first writes.
func (j *SQLite) Scan(kind string, fn func(key string, value []byte) error) error {
	rows, err := j.db.Query(`SELECT key, value FROM records WHERE kind = ? ORDER BY rowid`, kind)
	if err != nil {
		return fmt.Errorf("journal scan %s: %w", kind, err)
	}
	defer rows.Close()
	return journal.ScanRows(kind, rows, fn)
}

// Close implements Journal: it checkpoints the WAL into the main file, so
// a copy of the one file is a complete backup.
func (j *SQLite) Close() error {
	_, cerr := j.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	_ = j.upsert.Close() // closing the database would close them too
	_ = j.remove.Close()
	err := j.db.Close()
	lerr := unlockFile(j.lock)
	switch {
	case err != nil:
		return fmt.Errorf("journal %s: close: %w", j.path, err)
	case cerr != nil:
		return fmt.Errorf("journal %s: checkpoint: %w", j.path, cerr)
	case lerr != nil:
		return fmt.Errorf("journal %s: unlock: %w", j.path, lerr)
	}
	return nil
}
