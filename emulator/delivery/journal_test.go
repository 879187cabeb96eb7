package delivery_test

import (
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
)

// slowDisk is a journal whose commits wait until released, one by one:
// a disk that takes its time.
type slowDisk struct {
	mu      sync.Mutex
	kinds   [][]string // per commit, the kinds it wrote
	entered chan []journal.Entry
	release chan struct{}
}

func (d *slowDisk) Write(entries ...journal.Entry) error {
	d.entered <- entries
	<-d.release
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
	}
	d.mu.Lock()
	d.kinds = append(d.kinds, kinds)
	d.mu.Unlock()
	return nil
}

func (d *slowDisk) Scan(string, func(string, []byte) error) error { return nil }
func (d *slowDisk) Close() error                                  { return nil }

var _ = Describe("Engine with a journal", func() {
	It("holds no lock while a commit is on its way to disk, and sends an attempt only once it is journaled as running", func() {
		clk := clock.NewManual(t0)
		lst := &listener{script: []int{200}}
		srv := httptest.NewServer(lst)
		disk := &slowDisk{entered: make(chan []journal.Entry), release: make(chan struct{})}
		eng, err := delivery.NewEngine(delivery.Config{Clock: clk, Journal: disk})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			go func() { // whatever is still to commit at Close
				for range disk.entered {
					disk.release <- struct{}{}
				}
			}()
			eng.Close()
			close(disk.entered)
			srv.Close()
		})
		submitted := make(chan error, 1)
		go func() {
			_, err := eng.Submit(delivery.Submission{
				ID: "M1", Provider: "test", URL: srv.URL, Body: []byte("a=1"),
				Schedule: delivery.PayPalSchedule(),
			})
			submitted <- err
		}()

		// The message's commit is on its way: Submit waits for it, and
		// History is readable meanwhile.
		Eventually(disk.entered).Should(Receive())
		Expect(eng.Responsive(time.Second)).To(BeTrue(), "the engine's lock is free during a commit")
		Expect(eng.List(nil)).To(BeEmpty(), "not listed before it is on disk")
		Consistently(submitted).ShouldNot(Receive())
		disk.release <- struct{}{}
		Eventually(submitted).Should(Receive(BeNil()))

		// Its first attempt is journaled as running before the request
		// leaves: nothing reaches the listener until that commit is done.
		var running []journal.Entry
		Eventually(disk.entered).Should(Receive(&running))
		Expect(running).To(ContainElement(HaveField("Kind", delivery.KindMessage)))
		Expect(eng.Responsive(time.Second)).To(BeTrue())
		Consistently(lst.count).Should(BeZero())
		disk.release <- struct{}{}
		Eventually(lst.count).Should(Equal(1))

		// The outcome is journaled after, and nobody waits for it.
		var outcome []journal.Entry
		Eventually(disk.entered).Should(Receive(&outcome))
		Expect(outcome).To(ContainElement(HaveField("Kind", delivery.KindAttempt)))
		m, _ := eng.Get("M1")
		Expect(m.Status).To(Equal(delivery.Sent))
		disk.release <- struct{}{}
	})

	It("refuses a second message with the id of one still waiting for its commit", func() {
		clk := clock.NewManual(t0)
		disk := &slowDisk{entered: make(chan []journal.Entry), release: make(chan struct{})}
		eng, err := delivery.NewEngine(delivery.Config{Clock: clk, Journal: disk})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			go func() {
				for range disk.entered {
					disk.release <- struct{}{}
				}
			}()
			eng.Close()
			close(disk.entered)
		})
		s := delivery.Submission{ID: "M1", Provider: "test", URL: "http://127.0.0.1:9/", Schedule: delivery.PayPalSchedule(), Hold: true}
		first := make(chan error, 1)
		go func() { _, err := eng.Submit(s); first <- err }()
		Eventually(disk.entered).Should(Receive())
		_, err = eng.Submit(s)
		Expect(err).To(MatchError(delivery.ErrDuplicate))
		disk.release <- struct{}{}
		Eventually(first).Should(Receive(BeNil()))
	})
})
