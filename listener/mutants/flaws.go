package mutants

// Flaw is what a mutant whose bug is still a decision inside the listener
// changes: the listener's decision points, each of which the reference
// listener takes one way and the flawed one the other. A mutant built at
// one of the listener's seams instead (Mutant.Seam) has none: package
// listener/flawed decorates the reference listener there.
// The listener asks its Flaw at each point; the zero Flaw is the reference
// listener. A mutant sets one decision (two for the duplicate race).
type Flaw struct {
	RefuseIgnored bool // answers 500 to messages it would ignore

	NoUniqueCredit bool // every credit of a transaction gets a ledger key of its own
	RacyCheck      bool // checks for a credit, then credits, in two steps
	DedupeByTxn    bool // a known txn_id is a duplicate, whatever its status
	// DedupeByLastStatus takes a message for a duplicate only when its
	// status is the transaction's latest, and lets a late Pending become
	// the latest.
	DedupeByLastStatus bool

	CreditPending    bool // credits Pending payments
	CreditFraudPends bool // credits payments held by fraud filters
	IgnoreReceiver   bool // does not check who the payment was for
	RefundAsPayment  bool // credits a refund like a payment
	// CreditMassPayReceivers credits the receivers of the merchant's own
	// Mass Pay, as if they had paid.
	CreditMassPayReceivers bool
	IgnoreReversals        bool // ignores Reversed and Canceled_Reversal
	// DebitEveryRefund debits a refund or reversal again each time its own
	// message is delivered again: duplicates are checked for payments only.
	DebitEveryRefund bool
	MisreadNames     bool // decodes the payer's name as UTF-8 whatever the charset

	FirstStatusWins bool // keeps the first status PayDo reports
}

// The seams mutants are built at, by package listener/flawed.
const (
	// SeamVerifier: how they verify; flawed decorates the listener's
	// Verifier (listener.Config.WrapVerifier).
	SeamVerifier = "verifier"
	// SeamHandler: how they answer, or what they take a request for;
	// flawed decorates the listener's HTTP handler
	// (listener.Config.WrapHandler).
	SeamHandler = "handler"
	// SeamConfig: a setting got wrong; flawed changes the listener's
	// configuration.
	SeamConfig = "configuration"
)

// seams are the mutants built at a seam of the listener.
var seams = map[Name]string{
	ReencodeUTF8: SeamVerifier, DropEmptyFields: SeamVerifier, TruncateAdaptiveKeys: SeamVerifier, PlusSpace: SeamVerifier,
	CRLFToLF: SeamVerifier, WrongVerifyURL: SeamVerifier, NoPostback: SeamVerifier, ContainsVerified: SeamVerifier,
	RetryInvalid: SeamVerifier, IgnoreStatus: SeamVerifier,
	Ack204: SeamHandler, AckAfterVerify: SeamHandler, PaydoTrustXFF: SeamHandler,
	PaydoNoAllowlist: SeamConfig, Implicit200: SeamConfig,
}

var flaws = map[Name]Flaw{
	CreditOwnMassPay:     {CreditMassPayReceivers: true},
	Ignored500:           {RefuseIgnored: true},
	NoDuplicateCheck:     {NoUniqueCredit: true},
	DedupeByTxn:          {DedupeByTxn: true},
	DedupeByLastStatus:   {DedupeByLastStatus: true},
	CreditPending:        {CreditPending: true},
	CreditFraudPends:     {CreditFraudPends: true},
	IgnoreReceiver:       {IgnoreReceiver: true},
	RefundAsPayment:      {RefundAsPayment: true},
	IgnoreReversals:      {IgnoreReversals: true},
	RacyDuplicates:       {NoUniqueCredit: true, RacyCheck: true},
	DuplicateRefunds:     {DebitEveryRefund: true},
	UTF8Names:            {MisreadNames: true},
	PaydoFirstStatusWins: {FirstStatusWins: true},
}
