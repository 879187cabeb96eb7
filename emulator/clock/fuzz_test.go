package clock_test

import (
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
)

// FuzzParseDuration: any text is a duration within [0, MaxDuration] or a
// clear refusal, never a panic or a wrapped value (1e300d once came back
// as a date 292 years back).
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "4d", "1d12h", "Infd", "NaNd", "1e300d", "106751d1000h", "-1d", "0x10d", "36500d", "1.5d3h", "9999999999999h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := clock.ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 || d > clock.MaxDuration {
			t.Fatalf("%q parsed as %s, outside [0, %s]", s, d, clock.MaxDuration)
		}
		if err := clock.CheckAdvance(d); err != nil {
			t.Fatalf("%q parsed as %s but cannot be advanced: %v", s, d, err)
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if end := start.Add(d); end.Before(start) {
			t.Fatalf("%q: %s moves the clock backwards", s, d)
		}
	})
}
