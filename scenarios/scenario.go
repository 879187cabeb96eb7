// Package scenarios is ipnlab's declarative test cases: named steps that
// send notifications (duplicates, lifecycles, out of order), break the
// verifier or the listener, move the virtual clock, and state what must be
// true (acks, postback verdicts, the listener's probe). Scenarios are YAML,
// checked completely when loaded (every unknown field, kind, reference or
// value is an error naming the file, the line and the valid choices), and
// run by Run against an in-process emulator. No Ginkgo here: suites build
// on it.
package scenarios

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
)

// Scenario is one case.
type Scenario struct {
	Name        string
	Description string
	Provider    string // paypal or paydo: the default for its steps
	// Values is how generated values are drawn: neutral (the default:
	// nothing a listener can trip on but what a step sets) or realistic
	// (accented names, multi-line streets, empty fields, as PayPal sends).
	Values string
	File   string // where it was loaded from
	Steps  []Step
}

// How a scenario's generated values are drawn.
const (
	ValuesNeutral   = "neutral"
	ValuesRealistic = "realistic"
)

// Step is one action or expectation of a scenario: a *Send, *Generate,
// *Resend, *Fault, *ClearFault, *Outage, *Advance or *Expect. A step
// built in Go runs as a parsed one does; only its Line is 0.
type Step interface {
	// Key is the step's key in a scenario file: send, generate, resend,
	// fault, clear_fault, outage, advance, expect.
	Key() string
	// Line is where the step is in its file (0: built in Go).
	Line() int
	run(ctx context.Context, r *runner) error
}

// at is where a parsed step was.
type at struct{ line int }

func (a at) Line() int { return a.line }

func (*Send) Key() string       { return "send" }
func (*Generate) Key() string   { return "generate" }
func (*Resend) Key() string     { return "resend" }
func (*Fault) Key() string      { return "fault" }
func (*ClearFault) Key() string { return "clear_fault" }
func (*Outage) Key() string     { return "outage" }
func (*Advance) Key() string    { return "advance" }
func (*Expect) Key() string     { return "expect" }

// The step types' fields carry their documentation in a doc tag: the
// loader validates against these types, and Reference (docs/scenarios.md)
// is generated from them, so the two cannot drift apart.

// Send sends a notification to the listener under test.
type Send struct {
	at       `yaml:"-"`
	As       string         `yaml:"as" doc:"a name for this message, for later steps and references: ${NAME.txn_id}"`
	Provider string         `yaml:"provider" doc:"paypal or paydo (or a plug-in's name); default: the scenario's"`
	Kind     string         `yaml:"kind" doc:"what to generate: a PayPal kind (default web_accept), or transfer or checkout (PayDo, required)"`
	From     string         `yaml:"from" doc:"PayPal: send a generated lifecycle's step byte for byte: NAME.STEP"`
	Params   map[string]any `yaml:"params" doc:"pin generated values (the params below); strings may hold references"`
	Set      map[string]any `yaml:"set" doc:"override fields: PayPal name: text (keeps its place or appends); PayDo path: JSON value"`
	Unset    []string       `yaml:"unset" doc:"PayPal: fields to remove"`
	Charset  string         `yaml:"charset" doc:"PayPal: the message's charset (default windows-1252), e.g. UTF-8, windows-1255"`
	Flavour  string         `yaml:"flavour" doc:"PayPal: paypal (default) or simulator (the IPN Simulator's quirks)"`
	Copies   int            `yaml:"copies" doc:"identical copies, delivered together: each connects and waits, its last byte unsent, until all are ready (1 to 1000, default 1)"`
	Order    string         `yaml:"order" doc:"PayPal, a shop that keeps orders: new (an order from the run's order source, --orders), an earlier send's name (the same order: paid twice), or unknown (an order the shop does not have); the message names it in the field the source says, for its amount and currency. Without it, with an order source, every payment names a new order"`
	Pay      string         `yaml:"pay" doc:"with order: how the payment pays it: exact (default), short (1.00 less, or half of an order of 1.00 or less), wrong_currency (its amount, in another currency)"`
	Bursts   int            `yaml:"bursts" doc:"PayPal, with copies: send this many payments one after another, each as its copies delivered together, so that a race is caught on purpose, not by luck; an expectation about ${NAME.txn_id} judges every burst's transaction (1 to 100, default 1)"`
	Raw      string         `yaml:"raw" doc:"PayPal: a body sent byte for byte, instead of a generated one"`
	Fault    *Fault         `yaml:"fault" doc:"a verifier fault for this message's postbacks only: kind, count, delay (see the fault step)"`
	Then     []int          `yaml:"then" doc:"PayDo: follow-up statuses (transfer) or states (checkout) for the same transaction"`
	Interval string         `yaml:"interval" doc:"PayDo: clock time between follow-ups, e.g. 10m (default: right after)"`
	Source   string         `yaml:"source" doc:"PayDo: the local IP it leaves from; stranger for the configured stranger address"`
	// ForwardedFor is PayDo's X-Forwarded-For.
	ForwardedFor string `yaml:"forwarded_for" doc:"PayDo: the X-Forwarded-For it carries; paydo for PayDo's configured address"`
	Seed         uint64 `yaml:"seed" doc:"seed for this message's values (default: derived from the run's seed)"`
}

