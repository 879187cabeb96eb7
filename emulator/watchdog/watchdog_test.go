package watchdog_test

import (
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/watchdog"
)

var _ = Describe("Telling a stuck lock from a busy one", func() {
	It("calls a read-write lock free when readers keep overlapping, none holding it long", func() {
		var mu sync.RWMutex
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 8 { // always some reader in: a busy verifier
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					mu.RLock()
					time.Sleep(time.Millisecond)
					mu.RUnlock()
				}
			}()
		}
		DeferCleanup(func() { stop.Store(true); wg.Wait() })
		Expect(watchdog.Free(&mu, time.Second)).To(BeTrue())
	})

	It("calls a lock held past the budget stuck, and free again once let go", func() {
		var mu sync.Mutex
		mu.Lock()
		Expect(watchdog.Free(&mu, 50*time.Millisecond)).To(BeFalse())
		mu.Unlock()
		Expect(watchdog.Free(&mu, time.Second)).To(BeTrue())
	})
})
