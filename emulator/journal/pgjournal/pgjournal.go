// Package pgjournal is the emulator's journal in PostgreSQL (pgx): the
// same records as the SQLite journal, in a server a team already backs up
// (pg_dump) and watches. One emulator writes a journal at a time, its
// leader: it holds a session advisory lock, and every write goes over the
// connection that holds it, so a process that lost its lock (its
// connection died) cannot write any more. Open refuses a second writer, as
// a SQLite file does; Connect and TryLead let standby replicas wait for
// the lock (package replica). The schema is versioned; migrations run at
// start under a transaction-scoped advisory lock, so processes starting
// together migrate once.
package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/internal/redact"
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
	2: `CREATE TABLE ipnlab_leader (
		id    INTEGER PRIMARY KEY CHECK (id = 1),
		url   TEXT NOT NULL,
		since TIMESTAMPTZ NOT NULL DEFAULT now()
	);`,
	// The leader's epoch (a fencing token every write checks) and its
	// lease, which it renews; a standby ends a leader whose lease lapsed.
	3: `ALTER TABLE ipnlab_leader
		ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,
		ADD COLUMN holder_pid INTEGER,
		ADD COLUMN lease_until TIMESTAMPTZ;
	INSERT INTO ipnlab_leader(id, url) VALUES (1, '') ON CONFLICT (id) DO NOTHING;`,
}

// DefaultLease is how long a leader's lease lasts from its last renewal
// (each CheckLead): a standby may end a leader that has not renewed it
// for that long (a frozen process keeps its connection, and so its lock).
const DefaultLease = 5 * time.Second

// ErrNotLeader is returned for a write by a process that does not hold the
// writer's lock (any more).
var ErrNotLeader = errors.New("this process does not hold the journal's lock")

// Postgres is a Journal in a PostgreSQL database (its search_path's
// schema: add search_path=NAME to the URL to keep several apart).
type Postgres struct {
	pool  *pgxpool.Pool
	where string // the URL without its password, for messages

	mu     sync.Mutex    // one user of holder at a time
	holder *pgxpool.Conn // holds writerLock; nil when not leading
	epoch  int64         // the leadership this process holds: every write checks it
	lease  time.Duration // DefaultLease unless SetLease
}

// SetLease sets how long this process's lease lasts when it leads (and
// renews it): it must renew more often than that.
func (j *Postgres) SetLease(d time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lease = d
}

