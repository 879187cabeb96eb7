package mutants

// The seams of the reference listener mutants are built at, by package
// listener/flawed: each mutant is the reference listener decorated at
// one of them, so the listener a team adopts carries none of the bugs.
const (
	// SeamVerifier: how it verifies IPN; flawed decorates the listener's
	// Verifier (listener.Config.WrapVerifier).
	SeamVerifier = "verifier"
	// SeamWebhookVerifier: how it verifies PayPal REST webhooks; flawed
	// decorates the listener's WebhookVerifier
	// (listener.Config.WrapWebhookVerifier).
	SeamWebhookVerifier = "webhook verifier"
	// SeamHandler: how it answers, or what it takes a request for;
	// flawed decorates the listener's HTTP handler
	// (listener.Config.WrapHandler).
	SeamHandler = "handler"
	// SeamConfig: a setting got wrong; flawed changes the listener's
	// configuration.
	SeamConfig = "configuration"
	// SeamRules: what a verified message does to the ledger; flawed
	// decorates the listener's business rules (listener.Config.WrapRules).
	SeamRules = "rules"
	// SeamStore: how the ledger keeps duplicates out; flawed decorates
	// the listener's store (listener.Config.WrapStore).
	SeamStore = "store"
)

// seams are where each mutant is built.
var seams = map[Name]string{
	ReencodeUTF8: SeamVerifier, DropEmptyFields: SeamVerifier, TruncateAdaptiveKeys: SeamVerifier, PlusSpace: SeamVerifier,
	CRLFToLF: SeamVerifier, WrongVerifyURL: SeamVerifier, NoPostback: SeamVerifier, ContainsVerified: SeamVerifier,
	RetryInvalid: SeamVerifier, IgnoreStatus: SeamVerifier,
	Ack204: SeamHandler, AckAfterVerify: SeamHandler, PaydoTrustXFF: SeamHandler, Ignored500: SeamHandler,
	PaydoNoAllowlist: SeamConfig, Implicit200: SeamConfig,
	DedupeByTxn: SeamRules, DedupeByLastStatus: SeamRules, CreditPending: SeamRules, CreditFraudPends: SeamRules,
	IgnoreReceiver: SeamRules, RefundAsPayment: SeamRules, CreditOwnMassPay: SeamRules, IgnoreReversals: SeamRules,
	DuplicateRefunds: SeamRules, UTF8Names: SeamRules, PaydoFirstStatusWins: SeamRules,
	WebhookRejectUnknown: SeamHandler, WebhookUnverified: SeamWebhookVerifier, WebhookReserialized: SeamWebhookVerifier,
	WebhookAcceptMock: SeamWebhookVerifier, WebhookCreditPending: SeamRules, WebhookFulfilOrder: SeamRules,
	WebhookIgnoreRefunds: SeamRules, WebhookDropEarly: SeamRules, WebhookIgnoreReverse: SeamRules,
	WebhookEventIDAsID: SeamWebhookVerifier, WebhookCRC32Hex: SeamWebhookVerifier,
	WebhookIgnoreSales: SeamRules, WebhookIgnoreDispute: SeamRules, WebhookAnyDispute: SeamRules, WebhookDisputeAgain: SeamRules,
	WebhookAnyCertURL: SeamWebhookVerifier, WebhookCertOnce: SeamWebhookVerifier, WebhookImplicit2xx: SeamWebhookVerifier,
	NoDuplicateCheck: SeamStore, RacyDuplicates: SeamStore,
}
