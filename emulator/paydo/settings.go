package paydo

import "github.com/ipnlab/ipnlab/emulator/delivery"

// Settings are what a user sets of the emulator's PayDo
// (emulator.Config.PayDo); the zero value is PayDo's defaults.
type Settings struct {
	// Schedule is the resend schedule (nil: 1 min doubling to 1 h, for
	// 24 h).
	Schedule *delivery.Backoff
	// Source is the local IP deliveries leave from (e.g. 127.0.0.2);
	// ForwardedFor is sent as X-Forwarded-For.
	Source       string
	ForwardedFor string
	// APIToken is the default project's status lookup token (default
	// DefaultAPIToken).
	APIToken string
	// Claim, if set, is asked before a transaction id or lookup token is
	// used (Config.Claim).
	Claim func(what, key string) error
}
