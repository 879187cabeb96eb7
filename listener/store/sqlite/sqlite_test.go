package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
)

func item(n int) store.InboxItem {
	return store.InboxItem{Provider: "paypal", ReceivedAt: time.Unix(int64(n), 0), RemoteAddr: "127.0.0.1:1",
		Headers: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte(fmt.Sprintf("txn_id=T%d", n))}
}

// concurrently runs f(i) for i in [0, n) at once and waits.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

var _ = Describe("The SQLite store's group commit", func() {
	var (
		path string
		db   *sqlite.DB
		ctx  = context.Background()
	)
	BeforeEach(func() {
		path = filepath.Join(GinkgoT().TempDir(), "l.db")
		var err error
		db, err = sqlite.Open(path)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = db.Close() })
	})

	It("stores every concurrent write once, each caller getting its own id back", func() {
		ids := make([]int64, 300)
		concurrently(len(ids), func(i int) {
			id, err := db.AddInbox(ctx, item(i))
			Expect(err).NotTo(HaveOccurred())
			ids[i] = id
		})
		seen := map[int64]bool{}
		for i, id := range ids {
			Expect(seen[id]).To(BeFalse(), "id %d given twice", id)
			seen[id] = true
			it, err := db.Inbox(ctx, id)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(it.Body)).To(Equal(fmt.Sprintf("txn_id=T%d", i)), "each caller's id names its own write")
		}
		Expect(db.Counts(ctx)).To(Equal(map[string]int{store.InboxPending: 300}))
	})

	It("rolls back a failing transaction alone: the others committed with it land", func() {
		boom := errors.New("rule refused")
		concurrently(200, func(i int) {
			err := db.Tx(ctx, func(tx store.Tx) error {
				if err := tx.AddLog(store.LogLine{InboxID: int64(i), Provider: "paypal", TxnID: fmt.Sprintf("T%d", i), Action: "credited", At: time.Unix(0, 0)}); err != nil {
					return err
				}
				if _, err := tx.AddEntry(store.Entry{Provider: "paypal", TxnID: fmt.Sprintf("T%d", i), Status: "Completed", Customer: "C1", Amount: 100, Currency: "USD"}); err != nil {
					return err
				}
				if i%2 == 1 {
					return boom
				}
				return nil
			})
			if i%2 == 1 {
				Expect(err).To(MatchError(boom))
			} else {
				Expect(err).NotTo(HaveOccurred())
			}
		})
		lines, err := db.Log(ctx, "", 1000)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(100))
		for _, l := range lines {
			Expect(l.InboxID%2).To(BeZero(), "a failed transaction left its log line")
		}
		Expect(db.Balances(ctx, "C1")).To(Equal(map[string]int64{"USD": 100 * 100}))
	})

	It("keeps a failed statement's transaction from affecting its neighbours (a constraint error inside)", func() {
		concurrently(50, func(i int) {
			_ = db.Tx(ctx, func(tx store.Tx) error {
				applied, err := tx.AddEntry(store.Entry{Provider: "paypal", TxnID: "SAME", Status: "Completed", Customer: "C1", Amount: 500, Currency: "USD"})
				if err != nil {
					return err
				}
				if !applied {
					return nil // a duplicate: the unique key held
				}
				return tx.AddLog(store.LogLine{Provider: "paypal", TxnID: "SAME", Action: "credited", At: time.Unix(0, 0)})
			})
		})
		Expect(db.Balances(ctx, "C1")).To(Equal(map[string]int64{"USD": 500}), "credited once")
		Expect(db.Log(ctx, "SAME", 100)).To(HaveLen(1))
	})

	It("lets queued writes land on Close, refuses writes after it, and loses nothing acknowledged", func() {
		var mu sync.Mutex
		var acked []int64
		concurrently(100, func(i int) {
			if i == 50 {
				Expect(db.Close()).To(Succeed())
				return
			}
			id, err := db.AddInbox(ctx, item(i))
			if err != nil {
				Expect(err).To(MatchError(sqlite.ErrClosed))
				return
			}
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		})
		_, err := db.AddInbox(ctx, item(1000))
		Expect(err).To(MatchError(sqlite.ErrClosed))
		Expect(db.Close()).To(Succeed(), "closing twice is harmless")

		db, err = sqlite.Open(path)
		Expect(err).NotTo(HaveOccurred())
		for _, id := range acked {
			_, err := db.Inbox(ctx, id)
			Expect(err).NotTo(HaveOccurred(), "acknowledged write %d lost", id)
		}
	})

	It("works in memory, where reads go through the writer's connection", func() {
		mem, err := sqlite.Open(":memory:")
		Expect(err).NotTo(HaveOccurred())
		defer mem.Close()
		id, err := mem.AddInbox(ctx, item(1))
		Expect(err).NotTo(HaveOccurred())
		Expect(mem.Inbox(ctx, id)).To(HaveField("Provider", "paypal"))
	})

	It("gives up waiting for the queue when the caller's context ends", func() {
		done, cancel := context.WithCancel(ctx)
		cancel()
		// Either it was queued before noticing (and landed) or it says
		// why it was not: never a silent loss.
		id, err := db.AddInbox(done, item(1))
		if err != nil {
			Expect(err).To(MatchError(context.Canceled))
		} else {
			Expect(db.Inbox(ctx, id)).To(HaveField("Provider", "paypal"))
		}
	})
})
