package mutants

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/ipnlab/ipnlab/form"
)

// Flaw is what a mutant changes: the listener's decision points, each of
// which the reference listener takes one way and the flawed one the other.
// The listener asks its Flaw at each point; the zero Flaw is the reference
// listener. A mutant sets one decision (two for the duplicate race).
type Flaw struct {
	// RewritePostback rebuilds the postback's fields the way buggy
	// listeners do (nil: byte for byte).
	RewritePostback func(body []byte) []byte
	NoPostback      bool // trusts every message
	WrongVerifyURL  bool // posts back to a hard-coded wrong URL
	IgnoreStatus    bool // takes the verifier's body whatever its HTTP status
	LooseVerified   bool // any answer containing VERIFIED verifies
	RetryInvalid    bool // INVALID is a verifier error: asked again

	Implicit200    bool // acks before verifying, and never retries the verification
	RefuseIgnored  bool // answers 500 to messages it would ignore
	AckAfterVerify bool // verifies before it acks, with no timeout
	AckNoContent   bool // acks PayPal with 204 No Content instead of 200

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

	PayDoNoAllowlist bool // applies PayDo notifications from any address
	PayDoTrustXFF    bool // believes X-Forwarded-For from any peer
	FirstStatusWins  bool // keeps the first status PayDo reports
}

var flaws = map[Name]Flaw{
	CreditOwnMassPay: {CreditMassPayReceivers: true},
	Ack204:           {AckNoContent: true},
	ReencodeUTF8:     {RewritePostback: eachField(func(f *form.Field) { f.Value = strings.ToValidUTF8(f.Value, "\uFFFD") })},
	DropEmptyFields: {RewritePostback: rewrite(func(f form.Form) form.Form {
		out := f[:0]
		for _, fd := range f {
			if fd.Value != "" {
				out = append(out, fd)
			}
		}
		return out
	})},
	TruncateAdaptiveKeys: {RewritePostback: eachField(func(f *form.Field) { f.Name = adaptiveKey.ReplaceAllString(f.Name, "$1") })},
	PlusSpace:            {RewritePostback: plusLiteral},
	CRLFToLF:             {RewritePostback: eachField(func(f *form.Field) { f.Value = strings.ReplaceAll(f.Value, "\r\n", "\n") })},
	WrongVerifyURL:       {WrongVerifyURL: true},
	NoPostback:           {NoPostback: true},
	ContainsVerified:     {LooseVerified: true},
	RetryInvalid:         {RetryInvalid: true},
	IgnoreStatus:         {IgnoreStatus: true},
	Implicit200:          {Implicit200: true},
	Ignored500:           {RefuseIgnored: true},
	AckAfterVerify:       {AckAfterVerify: true},
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
	PaydoNoAllowlist:     {PayDoNoAllowlist: true},
	PaydoFirstStatusWins: {FirstStatusWins: true},
	PaydoTrustXFF:        {PayDoTrustXFF: true},
}

var adaptiveKey = regexp.MustCompile(`^(transaction\[\d+\])\..+$`)

// rewrite applies change to the parsed fields (a body that does not parse
// goes as it came).
func rewrite(change func(form.Form) form.Form) func([]byte) []byte {
	return func(body []byte) []byte {
		f, err := form.Parse(body)
		if err != nil {
			return body
		}
		return change(f).Encode()
	}
}

func eachField(change func(*form.Field)) func([]byte) []byte {
	return rewrite(func(f form.Form) form.Form {
		for i := range f {
			change(&f[i])
		}
		return f
	})
}

// plusLiteral decodes with a URL-path decoder, which keeps '+' literal;
// re-encoding then turns every space PayPal sent as '+' into %2B.
func plusLiteral(body []byte) []byte {
	var out []string
	for _, t := range form.Tokens(body) {
		v, err := url.PathUnescape(t.Value)
		if err != nil {
			return body
		}
		out = append(out, t.Name+"="+form.Escape(v))
	}
	return []byte(strings.Join(out, "&"))
}