// IsURL reports whether spec names a PostgreSQL database.
func IsURL(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// Open connects to the database at dsn, migrates it and takes the
// writer's lock; ErrInUse if another process has it. The writer must
// renew its lease (Watch, or CheckLead) more often than its lease lasts
// (DefaultLease): a process that finds the lease lapsed ends the holder's
// session, as it would a frozen leader's.
func Open(ctx context.Context, dsn string) (*Postgres, error) {
	j, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	led, err := j.TryLead(ctx)
	if err == nil && !led {
		err = fmt.Errorf("journal %s: %w", j.where, ErrInUse)
	}
	if err != nil {
		j.pool.Close()
		return nil, err
	}
	return j, nil
}

// Connect connects to the database at dsn and migrates it, without the
// writer's lock: reads only, until TryLead.
func Connect(ctx context.Context, dsn string) (*Postgres, error) {
	where := redact.DSN(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, redact.Error(fmt.Errorf("journal %s: %w", where, err))
	}
	cfg.MaxConns = 4
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", where, err)
	}
	j := &Postgres{pool: pool, where: where, lease: DefaultLease}
	if err := j.migrate(ctx); err != nil {
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

// TryLead takes the writer's lock if no other process holds it, on a
// connection kept for that: a session lock lasts as long as its
// connection, and goes with it if the process dies.
func (j *Postgres) TryLead(ctx context.Context) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.holder != nil {
		return true, nil
	}
	conn, err := j.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("journal %s: %w", j.where, err)
	}
	var got bool
	// The lock is per database: a schema of its own (search_path) gets a
	// key of its own.
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema())::int)`, int32(writerLock>>32)).Scan(&got); err != nil {
		conn.Release()
		return false, fmt.Errorf("journal %s: %w", j.where, err)
	}
	if !got {
		conn.Release()
		return false, j.endLapsedLeader(ctx)
	}
	// A new epoch: whatever a deposed leader still tries to write is
	// refused, its token being older.
	err = conn.QueryRow(ctx, `UPDATE ipnlab_leader SET epoch = epoch + 1, holder_pid = pg_backend_pid(),
		lease_until = now() + make_interval(secs => $1) WHERE id = 1 RETURNING epoch`, j.lease.Seconds()).Scan(&j.epoch)
	if err != nil {
		_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		conn.Release()
		return false, fmt.Errorf("journal %s: new epoch: %w", j.where, err)
	}
	j.holder = conn
	return true, nil
}

// endLapsedLeader ends the session of a leader whose lease lapsed: a
// frozen process (SIGSTOP) keeps its connection and its lock, and would
// keep every standby waiting. Its lock goes with its session; the next
// TryLead takes it, with a new epoch, and the old leader, if it wakes,
// finds its connection gone and its epoch past.
func (j *Postgres) endLapsedLeader(ctx context.Context) error {
	_, err := j.pool.Exec(ctx, `SELECT pg_terminate_backend(holder_pid) FROM ipnlab_leader
		WHERE id = 1 AND holder_pid IS NOT NULL AND lease_until < now() AND holder_pid <> pg_backend_pid()`)
	if err != nil {
		return fmt.Errorf("journal %s: ending a leader whose lease lapsed: %w", j.where, err)
	}
	return nil
}

// Resign lets go of the writer's lock, keeping the connection pool: a
// process that could not take up the lead (or lost it) stands by again.
func (j *Postgres) Resign() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.holder == nil {
		return
	}
	_, _ = j.holder.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
	j.holder.Release()
	j.holder = nil
}

// Leading reports whether this process holds the writer's lock.
func (j *Postgres) Leading() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.holder != nil
}

// CheckLead asks the server, over the lock's connection, whether it still
// holds the lock; when the connection is gone, so is the lock, and the
// process must stop acting as the writer (ErrNotLeader).
func (j *Postgres) CheckLead(ctx context.Context) error {
	return j.withHolder(func(c *pgxpool.Conn) error {
		var held, current bool
		err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
			AND classid = $1::oid AND objid = hashtext(current_schema())::oid AND objsubid = 2 AND granted)`, int32(writerLock>>32)).Scan(&held)
		if err == nil && held {
			// Renew the lease, while the epoch is still this process's.
			err = c.QueryRow(ctx, `WITH renewed AS (UPDATE ipnlab_leader SET lease_until = now() + make_interval(secs => $1)
				WHERE id = 1 AND epoch = $2 RETURNING 1) SELECT EXISTS (SELECT 1 FROM renewed)`, j.lease.Seconds(), j.epoch).Scan(&current)
		}
		switch {
		case err != nil:
			return fmt.Errorf("journal %s: the lock's connection: %v: %w", j.where, err, ErrNotLeader)
		case !held, !current:
			return fmt.Errorf("journal %s: %w", j.where, ErrNotLeader)
		}
		return nil
	})
}

// LockWatch checks that a process still holds the writer's lock.
type LockWatch struct {
	lost chan error
	err  atomic.Pointer[error]
}

// Watch checks every interval, over the lock's connection, that this
// process still holds the writer's lock (CheckLead), until ctx ends. The
// first time it does not (the connection died with a database restart
// or a failover, and another process may write now), Lost hears why,
// once, and Err reports it from then on: a writer that lost its lock must
// stop at once, not go on as a zombie.
func (j *Postgres) Watch(ctx context.Context, interval time.Duration) *LockWatch {
	w := &LockWatch{lost: make(chan error, 1)}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			check, cancel := context.WithTimeout(ctx, interval)
			err := j.CheckLead(check)
			cancel()
			if err != nil && ctx.Err() == nil {
				w.err.Store(&err)
				w.lost <- err
				return
			}
		}
	}()
	return w
}

// Lost hears the loss of the lock, once.
func (w *LockWatch) Lost() <-chan error { return w.lost }

