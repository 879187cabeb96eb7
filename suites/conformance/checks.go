// Package conformance is the IPN conformance suite a team runs against its
// own listener: every check is a value (ID, one MUST or SHOULD sentence,
// level, provider, labels, the bundled scenario it runs), registered once
// and run from three entry points: the `ipnlab conform` binary, Run(t, cfg)
// from a Go test, and Specs(cfg) inside someone's Ginkgo suite.
//
// Protocol checks are judged from what the emulator recorded alone (acks,
// postbacks, verdicts): the listener needs no changes. Business checks
// read the listener's probe API (docs/probe.md).
package conformance

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ipnlab/ipnlab/probe"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
)

// Level says what a check needs from the listener.
type Level string

// Levels.
const (
	Protocol Level = "protocol" // the emulator's records only
	Business Level = "business" // the listener's probe too
)

// Check is one conformance requirement.
type Check struct {
	ID          string   `json:"id"`
	Requirement string   `json:"requirement"` // one MUST or SHOULD sentence
	Level       Level    `json:"level"`
	Provider    string   `json:"provider"`
	Labels      []string `json:"labels"`
	Scenario    string   `json:"scenario"` // in scenarios/catalog
	// Needs are the facts beyond money its probe must answer: a probe that
	// does not declare them skips the check, saying so.
	Needs []probe.Fact `json:"needs,omitempty"`
	// Exclusive checks change what their provider's other checks see (a
	// signing key rotated): they run alone, after the others.
	Exclusive bool `json:"exclusive,omitempty"`
	// Steps, if set, is the scenario the check runs, for a check of a
	// team's own (Register) whose scenario is not bundled; Scenario is
	// then its name.
	Steps *scenarios.Scenario `json:"-"`
}

// scenario is the scenario c runs: its own, or the bundled one it names.
func (c Check) scenario() (*scenarios.Scenario, error) {
	if c.Steps != nil {
		return c.Steps, nil
	}
	return catalog.Get(c.Scenario)
}

// Required reports whether the check is a MUST: a failed SHOULD is
// reported but does not fail the run.
func (c Check) Required() bool { return strings.Contains(c.Requirement, " MUST ") }

// ScenarioOf is the bundled scenario that judges check id ("" if id is no
// check's): wherever a scenario name is taken, a check ID is too.
func ScenarioOf(id string) string {
	c, _ := Lookup(id)
	if c.Steps != nil {
		return "" // not bundled: ipnlab run cannot name it
	}
	return c.Scenario
}

// HasLabel reports whether the check carries label.
func (c Check) HasLabel(label string) bool { return slices.Contains(c.Labels, label) }

var (
	registryMu sync.RWMutex
	registry   = map[string]Check{}
	// providerRank orders the providers' checks: by the order their first
	// check was registered (the built-ins' first), then any later one.
	providerRank = map[string]int{}
)

// Errors Register returns.
var (
	ErrDuplicateCheck = errors.New("a check with this ID is registered")
	ErrInvalidCheck   = errors.New("invalid check")
)

