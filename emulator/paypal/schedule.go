package paypal

import (
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// DefaultSchedule is PayPal's documented resend policy: the interval
// doubles from 10 s, capped at 24 h, for at most 15 retries. The 15th
// retry falls 69.5 h after the first delivery; PayPal's "about four days"
// counts a 16th (93.5 h), which MaxRetries: 16 reproduces.
func DefaultSchedule() delivery.Backoff {
	return delivery.Backoff{Initial: 10 * time.Second, Factor: 2, Max: 24 * time.Hour, MaxRetries: 15}
}
