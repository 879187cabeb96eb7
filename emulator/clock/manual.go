package clock

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/watchdog"
)

// Manual is a clock that moves only through Advance and RunUntilIdle.
// Callbacks due at the same instant run concurrently; the clock waits for
// all of them (and anything they start at that instant) before it moves on,
// so attempts always see the time they were scheduled for.
type Manual struct {
	mu       sync.Mutex
	now      time.Time
	seq      uint64
	queue    timerHeap
	running  int        // callbacks started and not yet returned
	idle     *sync.Cond // signalled when running drops to zero
	advancer sync.Mutex // one Advance at a time
}

// NewManual returns a manual clock reading start.
func NewManual(start time.Time) *Manual {
	m := &Manual{now: start}
	m.idle = sync.NewCond(&m.mu)
	return m
}

// Mode implements Clock.
func (m *Manual) Mode() string { return "manual" }

// Now implements Clock.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// At implements Clock. A callback due now or earlier starts at once.
func (m *Manual) At(t time.Time, f func()) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	mt := &manualTimer{clock: m, when: t, seq: m.seq, f: f, index: -1}
	if !t.After(m.now) {
		m.startLocked(mt)
		return mt
	}
	heap.Push(&m.queue, mt)
	return mt
}

// Pending implements Controller.
func (m *Manual) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// Next returns the time of the earliest callback waiting, if any: where
// Advance has to go for something to happen.
func (m *Manual) Next() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return time.Time{}, false
	}
	return m.queue[0].when, true
}

// Advance implements Controller.
func (m *Manual) Advance(d time.Duration) error {
	if err := CheckAdvance(d); err != nil {
		return err
	}
	m.advancer.Lock()
	defer m.advancer.Unlock()
	m.mu.Lock()
	target := m.now.Add(d)
	m.runDueLocked(target)
	m.now = target
	m.mu.Unlock()
	return nil
}

// RunUntilIdle implements Controller.
func (m *Manual) RunUntilIdle(limit time.Duration) (time.Duration, error) {
	if err := CheckAdvance(limit); err != nil {
		return 0, fmt.Errorf("run until idle: %w", err)
	}
	m.advancer.Lock()
	defer m.advancer.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	start := m.now
	m.runDueLocked(start.Add(limit))
	if len(m.queue) > 0 {
		return m.now.Sub(start), fmt.Errorf("run until idle: %d callbacks still waiting after %s", len(m.queue), limit)
	}
	return m.now.Sub(start), nil
}

// WaitIdle blocks until no callback is running. Callbacks started by At for
// a time already reached run outside Advance; tests use this to wait for them.
func (m *Manual) WaitIdle() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.running > 0 {
		m.idle.Wait()
	}
}

// runDueLocked fires, instant by instant, every callback due up to target.
// It waits for each instant's callbacks before looking at the next one,
// because they may schedule more work inside the window.
func (m *Manual) runDueLocked(target time.Time) {
	for {
		for m.running > 0 {
			m.idle.Wait()
		}
		if len(m.queue) == 0 || m.queue[0].when.After(target) {
			return
		}
		at := m.queue[0].when
		if at.After(m.now) {
			m.now = at
		}
		for len(m.queue) > 0 && !m.queue[0].when.After(m.now) {
			m.startLocked(heap.Pop(&m.queue).(*manualTimer))
		}
	}
}

func (m *Manual) startLocked(mt *manualTimer) {
	mt.fired = true
	m.running++
	go func() {
		defer func() {
			m.mu.Lock()
			m.running--
			if m.running == 0 {
				m.idle.Broadcast()
			}
			m.mu.Unlock()
		}()
		mt.f()
	}()
}

type manualTimer struct {
	clock *Manual
	when  time.Time
	seq   uint64
	f     func()
	index int
	fired bool
}

func (t *manualTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	if t.fired || t.index < 0 {
		return false
	}
	heap.Remove(&t.clock.queue, t.index)
	return true
}

// timerHeap orders timers by time, then by creation, so equal times fire
// in the order they were scheduled.
type timerHeap []*manualTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when.Equal(h[j].when) {
		return h[i].seq < h[j].seq
	}
	return h[i].when.Before(h[j].when)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*manualTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}

// ErrBusy is returned by Reset while callbacks wait or run.
var ErrBusy = errors.New("clock has callbacks waiting or running")

// Reset sets the clock to t, backwards too, when nothing is scheduled: the
// emulator does it on start to resume a journal's clock time.
func (m *Manual) Reset(t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) > 0 || m.running > 0 {
		return fmt.Errorf("reset to %s: %w", t.Format(time.RFC3339), ErrBusy)
	}
	m.now = t
	return nil
}

// Responsive reports whether the clock's lock can be taken within d (see
// package watchdog). A long Advance holds only its own advancer lock.
func (m *Manual) Responsive(d time.Duration) bool { return watchdog.Free(&m.mu, d) }
