package clock

import (
	"strconv"
	"time"
)

// Scaled follows the wall clock, running factor times faster from the
// moment it is made. Factor 1 is the real clock.
type Scaled struct {
	factor    float64
	wallStart time.Time
	start     time.Time
}

// NewScaled returns a clock that starts at the current wall time and runs
// factor times faster than it.
func NewScaled(factor float64) *Scaled {
	now := time.Now()
	return &Scaled{factor: factor, wallStart: now, start: now}
}

// Mode implements Clock.
func (s *Scaled) Mode() string {
	if s.factor == 1 {
		return "real"
	}
	return "scale:" + strconv.FormatFloat(s.factor, 'f', -1, 64)
}

// Now implements Clock.
func (s *Scaled) Now() time.Time {
	if s.factor == 1 {
		return time.Now()
	}
	elapsed := time.Since(s.wallStart)
	return s.start.Add(time.Duration(float64(elapsed) * s.factor))
}

// At implements Clock.
func (s *Scaled) At(t time.Time, f func()) Timer {
	wait := time.Duration(float64(t.Sub(s.Now())) / s.factor)
	if wait < 0 {
		wait = 0
	}
	return time.AfterFunc(wait, f)
}

// NewScaledFrom returns a scaled clock that read start at wall time
// wallStart: a restarted emulator continues its scaled clock as if it had
// kept running.
func NewScaledFrom(factor float64, wallStart, start time.Time) *Scaled {
	return &Scaled{factor: factor, wallStart: wallStart, start: start}
}

// Factor returns how many times faster than the wall clock s runs.
func (s *Scaled) Factor() float64 { return s.factor }

// Origin returns the wall time s was anchored at and its reading then.
func (s *Scaled) Origin() (wallStart, start time.Time) { return s.wallStart, s.start }