// Generate makes a lifecycle's messages without sending them, so that steps
// can send them in any order with `from`.
type Generate struct {
	at        `yaml:"-"`
	As        string         `yaml:"as" doc:"required: the name steps send its messages by, with from: NAME.STEP"`
	Lifecycle string         `yaml:"lifecycle" doc:"which lifecycle (below); its steps are named as listed there"`
	Params    map[string]any `yaml:"params" doc:"pin generated values (PayPal params, below)"`
	Charset   string         `yaml:"charset" doc:"the messages' charset (default windows-1252)"`
	Seed      uint64         `yaml:"seed" doc:"seed for the messages' values"`
	steps     []string       // the lifecycle's step names, found at load time
}

// Resend resends a message by hand (PayPal adds resend=true).
type Resend struct {
	at      `yaml:"-"`
	Message string `yaml:"message" doc:"required: the name of an earlier send"`
}

// Fault makes the verifier misbehave for the next Count postbacks (0: until
// cleared), for one message or for all.
type Fault struct {
	at      `yaml:"-"`
	Kind    string `yaml:"kind" doc:"how the verifier misbehaves (fault kinds, below)"`
	Count   int    `yaml:"count" doc:"only the next N postbacks (default 0: until clear_fault)"`
	Delay   string `yaml:"delay" doc:"slow: how long the answer takes, e.g. 35s, or ack+5s for 5 s past the ack window"`
	Message string `yaml:"message" doc:"only this earlier send's postbacks (default: every message's)"`
}

