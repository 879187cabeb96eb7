// Package delivery sends notifications over HTTP on a clock and retries them
// on a provider's schedule until they are acknowledged, recording every
// attempt. It knows no provider: providers hand it bytes, headers, a
// Schedule and an AckPolicy, and their schedules live with them.
package delivery

import (
	"fmt"
	"math"
	"time"
)

// Schedule decides when an unacknowledged message is tried again.
type Schedule interface {
	// Next returns the wait before retry n (n >= 1; the first delivery is
	// not a retry), or false when the schedule has no retry n.
	Next(n int) (time.Duration, bool)
}

// Backoff is an exponential schedule: retry n waits Initial·Factor^(n-1),
// capped at Max. It ends after MaxRetries retries (0: no count limit) or
// once the waits add up to more than Window (0: no window).
type Backoff struct {
	Initial    time.Duration `json:"initial"`
	Factor     float64       `json:"factor"`
	Max        time.Duration `json:"max"`
	MaxRetries int           `json:"max_retries"`
	Window     time.Duration `json:"window"`
}

// Validate reports a schedule that would never end or never wait.
func (b Backoff) Validate() error {
	switch {
	case b.Initial <= 0:
		return fmt.Errorf("schedule: initial wait must be positive, got %s", b.Initial)
	case b.Factor < 1:
		return fmt.Errorf("schedule: factor must be at least 1, got %g", b.Factor)
	case b.Max < b.Initial:
		return fmt.Errorf("schedule: max wait %s is below the initial wait %s", b.Max, b.Initial)
	case b.MaxRetries < 0:
		return fmt.Errorf("schedule: max retries must not be negative, got %d", b.MaxRetries)
	case b.MaxRetries == 0 && b.Window <= 0:
		return fmt.Errorf("schedule: set max retries or a window, or it never ends")
	}
	return nil
}

// Next implements Schedule.
func (b Backoff) Next(n int) (time.Duration, bool) {
	if n < 1 || (b.MaxRetries > 0 && n > b.MaxRetries) {
		return 0, false
	}
	if b.Window > 0 && b.Elapsed(n) > b.Window {
		return 0, false
	}
	return b.wait(n), true
}

// Elapsed returns the clock time from the first delivery to retry n. It
// costs the same for retry 10 and retry 10,000 (it runs on every retry: a
// sum over all of them made a 1 s schedule over 6 h quadratic).
func (b Backoff) Elapsed(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	k := min(n, b.uncapped()) // the waits below Max come first
	var total time.Duration
	switch {
	case b.Factor == 1:
		total = time.Duration(k) * b.Initial
	case k <= 64:
		for i := 1; i <= k; i++ {
			total += b.wait(i)
		}
	default: // a factor barely above 1: the geometric sum
		total = time.Duration(float64(b.Initial) * (math.Pow(b.Factor, float64(k)) - 1) / (b.Factor - 1))
	}
	capped := n - k
	if capped > 0 && b.Max > 0 && capped > int((math.MaxInt64-total)/b.Max) {
		return math.MaxInt64 // past any window
	}
	return total + time.Duration(capped)*b.Max
}

// uncapped counts the leading waits below Max (MaxInt when none reach it).
func (b Backoff) uncapped() int {
	if b.Initial >= b.Max {
		return 0
	}
	if b.Factor <= 1 {
		return math.MaxInt
	}
	m := int(math.Ceil(math.Log(float64(b.Max)/float64(b.Initial)) / math.Log(b.Factor)))
	// The logarithms may be off by one at the boundary: settle on wait.
	for m > 0 && b.wait(m) >= b.Max {
		m--
	}
	for b.wait(m+1) < b.Max {
		m++
	}
	return m
}

func (b Backoff) wait(n int) time.Duration {
	w := float64(b.Initial) * math.Pow(b.Factor, float64(n-1))
	if w >= float64(b.Max) || math.IsInf(w, 0) {
		return b.Max
	}
	return time.Duration(w)
}