// Register adds a check of a team's own to the suite: conform's runs,
// Run and Specs judge it as they judge the bundled ones, in their order
// (after the built-ins of its level and provider). It needs an ID no
// other check has, one MUST or SHOULD sentence, a level, a provider,
// and a scenario: Steps, or the name of a bundled one. unregister takes
// it out again (a test that registers one for itself).
func Register(c Check) (unregister func(), err error) {
	if err := validCheck(c); err != nil {
		return nil, err
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[c.ID]; dup {
		return nil, fmt.Errorf("register %s: %w", c.ID, ErrDuplicateCheck)
	}
	c.Labels = append(slices.Clone(c.Labels), c.Provider, string(c.Level))
	registry[c.ID] = c
	if _, ok := providerRank[c.Provider]; !ok {
		providerRank[c.Provider] = len(providerRank)
	}
	return func() {
		registryMu.Lock()
		defer registryMu.Unlock()
		delete(registry, c.ID)
	}, nil
}

func validCheck(c Check) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("register %q: %w: %s", c.ID, ErrInvalidCheck, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == "" || strings.ContainsAny(c.ID, " ,"):
		return bad("an ID without spaces or commas is required (focus lists IDs with commas)")
	case !strings.Contains(c.Requirement, " MUST ") && !strings.Contains(c.Requirement, " SHOULD "):
		return bad("the requirement needs one MUST or SHOULD sentence: %q", c.Requirement)
	case c.Level != Protocol && c.Level != Business:
		return bad("level %q: want %s or %s", c.Level, Protocol, Business)
	case c.Provider == "":
		return bad("a provider is required")
	case c.Steps == nil && c.Scenario == "":
		return bad("a scenario is required: Steps, or a bundled scenario's name")
	}
	if _, err := c.scenario(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// register adds the bundled checks; a mistake in them is the program's.
func register(cs ...Check) {
	for _, c := range cs {
		if _, err := Register(c); err != nil {
			panic("conformance: " + err.Error())
		}
	}
}

// Checks lists every check: protocol before business, then by provider
// (in the order providers were first registered) and ID: a strict order
// for any number of providers.
func Checks() []Check {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Check, 0, len(registry))
	for _, c := range registry {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Level != b.Level {
			return a.Level == Protocol
		}
		if ra, rb := providerRank[a.Provider], providerRank[b.Provider]; ra != rb {
			return ra < rb
		}
		return a.ID < b.ID
	})
	return out
}

// Lookup returns a check by ID.
func Lookup(id string) (Check, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	c, ok := registry[id]
	return c, ok
}

func paypalProtocol(id, req, scenario string, labels ...string) Check {
	return Check{ID: id, Requirement: req, Level: Protocol, Provider: "paypal", Labels: labels, Scenario: scenario}
}

func paypalBusiness(id, req, scenario string, labels ...string) Check {
	return Check{ID: id, Requirement: req, Level: Business, Provider: "paypal", Labels: labels, Scenario: scenario}
}

// needing marks a check as judging what a probe answers beyond money.
func needing(c Check, facts ...probe.Fact) Check {
	c.Needs = facts
	return c
}

func paydoCheck(level Level, id, req, scenario string, labels ...string) Check {
	return Check{ID: id, Requirement: req, Level: level, Provider: "paydo", Labels: labels, Scenario: scenario}
}

