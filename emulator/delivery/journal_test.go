package delivery_test

import (
	"errors"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

var _ = Describe("Engine with a journal", func() {
	It("holds no lock while a commit is on its way to disk, and sends an attempt only once it is journaled as running", func() {
		clk := clock.NewManual(t0)
		lst := &listener{script: []int{200}}
		srv := httptest.NewServer(lst)
		disk := testenv.NewSlowDisk()
		eng, err := delivery.NewEngine(delivery.Config{Clock: clk, Journal: disk})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			disk.Drain() // whatever is still to commit at Close
			eng.Close()
			close(disk.Entered)
			srv.Close()
		})
		submitted := make(chan error, 1)
		go func() {
			_, err := eng.Submit(delivery.Submission{
				ID: "M1", Provider: "test", URL: srv.URL, Body: []byte("a=1"),
				Schedule: doubling(),
			})
			submitted <- err
		}()

		// The message's commit is on its way: Submit waits for it, and
		// History is readable meanwhile.
		Eventually(disk.Entered).Should(Receive())
		Expect(eng.Responsive(time.Second)).To(BeTrue(), "the engine's lock is free during a commit")
		Expect(eng.List(nil)).To(BeEmpty(), "not listed before it is on disk")
		Consistently(submitted).ShouldNot(Receive())
		disk.Release <- struct{}{}
		Eventually(submitted).Should(Receive(BeNil()))

		// Its first attempt is journaled as running before the request
		// leaves: nothing reaches the listener until that commit is done.
		var running []journal.Entry
		Eventually(disk.Entered).Should(Receive(&running))
		Expect(running).To(ContainElement(HaveField("Kind", delivery.KindMessage)))
		Expect(eng.Responsive(time.Second)).To(BeTrue())
		Consistently(lst.count).Should(BeZero())
		disk.Release <- struct{}{}
		Eventually(lst.count).Should(Equal(1))

		// The outcome is journaled after, and nobody waits for it.
		var outcome []journal.Entry
		Eventually(disk.Entered).Should(Receive(&outcome))
		Expect(outcome).To(ContainElement(HaveField("Kind", delivery.KindAttempt)))
		m, _ := eng.Get("M1")
		Expect(m.Status).To(Equal(delivery.Sent))
		disk.Release <- struct{}{}
	})

	It("never sends an attempt the store did not record as running (a process that lost its store)", func() {
		clk := clock.NewManual(t0)
		lst := &listener{script: []int{200}}
		srv := httptest.NewServer(lst)
		DeferCleanup(srv.Close)
		// The store takes the message, then refuses every write: its lock
		// went with its connection, and another process writes it now.
		disk := &lostStore{}
		eng, err := delivery.NewEngine(delivery.Config{Clock: clk, Journal: disk})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(eng.Close)
		_, err = eng.Submit(delivery.Submission{ID: "M1", Provider: "test", URL: srv.URL, Body: []byte("a=1"), Schedule: doubling()})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []delivery.Attempt { m, _ := eng.Get("M1"); return m.Attempts }).Should(HaveLen(1))
		m, _ := eng.Get("M1")
		Expect(m.Attempts[0].Error).To(HavePrefix("not sent: the store did not record this attempt"))
		Expect(m.Attempts[0].Error).To(ContainSubstring("the lock is lost"))
		Expect(lst.count()).To(BeZero(), "nothing reached the listener")
		Expect(clk.Advance(time.Hour)).To(Succeed())
		Eventually(func() int { m, _ := eng.Get("M1"); return len(m.Attempts) }).Should(BeNumerically(">", 1))
		Expect(lst.count()).To(BeZero(), "nor did any retry")
	})

	It("refuses a second message with the id of one still waiting for its commit", func() {
		clk := clock.NewManual(t0)
		disk := testenv.NewSlowDisk()
		eng, err := delivery.NewEngine(delivery.Config{Clock: clk, Journal: disk})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			disk.Drain()
			eng.Close()
			close(disk.Entered)
		})
		s := delivery.Submission{ID: "M1", Provider: "test", URL: "http://127.0.0.1:9/", Schedule: doubling(), Hold: true}
		first := make(chan error, 1)
		go func() { _, err := eng.Submit(s); first <- err }()
		Eventually(disk.Entered).Should(Receive())
		_, err = eng.Submit(s)
		Expect(err).To(MatchError(delivery.ErrDuplicate))
		disk.Release <- struct{}{}
		Eventually(first).Should(Receive(BeNil()))
	})
})

// lostStore takes the first write (a message's), then refuses all.
type lostStore struct {
	mu     sync.Mutex
	writes int
}

func (d *lostStore) Write(...journal.Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writes++; d.writes > 1 {
		return errors.New("the lock is lost")
	}
	return nil
}

func (d *lostStore) Scan(string, func(string, []byte) error) error { return nil }
func (d *lostStore) Close() error                                  { return nil }