// Err is why the lock was lost, nil while it is held.
func (w *LockWatch) Err() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Announce records url as the leader's, for standby replicas to forward
// to.
func (j *Postgres) Announce(ctx context.Context, url string) error {
	return j.withHolder(func(c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO ipnlab_leader(id, url, since) VALUES (1, $1, now())
			ON CONFLICT (id) DO UPDATE SET url = excluded.url, since = excluded.since`, url)
		return err
	})
}

// Leader is the URL the current leader announced ("" if none has), and
// whether a process holds the writer's lock now (an announcement outlives
// a dead leader until the next one replaces it).
func (j *Postgres) Leader(ctx context.Context) (url string, held bool, err error) {
	err = j.pool.QueryRow(ctx, `SELECT COALESCE((SELECT url FROM ipnlab_leader WHERE id = 1), ''),
		EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid
			AND objid = hashtext(current_schema())::oid AND objsubid = 2 AND granted)`, int32(writerLock>>32)).Scan(&url, &held)
	if err != nil {
		return "", false, fmt.Errorf("journal %s: %w", j.where, err)
	}
	return url, held, nil
}

// withHolder runs f on the lock's connection, alone; ErrNotLeader without
// it. A connection that failed is dropped: the lock went with it.
func (j *Postgres) withHolder(f func(*pgxpool.Conn) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.holder == nil {
		return fmt.Errorf("journal %s: %w", j.where, ErrNotLeader)
	}
	err := f(j.holder)
	if err != nil && j.holder.Conn().IsClosed() {
		j.holder.Release()
		j.holder = nil
		if !errors.Is(err, ErrNotLeader) {
			err = fmt.Errorf("%w: the lock's connection: %w", ErrNotLeader, err)
		}
	}
	return err
}

// Write implements journal.Journal: one transaction, its statements sent
// in one round trip.
func (j *Postgres) Write(entries ...journal.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx := context.Background()
	b := &pgx.Batch{}
	// The fencing token first: the transaction goes on only while this
	// process's epoch is the leader's (FOR SHARE: a takeover waits for
	// it, or it sees the takeover).
	b.Queue(`SELECT epoch FROM ipnlab_leader WHERE id = 1 FOR SHARE`)
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
	err := j.withHolder(func(c *pgxpool.Conn) error {
		epoch := j.epoch
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			res := tx.SendBatch(ctx, b)
			var current int64
			if err := res.QueryRow().Scan(&current); err != nil {
				res.Close()
				return fmt.Errorf("journal epoch: %w", err)
			}
			if current != epoch {
				res.Close()
				return fmt.Errorf("epoch %d is past (the leader's is %d): %w", epoch, current, ErrNotLeader)
			}
			for _, e := range entries {
				if _, err := res.Exec(); err != nil {
					res.Close()
					return fmt.Errorf("journal write %s/%s: %w", e.Kind, e.Key, err)
				}
			}
			return res.Close()
		})
	})
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.where, err)
	}
	return nil
}

// Purge implements journal.Purger.
func (j *Postgres) Purge(kindPrefix string) error {
	ctx := context.Background()
	if err := j.withHolder(func(c *pgxpool.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if err := j.fenceLocked(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM ipnlab_records WHERE left(kind, $1) = $2`, len(kindPrefix), kindPrefix)
			return err
		})
	}); err != nil {
		return fmt.Errorf("journal purge %s: %w", kindPrefix, err)
	}
	return nil
}

// fenceLocked lets a transaction go on only while this process's epoch
// is the leader's (with j.mu held).
func (j *Postgres) fenceLocked(ctx context.Context, tx pgx.Tx) error {
	var current int64
	if err := tx.QueryRow(ctx, `SELECT epoch FROM ipnlab_leader WHERE id = 1 FOR SHARE`).Scan(&current); err != nil {
		return fmt.Errorf("journal epoch: %w", err)
	}
	if current != j.epoch {
		return fmt.Errorf("epoch %d is past (the leader's is %d): %w", j.epoch, current, ErrNotLeader)
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
	j.mu.Lock()
	if j.holder != nil {
		_, _ = j.holder.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
		j.holder.Release()
		j.holder = nil
	}
	j.mu.Unlock()
	j.pool.Close()
	return nil
}
