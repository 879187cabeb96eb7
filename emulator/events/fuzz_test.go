package events_test

import (
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator/events"
)

// FuzzCursor: whatever cursor a client sends (after=, Last-Event-ID) and
// however many events were kept, the bus answers without panicking and
// stays usable (a cursor of 2^64-1 froze the emulator).
func FuzzCursor(f *testing.F) {
	for _, c := range []struct {
		capacity, published uint16
		after               uint64
	}{{4, 6, 18446744073709551615}, {4, 6, 2}, {1, 0, 0}, {16, 3, 1 << 63}, {3, 3, 3}} {
		f.Add(c.capacity, c.published, c.after, uint16(0))
	}
	f.Fuzz(func(t *testing.T, capacity, published uint16, after uint64, limit uint16) {
		b := events.NewBus(int(capacity%64) + 1)
		for range published % 200 {
			b.Publish(events.Attempt, time.Time{}, "paypal", "M", nil)
		}
		evs, _ := b.Since(after, int(limit))
		last := b.Last()
		for i, e := range evs {
			if e.Seq == 0 || e.Seq > last || (i > 0 && e.Seq != evs[i-1].Seq+1) {
				t.Fatalf("after %d: event %d has seq %d (newest %d)", after, i, e.Seq, last)
			}
		}
		if after < last && len(evs) == 0 && limit != 0 {
			t.Fatalf("after %d: nothing returned though the newest is %d", after, last)
		}
		b.Publish(events.Attempt, time.Time{}, "paypal", "M", nil)
		if !b.Responsive(time.Second) {
			t.Fatal("the bus's lock stayed taken")
		}
	})
}
