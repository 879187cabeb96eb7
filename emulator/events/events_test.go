package events_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/events"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

var _ = Describe("Bus", func() {
	It("numbers events and returns those after a sequence number", func() {
		b := events.NewBus(10)
		for i := 0; i < 3; i++ {
			b.Publish(events.Attempt, t0, "paypal", "M1", map[string]int{"n": i})
		}
		evs, missed := b.Since(1, 0)
		Expect(missed).To(BeFalse())
		Expect(evs).To(HaveLen(2))
		Expect(evs[0].Seq).To(Equal(uint64(2)))
		Expect(string(evs[0].Data)).To(Equal(`{"n":1}`))
		Expect(b.Last()).To(Equal(uint64(3)))
	})

	It("keeps only the newest events and says when some were missed", func() {
		b := events.NewBus(3)
		for i := 0; i < 5; i++ {
			b.Publish(events.Attempt, t0, "", "", nil)
		}
		evs, missed := b.Since(0, 0)
		Expect(missed).To(BeTrue())
		Expect(evs).To(HaveLen(3))
		Expect(evs[0].Seq).To(Equal(uint64(3)))
		evs, missed = b.Since(3, 0)
		Expect(missed).To(BeFalse())
		Expect(evs).To(HaveLen(2))
		Expect(evs).To(HaveEach(HaveField("Seq", BeNumerically(">", 3))))
	})

	It("wakes a waiter when an event arrives, and honours the context", func() {
		b := events.NewBus(10)
		got := make(chan []events.Event)
		go func() {
			evs, _, err := b.Wait(context.Background(), 0, 0)
			Expect(err).NotTo(HaveOccurred())
			got <- evs
		}()
		b.Publish(events.Postback, t0, "paypal", "M1", nil)
		Eventually(got).Should(Receive(HaveLen(1)))

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err := b.Wait(ctx, b.Last(), 0)
		Expect(err).To(MatchError(context.Canceled))
	})
})
