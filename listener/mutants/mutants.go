// Package mutants names the deliberately broken variants of the reference
// listener: each has exactly one bug that real IPN listeners have, why it
// loses money or notifications, and the conformance checks that must
// catch it. A mutant is built by package listener/flawed, by decorating
// the reference listener at one of its seams (Mutant.Seam); the listener
// itself has no branch for any bug. The conformance self-test proves
// every mutant is caught.
package mutants

import "sort"

// Name names a mutant.
type Name string

// The gallery.
const (
	ReencodeUTF8         Name = "reencode-utf8"
	DropEmptyFields      Name = "drop-empty-fields"
	TruncateAdaptiveKeys Name = "truncate-adaptive-keys"
	PlusSpace            Name = "plus-space"
	CRLFToLF             Name = "crlf-to-lf"
	WrongVerifyURL       Name = "wrong-verify-url"
	NoPostback           Name = "no-postback"
	ContainsVerified     Name = "contains-verified"
	RetryInvalid         Name = "retry-invalid"
	IgnoreStatus         Name = "ignore-status"
	Implicit200          Name = "implicit-200"
	Ignored500           Name = "ignored-500"
	AckAfterVerify       Name = "ack-after-verify"
	Ack204               Name = "ack-204"
	NoDuplicateCheck     Name = "no-duplicate-check"
	DedupeByTxn          Name = "dedupe-by-txn"
	DedupeByLastStatus   Name = "dedupe-by-last-status"
	CreditPending        Name = "credit-pending"
	CreditFraudPends     Name = "credit-fraud-pends"
	IgnoreReceiver       Name = "ignore-receiver"
	RefundAsPayment      Name = "refund-as-payment"
	CreditOwnMassPay     Name = "credit-own-masspay"
	IgnoreReversals      Name = "ignore-reversals"
	RacyDuplicates       Name = "racy-duplicates"
	DuplicateRefunds     Name = "duplicate-refunds"
	UTF8Names            Name = "utf8-names"
	PaydoNoAllowlist     Name = "paydo-no-allowlist"
	PaydoFirstStatusWins Name = "paydo-first-status-wins"
	PaydoTrustXFF        Name = "paydo-trust-xff"
	WebhookRejectUnknown Name = "webhook-reject-unknown-type"
	WebhookUnverified    Name = "webhook-unverified"
	WebhookReserialized  Name = "webhook-reserialized-body"
	WebhookAcceptMock    Name = "webhook-accept-mock"
	WebhookCreditPending Name = "webhook-credit-pending"
	WebhookFulfilOrder   Name = "webhook-fulfil-approved-order"
	WebhookIgnoreRefunds Name = "webhook-ignore-refunds"
	WebhookDropEarly     Name = "webhook-drop-early-refunds"
	WebhookIgnoreReverse Name = "webhook-ignore-reversals"
	WebhookAnyCertURL    Name = "webhook-cert-from-any-url"
	WebhookCertOnce      Name = "webhook-cert-cached-once"
	WebhookImplicit2xx   Name = "webhook-implicit-2xx"
	WebhookEventIDAsID   Name = "webhook-event-id-as-webhook-id"
	WebhookCRC32Hex      Name = "webhook-crc32-hex"
	WebhookIgnoreSales   Name = "webhook-ignore-sales"
	WebhookIgnoreDispute Name = "webhook-ignore-lost-disputes"
	WebhookAnyDispute    Name = "webhook-debit-every-dispute"
	WebhookDisputeAgain  Name = "webhook-dispute-debits-again"
)

// crediting are the PW- checks that need a genuine event verified and
// credited: a listener that verifies nothing right fails each of them.
var crediting = []string{"PW-CERT-OUTAGE", "PW-CERT-ROTATION", "PW-CREDIT-ONCE", "PW-DISPUTE-AND-REVERSAL", "PW-DISPUTE-LOST",
	"PW-DISPUTE-WON", "PW-DUPLICATE", "PW-OUT-OF-ORDER-REFUND", "PW-PENDING", "PW-REFUND", "PW-REVERSAL",
	"PW-SUBSCRIPTION-PAYMENT", "PW-VERIFY-RAW-BYTES"}

// Mutant is one deliberate bug.
type Mutant struct {
	Name    Name     `json:"name"`
	Bug     string   `json:"bug"`
	Why     string   `json:"why"`     // what it costs
	Targets []string `json:"targets"` // check IDs that must catch it
	// Seam names the listener's seam the mutant is built at, by package
	// listener/flawed.
	Seam string `json:"-"`
}

