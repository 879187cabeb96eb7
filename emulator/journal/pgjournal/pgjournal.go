// Package pgjournal is the emulator's journal in PostgreSQL (pgx): the
// same records as the SQLite journal, in a server a team already backs up
// (pg_dump) and watches. One emulator writes a journal at a time: it holds
// a session advisory lock for as long as it runs, and a second one is
// refused at start, as with a SQLite file. The schema is versioned;
// migrations run at start under a transaction-scoped advisory lock, so
// processes starting together migrate once.
package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// ErrInUse is returned when another emulator has the journal open.
var ErrInUse = errors.New("journal is in use by another emulator")

// The journal is a journal.Journal.
var _ journal.Journal = (*Postgres)(nil)

// Advisory lock keys ("ipnl" and two tags): one for migrating, one held
// by the writing emulator.
const (
	migrateLock int64 = 0x69706e6c_00000001
	writerLock  int64 = 0x69706e6c_00000002
)

// migrations are applied in order, each once; a database migrated by a
// newer ipnlab (a version this one does not know) is refused.
var migrations = []string{
	1: `CREATE TABLE ipnlab_records (
		seq   BIGSERIAL NOT NULL,
		kind  TEXT  NOT NULL,
		key   TEXT  NOT NULL,
		value BYTEA NOT NULL,
		PRIMARY KEY (kind, key)
	);
	CREATE INDEX ipnlab_records_kind_seq ON ipnlab_records (kind, seq);`,
}

// Postgres is a Journal in a PostgreSQL database (its search_path's
// schema: add search_path=NAME to the URL to keep several apart).
type Postgres struct {
	pool   *pgxpool.Pool
	holder *pgxpool.Conn // holds writerLock while the journal is open
	where  string        // the URL without its password, for messages
}

// IsURL reports whether spec names a PostgreSQL database.
func IsURL(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// Open connects to the database at dsn, migrates it and takes the
// writer's lock.
func Open(ctx context.Context, dsn string) (*Postgres, error) {
	where := Redacted(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", where, err)
	}
	cfg.MaxConns = 4
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", where, err)
	}
	j := &Postgres{pool: pool, where: where}
	if err := j.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := j.lock(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return j, nil
}

func (j *Postgres) migrate(ctx context.Context) error {
	tx, err := j.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.where, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("journal %s: migrate: %w", j.where, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS ipnlab_schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("journal %s: migrate: %w", j.where, err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM ipnlab_schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("journal %s: migrate: %w", j.where, err)
	}
	latest := len(migrations) - 1
	if current > latest {
		return fmt.Errorf("journal %s: migrated by a newer ipnlab (schema %d, this one knows %d)", j.where, current, latest)
	}
	for v := current + 1; v <= latest; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("journal %s: migration %d: %w", j.where, v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ipnlab_schema_migrations(version) VALUES($1)`, v); err != nil {
			return fmt.Errorf("journal %s: migration %d: %w", j.where, v, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("journal %s: migrate: %w", j.where, err)
	}
	return nil
}

// lock takes the writer's lock on a connection kept for that: a session
// lock lasts as long as its connection, and goes with it if the process
// dies.
func (j *Postgres) lock(ctx context.Context) error {
	conn, err := j.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.where, err)
	}
	var got bool
	// The lock is per database: a schema of its own (search_path) gets a
	// key of its own.
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema())::int)`, int32(writerLock>>32)).Scan(&got); err != nil {
		conn.Release()
		return fmt.Errorf("journal %s: %w", j.where, err)
	}
	if !got {
		conn.Release()
		return fmt.Errorf("journal %s: %w", j.where, ErrInUse)
	}
	j.holder = conn
	return nil
}

// Write implements journal.Journal: one transaction, its statements sent
// in one round trip.
func (j *Postgres) Write(entries ...journal.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx := context.Background()
	b := &pgx.Batch{}
	for _, e := range entries {
		if e.Delete {
			b.Queue(`DELETE FROM ipnlab_records WHERE kind = $1 AND key = $2`, e.Kind, e.Key)
			continue
		}
		v := e.Value
		if v == nil {
			v = []byte{}
		}
		b.Queue(`INSERT INTO ipnlab_records(kind, key, value) VALUES($1, $2, $3)
			ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`, e.Kind, e.Key, v)
	}
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		res := tx.SendBatch(ctx, b)
		for _, e := range entries {
			if _, err := res.Exec(); err != nil {
				res.Close()
				return fmt.Errorf("journal write %s/%s: %w", e.Kind, e.Key, err)
			}
		}
		return res.Close()
	})
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.where, err)
	}
	return nil
}

// Purge implements journal.Purger.
func (j *Postgres) Purge(kindPrefix string) error {
	if _, err := j.pool.Exec(context.Background(), `DELETE FROM ipnlab_records WHERE left(kind, $1) = $2`, len(kindPrefix), kindPrefix); err != nil {
		return fmt.Errorf("journal purge %s: %w", kindPrefix, err)
	}
	return nil
}

// Scan implements journal.Journal: an upsert keeps a record's seq, so seq
// order is the order of first writes.
func (j *Postgres) Scan(kind string, fn func(key string, value []byte) error) error {
	ctx := context.Background()
	rows, err := j.pool.Query(ctx, `SELECT key, value FROM ipnlab_records WHERE kind = $1 ORDER BY seq`, kind)
	if err != nil {
		return fmt.Errorf("journal scan %s: %w", kind, err)
	}
	defer rows.Close()
	return journal.ScanRows(kind, rows, fn)
}

// Close implements journal.Journal: it lets go of the writer's lock and
// the connections.
func (j *Postgres) Close() error {
	if j.holder != nil {
		_, _ = j.holder.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
		j.holder.Release()
		j.holder = nil
	}
	j.pool.Close()
	return nil
}

// Redacted is dsn without its password, for messages and logs.
func Redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(a PostgreSQL URL that does not parse)"
	}
	return u.Redacted()
}
