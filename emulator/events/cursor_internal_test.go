package events

import (
	"context"
	"math"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("Bus cursors and its lock", func() {
	It("answers any cursor without panicking, and stays usable (a cursor of 2^64-1 froze the emulator)", func() {
		b := NewBus(4)
		for _, seq := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 1 << 63, 5} {
			evs, missed := b.Since(seq, 0)
			Expect(evs).To(BeEmpty())
			Expect(missed).To(BeFalse())
		}
		for range 6 {
			b.Publish(Attempt, time.Time{}, "paypal", "M", nil)
		}
		// 6 published, 4 kept (3..6).
		for _, tc := range []struct {
			after  uint64
			first  uint64
			n      int
			missed bool
		}{{0, 3, 4, true}, {1, 3, 4, true}, {2, 3, 4, false}, {4, 5, 2, false}, {6, 0, 0, false},
			{7, 3, 4, true}, {math.MaxUint64, 3, 4, true}, {math.MaxUint64 - 1, 3, 4, true}} {
			evs, missed := b.Since(tc.after, 0)
			Expect(evs).To(HaveLen(tc.n), "after %d", tc.after)
			Expect(missed).To(Equal(tc.missed), "after %d", tc.after)
			if tc.n > 0 {
				Expect(evs[0].Seq).To(Equal(tc.first), "after %d", tc.after)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		evs, missed, err := b.Wait(ctx, math.MaxUint64, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(missed).To(BeTrue())
		Expect(evs).To(HaveLen(4))
		Expect(b.Responsive(time.Second)).To(BeTrue())
	})

	It("says it is stuck when its lock stays taken", func() {
		b := NewBus(4)
		b.mu.Lock()
		Expect(b.Responsive(50 * time.Millisecond)).To(BeFalse())
		b.mu.Unlock()
		Expect(b.Responsive(50 * time.Millisecond)).To(BeTrue())
	})
})
