// Package mutants names the deliberately broken variants of the reference
// listener: each has exactly one bug that real IPN listeners have, why it
// loses money or notifications, and the conformance checks that must
// catch it. The listener switches the bug on with Config.Mutant; the
// conformance self-test proves every mutant is caught.
package mutants

import "sort"

// Mutant is one deliberate bug.
type Mutant struct {
	Name    string   `json:"name"`
	Bug     string   `json:"bug"`
	Why     string   `json:"why"`     // what it costs
	Targets []string `json:"targets"` // check IDs that must catch it
}

var all = []Mutant{
	{"reencode-utf8", "re-encodes the postback as UTF-8: windows-1252 bytes become U+FFFD",
		"every payment from a payer with an accented name comes back INVALID and is never credited", []string{"PP-VERIFY-WINDOWS-1252", "PP-VERIFY-WINDOWS-1255"}},
	{"drop-empty-fields", "drops empty fields (custom=) from the postback",
		"almost every real message has empty fields: nothing verifies", []string{"PP-VERIFY-EMPTY-FIELDS"}},
	{"truncate-adaptive-keys", "turns transaction[0].amount into transaction[0] (a PHP-style array parse)",
		"Adaptive Payments never verify", []string{"PP-VERIFY-ADAPTIVE"}},
	{"plus-space", "reads '+' literally instead of as a space, so the postback carries %2B where PayPal sent a space",
		"every value with a space changes: nothing verifies", []string{"PP-VERIFY-PLUS"}},
	{"crlf-to-lf", "normalises CRLF to LF in values before posting back",
		"payers with multi-line addresses are never credited", []string{"PP-VERIFY-CRLF"}},
	{"wrong-verify-url", "posts back to a hard-coded wrong URL",
		"nothing is ever verified, or the wrong environment answers", []string{"PP-POSTBACK-SENT"}},
	{"no-postback", "never posts back: trusts every message",
		"anyone can forge a payment with a curl command", []string{"PP-POSTBACK-SENT"}},
	{"contains-verified", "treats any answer containing VERIFIED as verified",
		"\"VERIFIED\\n\" from a broken proxy is taken at face value", []string{"PP-NEWLINE-NEVER-CREDITS"}},
	{"ignore-status", "ignores the verifier's HTTP status",
		"an error page that says VERIFIED with HTTP 500 credits the payment", []string{"PP-STATUS500-NEVER-CREDITS", "PP-OUTAGE-500-VERIFIED"}},
	{"implicit-200", "answers 200 even when verification could not be done, and never retries it",
		"a verifier outage silently loses every payment in it: PayPal got its 200 and will not resend", []string{"PP-OUTAGE-UNREACHABLE", "PP-OUTAGE-503-PAGE", "PP-OUTAGE-200-PAGE", "PP-OUTAGE-500-VERIFIED"}},
	{"ignored-500", "answers 500 to messages it ignores (other receiver, unknown kind, unknown parent)",
		"PayPal resends those for days and the IPN profile may be disabled", []string{"PP-ACK-UNKNOWN-KIND", "PP-ACK-OTHER-RECEIVER", "PP-ACK-UNKNOWN-PARENT"}},
	{"ack-after-verify", "acks only after verifying, with no timeout on the postback",
		"a slow verifier makes every delivery time out: PayPal resends and finally disables IPN", []string{"PP-ACK-SLOW-VERIFIER"}},
	{"no-duplicate-check", "credits every delivery it receives",
		"each PayPal resend credits the customer again", []string{"PP-DUPLICATE-RESEND", "PP-CONCURRENT-COPIES"}},
	{"dedupe-by-txn", "checks duplicates by txn_id alone",
		"the Completed message of a Pending payment is taken for a duplicate: it is never credited", []string{"PP-PENDING-ECHECK", "PP-PENDING-FAILED", "PP-PENDING-MULTI-CURRENCY", "PP-PENDING-REVIEW", "PP-REVIEW-REVERSED", "PP-FRAUD-ACCEPTED", "PP-FRAUD-DENIED"}},
	{"credit-pending", "credits Pending payments",
		"eChecks that bounce and payments under review are paid out", []string{"PP-PENDING-ECHECK", "PP-PENDING-FAILED", "PP-PENDING-MULTI-CURRENCY", "PP-PENDING-REVIEW", "PP-REVIEW-REVERSED", "PP-FRAUD-ACCEPTED", "PP-FRAUD-DENIED"}},
	{"credit-fraud-pends", "credits payments held by fraud filters",
		"payments PayPal's filters flagged are fulfilled before the merchant reviews them", []string{"PP-FRAUD-ACCEPTED", "PP-FRAUD-DENIED"}},
	{"ignore-receiver", "does not check receiver_email / receiver_id",
		"payments to someone else (a spoofed button) credit this merchant's customers", []string{"PP-OTHER-RECEIVER-NEVER-CREDITS"}},
	{"refund-as-payment", "ignores parent_txn_id and credits a refund like a payment",
		"a refund tops the customer up instead of taking the money back", []string{"PP-REFUND-FULL", "PP-REFUND-PARTIAL", "PP-OUT-OF-ORDER-REFUND"}},
	{"ignore-reversals", "ignores Reversed and Canceled_Reversal",
		"chargebacks leave the customer's balance credited", []string{"PP-CHARGEBACK", "PP-REVIEW-REVERSED"}},
	{"racy-duplicates", "checks for a duplicate, then credits, in two steps without a unique constraint",
		"concurrent copies (PayPal's retries racing a slow ack) credit twice", []string{"PP-CONCURRENT-COPIES"}},
	{"utf8-names", "decodes windows-1252 names as UTF-8 in what it stores",
		"customer names are mangled (J\uFFFDrg) in records and receipts", []string{"PP-CHARSET-NAME"}},
	{"paydo-no-allowlist", "applies PayDo notifications from any address",
		"PayDo IPNs carry no signature: anyone can post a fake accepted checkout", []string{"PD-ALLOWLIST", "PD-XFF-SPOOF"}},
	{"paydo-first-status-wins", "keeps the first status PayDo reports",
		"a checkout that failed first and then succeeded is never credited", []string{"PD-TRANSFER-FAILED-THEN-SUCCESS", "PD-CHECKOUT-FAILED-THEN-SUCCESS", "PD-PENDING"}},
	{"paydo-trust-xff", "believes X-Forwarded-For from any peer",
		"a stranger sets X-Forwarded-For to PayDo's address and gets through the allowlist", []string{"PD-XFF-SPOOF"}},
}

// All lists the mutants, by name.
func All() []Mutant {
	out := append([]Mutant(nil), all...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns a mutant by name.
func Lookup(name string) (Mutant, bool) {
	for _, m := range all {
		if m.Name == name {
			return m, true
		}
	}
	return Mutant{}, false
}