func init() {
	register(
		paypalProtocol("PP-ACK-GENUINE", "A listener MUST answer a genuine IPN with HTTP 200 within PayPal's ack window.", "paypal-ack-genuine", "ack"),
		paypalProtocol("PP-ACK-UNKNOWN-KIND", "A listener MUST answer 200 to a message of a kind it does not handle, or PayPal resends it for days.", "paypal-ack-unknown-kind", "ack"),
		paypalProtocol("PP-ACK-OTHER-RECEIVER", "A listener MUST answer 200 to a message for another merchant (and ignore it).", "paypal-ack-other-receiver", "ack"),
		paypalProtocol("PP-ACK-UNKNOWN-PARENT", "A listener MUST answer 200 to a refund whose parent payment it has not seen.", "paypal-ack-unknown-parent", "ack", "refund"),
		paypalProtocol("PP-ACK-SLOW-VERIFIER", "A listener MUST answer 200 within the ack window even when the verifier is slower than that window.", "paypal-ack-slow-verifier", "ack", "slow"),
		paypalProtocol("PP-POSTBACK-SENT", "A listener MUST post each message back to the configured verify URL.", "paypal-postback-sent", "postback"),
		paypalProtocol("PP-POSTBACK-USER-AGENT", "A listener SHOULD send a descriptive User-Agent with its postbacks.", "paypal-user-agent", "postback"),
		paypalProtocol("PP-VERIFY-ASCII", "A listener MUST post back a plain ASCII message so that it is VERIFIED.", "paypal-verify-ascii", "postback"),
		paypalProtocol("PP-VERIFY-WINDOWS-1252", "A listener MUST post back a windows-1252 message byte for byte (accented names included) so that it is VERIFIED.", "paypal-verify-windows-1252", "postback", "charset"),
		paypalProtocol("PP-VERIFY-UTF-8", "A listener MUST post back a UTF-8 message so that it is VERIFIED.", "paypal-verify-utf-8", "postback", "charset"),
		paypalProtocol("PP-VERIFY-WINDOWS-1255", "A listener MUST post back a message in a non-Latin charset (windows-1255) so that it is VERIFIED.", "paypal-verify-windows-1255", "postback", "charset"),
		paypalProtocol("PP-VERIFY-EMPTY-FIELDS", "A listener MUST keep empty fields in the postback.", "paypal-verify-empty-fields", "postback"),
		paypalProtocol("PP-VERIFY-PLUS", "A listener MUST keep '+' (space) and '%2B' (plus) apart in the postback.", "paypal-verify-plus", "postback", "encoding"),
		paypalProtocol("PP-VERIFY-CRLF", "A listener MUST keep CRLF line breaks inside values in the postback.", "paypal-verify-crlf", "postback", "encoding"),
		paypalProtocol("PP-VERIFY-EQUALS-AMPERSAND", "A listener MUST post back values containing '=' and '&' unchanged.", "paypal-verify-equals-ampersand", "postback", "encoding"),
		paypalProtocol("PP-VERIFY-ENDPOINT", "A listener MUST post each message back to the verify host of its environment: sandbox messages (test_ipn=1) to ipnpb.sandbox.paypal.com, live ones to ipnpb.paypal.com.", "paypal-verify-endpoint", "postback", "intercept"),
		paypalProtocol("PP-VERIFY-ADAPTIVE", "A listener MUST keep Adaptive Payments keys such as transaction[0].amount in the postback.", "paypal-verify-adaptive", "postback", "adaptive"),
		paypalProtocol("PP-OUTAGE-UNREACHABLE", "A listener MUST get a message verified when the verifier cannot be reached: by its own retry, or by not acknowledging it so that PayPal resends.", "paypal-outage-unreachable", "postback", "outage"),
		paypalProtocol("PP-OUTAGE-503-PAGE", "A listener MUST get a message verified when the verifier answers 503 with an HTML error page: by its own retry, or by not acknowledging it so that PayPal resends.", "paypal-outage-503-page", "postback", "outage"),
		paypalProtocol("PP-OUTAGE-200-PAGE", "A listener MUST NOT settle on an HTML page answered with HTTP 200 (a proxy's error page): it MUST get the message verified by its own retry, or by not acknowledging it so that PayPal resends.", "paypal-outage-200-page", "postback", "outage"),
		paypalProtocol("PP-OUTAGE-500-VERIFIED", "A listener MUST NOT settle on VERIFIED answered with HTTP 500: it MUST ask again, or leave the message unacknowledged so that PayPal resends.", "paypal-outage-500-verified", "postback", "outage"),
		paypalProtocol("PP-NO-FLOOD", "A listener SHOULD NOT post a message back again after a definitive INVALID.", "paypal-no-flood", "postback"),

		paypalBusiness("PP-CREDIT-ONCE", "A listener MUST credit a verified Completed payment exactly once, for its gross.", "paypal-credit-once", "ledger"),
		paypalBusiness("PP-DUPLICATE-RESEND", "A listener MUST credit a payment once when the same message is delivered again.", "paypal-duplicate-resend", "ledger", "duplicate"),
		paypalBusiness("PP-CONCURRENT-COPIES", "A listener MUST credit a payment once when ten copies arrive at the same instant.", "paypal-concurrent-copies", "ledger", "duplicate"),
		paypalBusiness("PP-PENDING-ECHECK", "A listener MUST NOT credit an eCheck while Pending, and MUST credit it once when Completed.", "paypal-pending-echeck", "ledger", "pending"),
		paypalBusiness("PP-PENDING-MULTI-CURRENCY", "A listener MUST NOT credit a multi-currency payment while Pending, and MUST credit it once when Completed.", "paypal-pending-multi-currency", "ledger", "pending"),
		paypalBusiness("PP-PENDING-REVIEW", "A listener MUST NOT credit a payment under review, and MUST credit it once when Completed.", "paypal-pending-review", "ledger", "pending"),
		paypalBusiness("PP-FRAUD-ACCEPTED", "A listener MUST NOT credit a payment pended by fraud filters, and MUST credit it once when it completes.", "paypal-pending-fraud-accepted", "ledger", "pending", "fraud"),
		paypalBusiness("PP-FRAUD-DENIED", "A listener MUST NOT credit a fraud-filter pend that ends Denied.", "paypal-pending-fraud-denied", "ledger", "pending", "fraud"),
		paypalBusiness("PP-PENDING-FAILED", "A listener MUST NOT credit a Pending eCheck that ends Failed.", "paypal-pending-echeck-failed", "ledger", "pending"),
		paypalBusiness("PP-REVIEW-REVERSED", "A listener MUST NOT credit a payment under review that PayPal reverses, and MUST NOT debit that reversal.", "paypal-pending-review-reversed", "ledger", "pending"),
		paypalBusiness("PP-INVALID-NEVER-CREDITS", "A listener MUST NOT credit a message the verifier answered INVALID.", "paypal-never-credit-invalid", "ledger", "verification"),
		paypalBusiness("PP-STATUS500-NEVER-CREDITS", "A listener MUST NOT treat VERIFIED with HTTP 500 as verified.", "paypal-never-credit-status500", "ledger", "verification"),
		paypalBusiness("PP-NEWLINE-NEVER-CREDITS", "A listener MUST NOT treat \"VERIFIED\\n\" as verified: only exactly VERIFIED is.", "paypal-never-credit-newline", "ledger", "verification"),
		paypalBusiness("PP-GARBAGE-NEVER-CREDITS", "A listener MUST NOT treat an HTML error page from the verifier as verified.", "paypal-never-credit-garbage", "ledger", "verification"),
		paypalBusiness("PP-OTHER-RECEIVER-NEVER-CREDITS", "A listener MUST NOT credit a payment to another merchant (receiver_email/receiver_id).", "paypal-never-credit-other-receiver", "ledger"),
		paypalBusiness("PP-CURRENCY-NEVER-CREDITS", "A listener MUST NOT credit a payment in a currency it does not accept.", "paypal-never-credit-currency", "ledger", "prepaid"),
		paypalBusiness("PP-REFUND-FULL", "A listener MUST debit a full refund (parent_txn_id) from the payment it refunds.", "paypal-refund-full", "ledger", "refund"),
		paypalBusiness("PP-REFUND-PARTIAL", "A listener MUST debit each of several partial refunds of one payment.", "paypal-refund-partial", "ledger", "refund"),
		paypalBusiness("PP-DUPLICATE-REFUND", "A listener MUST debit a refund once when its message is delivered more than once.", "paypal-duplicate-refund", "ledger", "refund", "duplicate"),
		paypalBusiness("PP-CHARGEBACK", "A listener MUST debit a chargeback reversal and MUST credit back a canceled reversal.", "paypal-chargeback", "ledger", "chargeback"),
		paypalBusiness("PP-OUT-OF-ORDER-COMPLETED", "A listener MUST credit a payment once when its Completed arrives before its Pending: the late Pending takes nothing back.", "paypal-out-of-order-completed", "ledger", "order"),
		paypalBusiness("PP-COMPLETED-AFTER-LATE-PENDING", "A listener MUST credit a payment once when its Completed is delivered again after a late or resent Pending.", "paypal-completed-after-late-pending", "ledger", "duplicate", "order"),
		paypalBusiness("PP-OUT-OF-ORDER-REFUND", "A listener MUST end with nothing credited when a refund arrives before its payment.", "paypal-out-of-order-refund", "ledger", "order", "refund"),
		paypalBusiness("PP-MASSPAY-ITEMS", "A listener MUST credit a Mass Pay it receives to the customer who sent it, item by item, and MUST NOT credit the receivers of its own Mass Pay (payouts).", "paypal-masspay-items", "ledger", "masspay", "prepaid"),
		needing(paypalBusiness("PP-CHARSET-NAME", "A listener MUST decode names in the charset the message names (windows-1252 is not ISO-8859-1: Š, œ and ’ survive; a windows-1255 name stays Hebrew).", "paypal-charset-name", "charset"), probe.PayerNames),
		needing(paypalBusiness("PP-ORDER-PAID-ONCE", "A listener MUST mark an order paid, for its amount, when a Completed payment names it with its exact amount and currency, and MUST NOT count a second payment for the same order.", "paypal-order-paid-once", "orders", "duplicate"), probe.Orders),
		needing(paypalBusiness("PP-ORDER-SHORT", "A listener MUST NOT mark an order paid by a payment short of its amount.", "paypal-order-short", "orders"), probe.Orders),
		needing(paypalBusiness("PP-ORDER-WRONG-CURRENCY", "A listener MUST NOT mark an order paid by a payment of its amount in another currency.", "paypal-order-wrong-currency", "orders"), probe.Orders),
		paypalBusiness("PP-ORDER-UNKNOWN", "A listener MUST NOT move money for a payment that names an order it does not have.", "paypal-order-unknown", "orders"),
		needing(paypalBusiness("PP-RECORD-FINAL-STATUS", "A listener SHOULD record the status each payment ended with, whether or not it moved money: Denied, Failed, a reversal's Reversed, and Completed when its Pending arrives late.", "paypal-record-final-status", "records", "pending"), probe.Statuses),
		needing(paypalBusiness("PP-RECORD-HOLD", "A listener SHOULD record why a payment it did not credit waits: a Pending eCheck, a fraud-filter pend, a payment review, a multi-currency payment.", "paypal-record-hold", "records", "pending"), probe.Holds),

		paydoCheck(Protocol, "PD-ACK", "A PayDo listener MUST answer a notification with HTTP 200, or PayDo resends it for 24 hours.", "paydo-ack", "ack"),
		paydoCheck(Business, "PD-DUPLICATE", "A PayDo listener MUST apply an identical duplicate once.", "paydo-duplicate", "ledger", "duplicate"),
		paydoCheck(Business, "PD-TRANSFER-FAILED-THEN-SUCCESS", "A PayDo listener MUST apply a transfer once when it is reported Rejected then Accepted.", "paydo-transfer-failed-then-success", "ledger"),
		paydoCheck(Business, "PD-CHECKOUT-FAILED-THEN-SUCCESS", "A PayDo listener MUST credit a checkout once when it is reported failed then accepted.", "paydo-checkout-failed-then-success", "ledger"),
		paydoCheck(Business, "PD-PENDING", "A PayDo listener MUST NOT credit a pending checkout until it is accepted.", "paydo-pending", "ledger", "pending"),
		paydoCheck(Business, "PD-ALLOWLIST", "A PayDo listener MUST NOT apply a notification from an address that is not PayDo's.", "paydo-allowlist", "ledger", "allowlist"),
		paydoCheck(Business, "PD-XFF-SPOOF", "A PayDo listener MUST NOT take X-Forwarded-For from a peer that is not a trusted proxy: a stranger can claim PayDo's address.", "paydo-xff-spoof", "ledger", "allowlist"),
		paydoCheck(Business, "PD-AMOUNT-STRING", "A PayDo listener MUST read an amount sent as a string exactly.", "paydo-amount-string", "ledger"),
		paydoCheck(Business, "PD-AMOUNT-NUMBER", "A PayDo listener MUST read an amount sent as a number exactly.", "paydo-amount-number", "ledger"),
	)
}
