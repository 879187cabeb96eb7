package pgjournal_test

import (
	"context"
	"database/sql"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

// twoProcesses connects two processes' journals to a new schema.
func twoProcesses() (dsn string, a, b *pgjournal.Postgres) {
	dsn = testenv.PostgresSchema("pgj")
	for _, j := range []**pgjournal.Postgres{&a, &b} {
		var err error
		*j, err = pgjournal.Connect(context.Background(), dsn)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup((*j).Close)
	}
	return dsn, a, b
}

var _ = Describe("The PostgreSQL journal", func() {
	ctx := context.Background()

	It("keeps records in the order of their first write, upserts in place and deletes", func() {
		j, err := pgjournal.Open(ctx, testenv.PostgresSchema("pgj"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(j.Close)
		Expect(j.Write(journal.Entry{Kind: "k", Key: "b", Value: []byte("1")}, journal.Entry{Kind: "k", Key: "a", Value: []byte("2")},
			journal.Entry{Kind: "other", Key: "x", Value: nil})).To(Succeed())
		Expect(j.Write(journal.Entry{Kind: "k", Key: "b", Value: []byte("3")}, journal.Entry{Kind: "k", Key: "c", Value: []byte("4")},
			journal.Entry{Kind: "k", Key: "a", Delete: true})).To(Succeed())
		var got []string
		Expect(j.Scan("k", func(key string, value []byte) error {
			got = append(got, key+"="+string(value))
			return nil
		})).To(Succeed())
		Expect(got).To(Equal([]string{"b=3", "c=4"}))
		n := 0
		Expect(j.Scan("other", func(string, []byte) error { n++; return nil })).To(Succeed())
		Expect(n).To(Equal(1), "a nil value is kept as empty")
	})

	It("writes all of a batch or nothing", func() {
		j, err := pgjournal.Open(ctx, testenv.PostgresSchema("pgj"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(j.Close)
		bad := journal.Entry{Kind: "k", Key: "bad", Value: []byte("a\x00")}
		bad.Kind = "k\x00" // PostgreSQL text refuses NUL
		err = j.Write(journal.Entry{Kind: "k", Key: "ok", Value: []byte("1")}, bad)
		Expect(err).To(MatchError(ContainSubstring("journal write")))
		n := 0
		Expect(j.Scan("k", func(string, []byte) error { n++; return nil })).To(Succeed())
		Expect(n).To(BeZero())
	})

	It("refuses a second emulator on the same journal, not one on another schema, and lets go on Close", func() {
		dsn := testenv.PostgresSchema("pgj")
		j, err := pgjournal.Open(ctx, dsn)
		Expect(err).NotTo(HaveOccurred())
		_, err = pgjournal.Open(ctx, dsn)
		Expect(err).To(MatchError(pgjournal.ErrInUse))
		other, err := pgjournal.Open(ctx, testenv.PostgresSchema("pgj"))
		Expect(err).NotTo(HaveOccurred())
		Expect(other.Close()).To(Succeed())
		Expect(j.Close()).To(Succeed())
		again, err := pgjournal.Open(ctx, dsn)
		Expect(err).NotTo(HaveOccurred())
		Expect(again.Close()).To(Succeed())
	})

	It("migrates once when several start together, and refuses a schema a newer ipnlab migrated", func() {
		dsn := testenv.PostgresSchema("pgj")
		var wg sync.WaitGroup
		errs := make([]error, 6)
		opened := make([]*pgjournal.Postgres, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				opened[i], errs[i] = pgjournal.Open(ctx, dsn)
			}()
		}
		wg.Wait()
		winners := 0
		for i, err := range errs {
			if err == nil {
				winners++
				Expect(opened[i].Close()).To(Succeed())
			} else {
				Expect(err).To(MatchError(pgjournal.ErrInUse), "the others are refused, not broken by the migration")
			}
		}
		Expect(winners).To(Equal(1))

		db, err := sql.Open("pgx", dsn)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(db.Close)
		var versions int
		Expect(db.QueryRow(`SELECT count(*) FROM ipnlab_schema_migrations`).Scan(&versions)).To(Succeed())
		Expect(versions).To(Equal(3), "each migration once")
		_, err = db.Exec(`INSERT INTO ipnlab_schema_migrations(version) VALUES (99)`)
		Expect(err).NotTo(HaveOccurred())
		_, err = pgjournal.Open(ctx, dsn)
		Expect(err).To(MatchError(ContainSubstring("migrated by a newer ipnlab (schema 99, this one knows 3)")))
	})

	It("lets one of several processes lead; the others read, wait and take over when it goes; a leader whose lock died can no longer write", func() {
		dsn, a, b := twoProcesses()

		Expect(b.Write(journal.Entry{Kind: "k", Key: "x", Value: []byte("1")})).To(MatchError(pgjournal.ErrNotLeader))
		Expect(a.TryLead(ctx)).To(BeTrue())
		Expect(b.TryLead(ctx)).To(BeFalse())
		Expect(a.Announce(ctx, "http://127.0.0.1:1111")).To(Succeed())
		url, held, err := b.Leader(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(url).To(Equal("http://127.0.0.1:1111"))
		Expect(held).To(BeTrue())
		Expect(a.Write(journal.Entry{Kind: "k", Key: "x", Value: []byte("1")})).To(Succeed())
		Expect(a.CheckLead(ctx)).To(Succeed())

		// The leader's lock connection dies (its process was killed, or
		// the network cut it): the lock is free, and the old leader
		// cannot write any more, whatever it believes.
		db, err := sql.Open("pgx", dsn)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(db.Close)
		_, err = db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted
			AND objid = hashtext(current_schema())::oid`)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() bool { _, held, _ := b.Leader(ctx); return held }).Should(BeFalse())
		Expect(a.CheckLead(ctx)).To(MatchError(pgjournal.ErrNotLeader))
		Expect(a.Write(journal.Entry{Kind: "k", Key: "y", Value: []byte("2")})).To(MatchError(pgjournal.ErrNotLeader))
		Expect(b.TryLead(ctx)).To(BeTrue())
		Expect(b.Write(journal.Entry{Kind: "k", Key: "y", Value: []byte("3")})).To(Succeed())
		var got []string
		Expect(b.Scan("k", func(key string, v []byte) error { got = append(got, key+"="+string(v)); return nil })).To(Succeed())
		Expect(got).To(Equal([]string{"x=1", "y=3"}))
	})

	It("ends a leader that stopped renewing its lease (frozen: its connection and lock stay), and fences a deposed leader's writes by its epoch", func() {
		dsn, a, b := twoProcesses()
		a.SetLease(300 * time.Millisecond)
		Expect(a.TryLead(ctx)).To(BeTrue())
		Expect(a.Write(journal.Entry{Kind: "k", Key: "x", Value: []byte("1")})).To(Succeed())

		// While a renews, b waits.
		Consistently(func() bool {
			Expect(a.CheckLead(ctx)).To(Succeed())
			led, err := b.TryLead(ctx)
			Expect(err).NotTo(HaveOccurred())
			return led
		}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(BeFalse())

		// a freezes: no renewal. Once its lease lapses, b ends its session
		// and leads.
		Eventually(func() bool {
			led, err := b.TryLead(ctx)
			Expect(err).NotTo(HaveOccurred())
			return led
		}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(BeTrue())
		Expect(b.Write(journal.Entry{Kind: "k", Key: "y", Value: []byte("2")})).To(Succeed())
		// a wakes: nothing it writes lands.
		Expect(a.Write(journal.Entry{Kind: "k", Key: "x", Value: []byte("stale")})).To(MatchError(pgjournal.ErrNotLeader))
		Expect(a.CheckLead(ctx)).To(MatchError(pgjournal.ErrNotLeader))

		// A deposed leader whose connection survived is stopped by its
		// epoch alone.
		db, err := sql.Open("pgx", dsn)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(db.Close)
		_, err = db.Exec(`UPDATE ipnlab_leader SET epoch = epoch + 1`)
		Expect(err).NotTo(HaveOccurred())
		Expect(b.Write(journal.Entry{Kind: "k", Key: "y", Value: []byte("stale")})).To(MatchError(pgjournal.ErrNotLeader))
		Expect(b.CheckLead(ctx)).To(MatchError(pgjournal.ErrNotLeader))
		var got []string
		Expect(b.Scan("k", func(key string, v []byte) error { got = append(got, key+"="+string(v)); return nil })).To(Succeed())
		Expect(got).To(Equal([]string{"x=1", "y=2"}))
	})

	It("names the database without its password when it cannot connect", func() {
		_, err := pgjournal.Open(ctx, "postgres://someone:hunter2@127.0.0.1:1/db?connect_timeout=2")
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
		Expect(err.Error()).To(ContainSubstring("someone:[redacted]@127.0.0.1:1"))
	})
})