// parseDelay reads Delay: a duration, or "ack+D" for D past the
// emulator's ack window (ackRelative).
func (f *Fault) parseDelay() (d time.Duration, ackRelative bool, err error) {
	s, ackRelative := strings.CutPrefix(f.Delay, "ack+")
	if s == "" {
		return 0, ackRelative, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil {
		return 0, ackRelative, fmt.Errorf("fault delay %q: %v", s, err)
	}
	return d, ackRelative, nil
}

// ClearFault clears the global verifier fault.
type ClearFault struct {
	at `yaml:"-"`
}

// Outage takes the listener down (every delivery fails) or brings it back.
type Outage struct {
	at   `yaml:"-"`
	Down bool `yaml:"down" doc:"true: every delivery to the listener fails from now; false: it is reachable again"`
}

// Advance moves the emulator's manual clock.
type Advance struct {
	at `yaml:"-"`
	By string `yaml:"by" doc:"how far: 90s, 15m, 96h, 4d; returns when the deliveries then due are done"`
}

// Duration is how far the step moves the clock (steps built in Go are
// read as those loaded from YAML are).
func (a *Advance) Duration() (time.Duration, error) { return clock.ParseDuration(a.By) }

// Expect states what must be true. Message expectations are judged from
// the emulator's records (protocol level); txn expectations from the
// listener's probe (business level).
type Expect struct {
	at `yaml:"-"`
	// About a message (an alias).
	Message      string `yaml:"message" doc:"the earlier send the message expectations are about"`
	Acked        *bool  `yaml:"acked" doc:"it was (true) or was not (false) acknowledged with HTTP 200"`
	AckStatus    int    `yaml:"ack_status" doc:"the HTTP status of its last delivery attempt"`
	History      string `yaml:"history" doc:"its IPN History status: Queued, Sent, Retrying, Failed or Held"`
	Verdict      string `yaml:"verdict" doc:"its last postback's verdict: VERIFIED, INVALID, or none (never posted back)"`
	AnyVerified  bool   `yaml:"any_verified" doc:"some postback of it was VERIFIED"`
	PostbacksMax int    `yaml:"postbacks_max" doc:"it was posted back no more than this many times"`
	NoFlood      bool   `yaml:"no_flood" doc:"it was posted back with a definitive answer (VERIFIED or INVALID) no more often than it reached the listener, counting its copies and resends of the same bytes: a retry is free only after an answer that was none (an error page, a dropped connection)"`
	UserAgent    bool   `yaml:"user_agent" doc:"every postback of it carried a User-Agent"`
	VerifyURL    bool   `yaml:"verify_url" doc:"it was posted back to the emulator's verifier at all"`
	Endpoint     bool   `yaml:"endpoint" doc:"it was posted back to its environment's verify host (test_ipn=1: ipnpb.sandbox.paypal.com, else ipnpb.paypal.com); skipped when it was posted to the emulator's own URL, not to PayPal's hosts (--intercept)"`
	Within       string `yaml:"within" doc:"how long to wait for a postback, wall time (default: the run's --postback-wait)"`
	// Own are judged by the message's provider (OwnExpecter).
	Own map[string]string `yaml:"own" doc:"expectations the message's provider judges itself, by name, e.g. {signed: per_attempt}: a plug-in provider's own (it implements scenarios.OwnExpecter); the built-ins have none"`

	// About a transaction, through the probe.
	Txn       string `yaml:"txn" doc:"the transaction the txn expectations are about, usually a reference: ${pay.txn_id}"`
	Provider  string `yaml:"provider" doc:"whose transaction: paypal or paydo (default: the scenario's)"`
	Effects   *int   `yaml:"effects" doc:"how many ledger effects it has (0 also when the probe does not know it)"`
	Net       string `yaml:"net" doc:"the net of its effects in currency, e.g. 0.00 or -25.00"`
	Currency  string `yaml:"currency" doc:"the currency net is in (default USD for PayPal, EUR for PayDo)"`
	TxnStatus string `yaml:"txn_status" doc:"the status the listener records for it, e.g. Completed, Pending"`
	Held      *bool  `yaml:"held" doc:"it is (true) or is not (false) held for review"`
	PayerName string `yaml:"payer_name" doc:"the payer's name as the listener stored it (charset checks)"`

	// About an order, through the probe (a shop that keeps orders).
	Order    string `yaml:"order" doc:"the earlier send whose order the order expectations are about"`
	Paid     *bool  `yaml:"paid" doc:"the shop marked the order paid (true) or not (false)"`
	Received string `yaml:"received" doc:"what the shop counted as paid for the order, in the order's currency, e.g. 25.00 or 0.00"`

	// About a customer's balances, through the probe.
	Customer      string            `yaml:"customer" doc:"the customer the balance expectations are about: the listener's id (C1), not a reference, because its balances are read when the scenario starts"`
	BalanceChange map[string]string `yaml:"balance_change" doc:"how far each of the customer's balances moved since the scenario started, by currency, e.g. {USD: \"70.00\"}; a currency not named must not have moved (needs a probe that reads balances)"`
}

// wait is Within read (0 when empty: the run's own window applies).
func (e *Expect) wait() (time.Duration, error) {
	if e.Within == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(e.Within)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("within %q: want a duration such as 5s", e.Within)
	}
	return d, nil
}
