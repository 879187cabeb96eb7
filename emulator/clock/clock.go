// Package clock is the emulator's notion of time.
//
// Every schedule in ipnlab (PayPal's retries over four days, PayDo's 24-hour
// window) is clock time. A Manual clock stands still until told to move;
// Advance then fires every callback due in the window, in time order, and
// returns only when they have all finished, so days of retries run in
// milliseconds and in a deterministic order. Real and Scaled clocks follow
// the wall clock (Scaled runs N times faster).
package clock

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
)

// Clock tells the time and runs callbacks at a given time.
type Clock interface {
	// Now returns the current clock time.
	Now() time.Time
	// At runs f in its own goroutine once the clock reaches t (at once if t
	// is not in the future).
	At(t time.Time, f func()) Timer
	// Mode names the clock for humans and the API: "real", "scale:N", "manual".
	Mode() string
}

// Timer is a callback waiting for its time.
type Timer interface {
	// Stop prevents the callback from running; it reports whether it did so.
	Stop() bool
}

// Controller is implemented by clocks that move only when told to (Manual).
type Controller interface {
	Clock
	// Advance moves the clock forward by d, firing every callback due on the
	// way, and returns when they (and whatever they scheduled within the
	// window) have finished.
	Advance(d time.Duration) error
	// RunUntilIdle fires callbacks in time order until none is left waiting,
	// moving the clock to each one's time. It stops after limit clock time
	// (so a self-rescheduling callback cannot loop forever) and returns how
	// far the clock moved.
	RunUntilIdle(limit time.Duration) (time.Duration, error)
	// Pending counts the callbacks waiting for their time.
	Pending() int
}

// ErrNotManual is returned by operations that need a manual clock.
var ErrNotManual = errors.New("clock is not manual")

// ErrNegative is returned when asked to move the clock backwards.
var ErrNegative = errors.New("clock cannot move backwards")

// ErrTooLong is returned for a duration over MaxDuration.
var ErrTooLong = errors.New("longer than a century of clock time (at most 36500d)")

// Parse builds a clock from a mode string: "real", "manual" or "scale:N"
// (N > 0, e.g. "scale:3600" runs an hour per second).
func Parse(mode string, start time.Time) (Clock, error) {
	scale, err := api.ParseClockMode(mode)
	switch {
	case err != nil:
		return nil, err
	case scale == 0:
		return NewManual(start), nil
	}
	return NewScaled(scale), nil
}

// MaxDuration bounds a duration: a century of clock time. Anything longer
// is a typo or an attack (1e300d), and would overflow clock arithmetic.
const MaxDuration = 100 * 365 * 24 * time.Hour

// FormatDuration writes d as ParseDuration reads it, whole days as days:
// 720h is 30d, 36h is 1d12h0m0s.
func FormatDuration(d time.Duration) string {
	days, rest := d/(24*time.Hour), d%(24*time.Hour)
	switch {
	case days == 0:
		return d.String()
	case rest == 0:
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%s", days, rest)
}

// ParseDuration extends time.ParseDuration with days ("4d", "1d12h"), since
// retry windows are counted in days. It refuses negative, NaN, infinite
// and overflowing values, and anything over MaxDuration.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("duration %q: empty", s)
	}
	var days time.Duration
	if i := strings.IndexByte(in, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(in[:i], 64)
		switch {
		case err != nil || math.IsNaN(n) || math.IsInf(n, 0) || strings.ContainsAny(in[:i], "xXpP_"):
			return 0, fmt.Errorf("duration %q: want e.g. 90s, 15m, 96h, 4d or 1d12h", s)
		case n < 0:
			return 0, fmt.Errorf("duration %q: %w", s, ErrNegative)
		case n > float64(MaxDuration/(24*time.Hour)):
			return 0, fmt.Errorf("duration %q: %w", s, ErrTooLong)
		}
		days = time.Duration(math.Round(n * float64(24*time.Hour)))
		in = in[i+1:]
		if in == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(in)
	switch {
	case err != nil && strings.Contains(err.Error(), "invalid duration") && overflows(in):
		return 0, fmt.Errorf("duration %q: %w", s, ErrTooLong)
	case err != nil:
		return 0, fmt.Errorf("duration %q: want e.g. 90s, 15m, 96h, 4d or 1d12h", s)
	case d < 0:
		return 0, fmt.Errorf("duration %q: %w", s, ErrNegative)
	case d > MaxDuration-days:
		return 0, fmt.Errorf("duration %q: %w", s, ErrTooLong)
	}
	return days + d, nil
}

// CheckAdvance refuses a move of the clock that is backwards or longer
// than MaxDuration, before anything changes.
func CheckAdvance(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("advance %s: %w", d, ErrNegative)
	case d > MaxDuration:
		return fmt.Errorf("advance %s: %w", d, ErrTooLong)
	}
	return nil
}

// overflows reports a duration that time.ParseDuration refused only for
// its size: digits and units, but more than it can hold.
func overflows(s string) bool {
	return strings.Trim(s, "0123456789.hmsuµn") == ""
}