// entry is a mutant as the gallery below writes it; its seam is in seams.
type entry struct {
	Name    Name
	Bug     string
	Why     string
	Targets []string
}

func (e entry) mutant() Mutant {
	return Mutant{Name: e.Name, Bug: e.Bug, Why: e.Why, Targets: e.Targets, Seam: seams[e.Name]}
}

var all = []entry{
	{ReencodeUTF8, "re-encodes the postback as UTF-8: windows-1252 bytes become U+FFFD",
		"every payment from a payer with an accented name comes back INVALID and is never credited", []string{"PP-VERIFY-WINDOWS-1252", "PP-VERIFY-WINDOWS-1255"}},
	{DropEmptyFields, "drops empty fields (custom=) from the postback",
		"almost every real message has empty fields: nothing verifies", []string{"PP-VERIFY-EMPTY-FIELDS"}},
	{TruncateAdaptiveKeys, "turns transaction[0].amount into transaction[0] (a PHP-style array parse)",
		"Adaptive Payments never verify", []string{"PP-VERIFY-ADAPTIVE"}},
	{PlusSpace, "reads '+' literally instead of as a space, so the postback carries %2B where PayPal sent a space",
		"every value with a space changes: nothing verifies", []string{"PP-VERIFY-PLUS"}},
	{CRLFToLF, "normalises CRLF to LF in values before posting back",
		"payers with multi-line addresses are never credited", []string{"PP-VERIFY-CRLF"}},
	{WrongVerifyURL, "posts back to a hard-coded wrong URL",
		"nothing is ever verified, or the wrong environment answers", []string{"PP-POSTBACK-SENT"}},
	{NoPostback, "never posts back: trusts every message",
		"anyone can forge a payment with a curl command", []string{"PP-POSTBACK-SENT"}},
	{ContainsVerified, "treats any answer containing VERIFIED as verified",
		"\"VERIFIED\\n\" from a broken proxy is taken at face value", []string{"PP-NEWLINE-NEVER-CREDITS"}},
	{RetryInvalid, "takes INVALID for a verifier error, and asks again until its retries run out",
		"every forged or broken message is posted back again and again: a flood of postbacks PayPal may throttle", []string{"PP-NO-FLOOD"}},
	{IgnoreStatus, "ignores the verifier's HTTP status",
		"an error page that says VERIFIED with HTTP 500 credits the payment", []string{"PP-STATUS500-NEVER-CREDITS", "PP-OUTAGE-500-VERIFIED"}},
	{Implicit200, "answers 200 even when verification could not be done, and never retries it",
		"a verifier outage silently loses every payment in it: PayPal got its 200 and will not resend", []string{"PP-OUTAGE-UNREACHABLE", "PP-OUTAGE-503-PAGE", "PP-OUTAGE-200-PAGE", "PP-OUTAGE-500-VERIFIED", "PW-CERT-OUTAGE"}},
	{Ignored500, "answers 500 to messages it ignores (other receiver, unknown kind, unknown parent)",
		"PayPal resends those for days and the IPN profile may be disabled", []string{"PP-ACK-UNKNOWN-KIND", "PP-ACK-OTHER-RECEIVER", "PP-ACK-UNKNOWN-PARENT"}},
	{AckAfterVerify, "acks only after verifying, with no timeout on the postback",
		"a slow verifier makes every delivery time out: PayPal resends and finally disables IPN", []string{"PP-ACK-SLOW-VERIFIER"}},
	{Ack204, "acknowledges with 204 No Content instead of 200",
		"PayPal takes only 200 as an ack: it resends every message for four days, and may disable IPN", []string{"PP-ACK-GENUINE", "PP-ACK-OTHER-RECEIVER", "PP-ACK-SLOW-VERIFIER", "PP-ACK-UNKNOWN-KIND", "PP-ACK-UNKNOWN-PARENT"}},
	{DuplicateRefunds, "checks duplicates of payments, not of refunds",
		"a resent refund debits the customer again: found by ipnlab explore, which the catalog passed before PP-DUPLICATE-REFUND", []string{"PP-DUPLICATE-REFUND"}},
	{NoDuplicateCheck, "credits every delivery it receives",
		"each PayPal resend credits the customer again", []string{"PP-DUPLICATE-RESEND", "PP-CONCURRENT-COPIES", "PP-COMPLETED-AFTER-LATE-PENDING", "PW-DUPLICATE", "PW-SUBSCRIPTION-PAYMENT"}},
	{DedupeByTxn, "checks duplicates by txn_id alone",
		"the Completed message of a Pending payment is taken for a duplicate: it is never credited (and a Denied or Failed one is never recorded)", []string{"PP-PENDING-ECHECK", "PP-PENDING-MULTI-CURRENCY", "PP-PENDING-REVIEW", "PP-FRAUD-ACCEPTED", "PP-COMPLETED-AFTER-LATE-PENDING", "PP-RECORD-FINAL-STATUS"}},
	{DedupeByLastStatus, "takes a message for a duplicate only when its status is the transaction's latest, and records a late Pending as the latest",
		"PayPal resends a Completed after a late or resent Pending: the payment is credited twice (a real django-paypal shop, every seed)", []string{"PP-COMPLETED-AFTER-LATE-PENDING", "PP-RECORD-FINAL-STATUS"}},
	{CreditPending, "credits Pending payments",
		"eChecks that bounce and payments under review are paid out", []string{"PP-PENDING-ECHECK", "PP-PENDING-FAILED", "PP-PENDING-MULTI-CURRENCY", "PP-PENDING-REVIEW", "PP-REVIEW-REVERSED", "PP-FRAUD-ACCEPTED", "PP-FRAUD-DENIED", "PP-RECORD-HOLD"}},
	{CreditFraudPends, "credits payments held by fraud filters",
		"payments PayPal's filters flagged are fulfilled before the merchant reviews them", []string{"PP-FRAUD-ACCEPTED", "PP-FRAUD-DENIED", "PP-RECORD-HOLD"}},
	{IgnoreReceiver, "does not check receiver_email / receiver_id",
		"payments to someone else (a spoofed button) credit this merchant's customers", []string{"PP-OTHER-RECEIVER-NEVER-CREDITS"}},
	{RefundAsPayment, "ignores parent_txn_id and credits a refund like a payment",
		"a refund tops the customer up instead of taking the money back", []string{"PP-REFUND-FULL", "PP-REFUND-PARTIAL", "PP-OUT-OF-ORDER-REFUND", "PP-DUPLICATE-REFUND"}},
	{IgnoreReversals, "ignores Reversed and Canceled_Reversal",
		"chargebacks leave the customer's balance credited (and a reversal is never recorded)", []string{"PP-CHARGEBACK", "PP-RECORD-FINAL-STATUS"}},
	{CreditOwnMassPay, "credits the receivers of the merchant's own Mass Pay",
		"every payout tops up the account of the person it paid: the operator pays twice", []string{"PP-MASSPAY-ITEMS"}},
	{RacyDuplicates, "checks for a duplicate, then credits, in two steps without a unique constraint",
		"concurrent copies (PayPal's retries racing a slow ack) credit twice", []string{"PP-CONCURRENT-COPIES", "PW-DUPLICATE", "PW-SUBSCRIPTION-PAYMENT"}},
	{UTF8Names, "decodes windows-1252 names as UTF-8 in what it stores",
		"customer names are mangled (J\uFFFDrg) in records and receipts", []string{"PP-CHARSET-NAME"}},
	{PaydoNoAllowlist, "applies PayDo notifications from any address",
		"PayDo IPNs carry no signature: anyone can post a fake accepted checkout", []string{"PD-ALLOWLIST", "PD-XFF-SPOOF"}},
	{PaydoFirstStatusWins, "keeps the first status PayDo reports",
		"a checkout that failed first and then succeeded is never credited", []string{"PD-TRANSFER-FAILED-THEN-SUCCESS", "PD-CHECKOUT-FAILED-THEN-SUCCESS", "PD-PENDING"}},
	{PaydoTrustXFF, "believes X-Forwarded-For from any peer",
		"a stranger sets X-Forwarded-For to PayDo's address and gets through the allowlist", []string{"PD-XFF-SPOOF"}},
	{WebhookRejectUnknown, "answers 400 to the webhook event types it does not act on",
		"PayPal retries each of them 25 times over three days, and may disable the webhook", []string{"PW-ACK-UNHANDLED-TYPE"}},
	{WebhookUnverified, "never checks a webhook's signature",
		"anyone who can post to the endpoint credits any amount: a captured event replayed with its amount raised is paid", []string{"PW-FORGED-BODY", "PW-MOCK-NOT-ACTED-ON", "PW-CERT-HOST"}},
	{WebhookReserialized, "checks the signature over the event parsed and written again (keys in order, as JSON.stringify writes them), not over the bytes received",
		"an event whose JSON is written differently (an escaped slash or accent) never verifies and is never credited", []string{"PW-VERIFY-RAW-BYTES"}},
	{WebhookAcceptMock, "takes a signature for the simulator's WEBHOOK_ID as well as its own webhook's",
		"anyone with a PayPal developer account sends it mock events that credit customers", []string{"PW-MOCK-NOT-ACTED-ON"}},
	{WebhookCreditPending, "credits PAYMENT.CAPTURE.PENDING",
		"an eCheck or a payment under review is fulfilled, and stays fulfilled when it is denied", []string{"PW-PENDING"}},
	{WebhookFulfilOrder, "credits CHECKOUT.ORDER.APPROVED",
		"an approved order is not paid: a buyer who approves and is never captured is fulfilled", []string{"PW-ORDER-APPROVED"}},
	{WebhookIgnoreRefunds, "ignores PAYMENT.CAPTURE.REFUNDED",
		"refunded payments stay credited", []string{"PW-REFUND", "PW-OUT-OF-ORDER-REFUND"}},
	{WebhookDropEarly, "drops a refund of a capture it has not credited yet",
		"PayPal does not deliver in order: a refund that arrives before its capture's COMPLETED is lost, and the capture stays credited", []string{"PW-OUT-OF-ORDER-REFUND"}},
	{WebhookIgnoreReverse, "ignores PAYMENT.CAPTURE.REVERSED",
		"a chargeback leaves the customer credited", []string{"PW-REVERSAL"}},
	{WebhookAnyCertURL, "fetches the certificate from any PAYPAL-CERT-URL that mentions paypal.com, and trusts it",
		"anyone signs a forged event with a key of their own and names their own certificate: every forgery is paid", []string{"PW-CERT-HOST"}},
	{WebhookCertOnce, "keeps the first certificate it fetched, whatever URL later events name",
		"after PayPal rotates its signing key nothing verifies again: every payment from then on is lost", []string{"PW-CERT-ROTATION", "PW-CERT-OUTAGE"}},
	{WebhookImplicit2xx, "drops an event whose certificate it could not fetch, after answering 2xx",
		"a moment's outage at PayPal loses every payment in it: PayPal got its 2xx and will not resend", []string{"PW-CERT-OUTAGE"}},
	{WebhookEventIDAsID, "verifies with the event's id (WH-...) where the signature has the id of its webhook",
		"no genuine event ever verifies: every payment is lost (and the verify API, asked so, answers FAILURE)", crediting},
	{WebhookCRC32Hex, "writes the body's CRC32 in hexadecimal in the signed string, where PayPal writes it as an unsigned decimal",
		"no genuine event ever verifies: every payment is lost", crediting},
	{WebhookIgnoreSales, "handles captures only, not v1 sales (PAYMENT.SALE.*)",
		"a subscription's payments come as sales: no subscriber is ever credited", []string{"PW-SUBSCRIPTION-PAYMENT"}},
	{WebhookIgnoreDispute, "ignores CUSTOMER.DISPUTE.RESOLVED",
		"a dispute the merchant lost leaves the customer credited", []string{"PW-DISPUTE-LOST"}},
	{WebhookAnyDispute, "debits every resolved dispute, whatever its outcome",
		"a dispute the merchant won takes the customer's money all the same", []string{"PW-DISPUTE-WON"}},
	{WebhookDisputeAgain, "debits a lost dispute as a debit of its own, beside the capture's reversal",
		"PayPal reports a chargeback both ways (the reversal and the dispute): the customer is debited twice", []string{"PW-DISPUTE-AND-REVERSAL"}},
}

// All lists the mutants, by name.
func All() []Mutant {
	out := make([]Mutant, len(all))
	for i, e := range all {
		out[i] = e.mutant()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns a mutant by name.
func Lookup(name string) (Mutant, bool) {
	for _, e := range all {
		if string(e.Name) == name {
			return e.mutant(), true
		}
	}
	return Mutant{}, false
}
