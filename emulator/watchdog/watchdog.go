// Package watchdog tells a stuck lock from a busy one, so that /healthz
// fails when one of the emulator's loops is wedged instead of answering
// 200 while every send hangs.
package watchdog

import "time"

// TryLocker is a mutex that can be tried (sync.Mutex, sync.RWMutex).
type TryLocker interface {
	TryLock() bool
	Unlock()
}

// Free reports whether l can be taken within d: a lock held that long by
// a loop that should hold it for microseconds means that loop is stuck.
func Free(l TryLocker, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if l.TryLock() {
			l.Unlock()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
