// Package watchdog tells a stuck lock from a busy one, so that /healthz
// fails when one of the emulator's loops is wedged instead of answering
// 200 while every send hangs.
package watchdog

import (
	"sync"
	"time"
)

// Free reports whether l can be taken within d: a lock held that long by
// a loop that should hold it for microseconds means that loop is stuck.
//
// It takes the lock as a writer would, waiting: a busy sync.RWMutex
// always has some reader in, so trying it in a loop could fail for
// seconds though no reader holds it long; a waiting writer holds new
// readers back and gets in once the current ones leave, as a send does.
// When l is stuck, the attempt stays waiting until it frees, then lets
// go at once.
func Free(l sync.Locker, d time.Duration) bool {
	got := make(chan struct{})
	go func() {
		l.Lock()
		//lint:ignore SA2001 an empty critical section: taking the lock is the test
		l.Unlock()
		close(got)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-got:
		return true
	case <-t.C:
		return false
	}
}
