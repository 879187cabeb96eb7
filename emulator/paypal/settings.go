package paypal

// Settings are what a user sets of the emulator's PayPal
// (emulator.Config.PayPal); the zero value is PayPal as the live service
// behaves, in the sandbox.
type Settings struct {
	// Verify is the verifier's mode (default ModePayPal).
	Verify Mode
	// Retries is how many times PayPal resends (default 15; at most 100).
	Retries int
	// Profile is the merchant's IPN settings. Empty receiver fields take
	// the emulator's defaults (emulator.DefaultReceiverEmail, ...ID).
	Profile Profile
	// Live drops test_ipn=1 from generated messages (default: sandbox).
	Live bool
	// ClaimVerifySign, if set, is asked before each message is sent
	// whether its verify_sign may be used (Config.Claim): a sandbox keeps
	// them unique across accounts.
	ClaimVerifySign func(verifySign string) error
}
