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

// Send sends a notification to the listener under test.
type Send struct {
	at       `yaml:"-"`
	As       string         `yaml:"as"`       // name for references: ${as.txn_id}
	Provider string         `yaml:"provider"` // default: the scenario's
	Kind     string         `yaml:"kind"`     // fixture kind (PayPal) or transfer/checkout (PayDo)
	From     string         `yaml:"from"`     // a generated lifecycle step, "alias.step", sent byte for byte
	Params   map[string]any `yaml:"params"`   // pinned values (see ipnlab send --param)
	Set      map[string]any `yaml:"set"`      // field overrides (PayPal: name: text; PayDo: path: JSON value)
	Unset    []string       `yaml:"unset"`    // PayPal fields to remove
	Charset  string         `yaml:"charset"`
	Flavour  string         `yaml:"flavour"`
	Copies   int            `yaml:"copies"`   // identical copies, delivered concurrently
	Raw      string         `yaml:"raw"`      // PayPal body sent byte for byte
	Fault    *Fault         `yaml:"fault"`    // a verifier fault for this message's postbacks
	Then     []int          `yaml:"then"`     // PayDo follow-up statuses for the same transaction
	Interval string         `yaml:"interval"` // PayDo: clock time between follow-ups
	Source   string         `yaml:"source"`   // PayDo: the local IP it leaves from ("stranger" for the configured stranger)
	// ForwardedFor is PayDo's X-Forwarded-For ("paydo" for the configured PayDo address).
	ForwardedFor string `yaml:"forwarded_for"`
	Seed         uint64 `yaml:"seed"`
}

// Generate makes a lifecycle's messages without sending them, so that steps
// can send them in any order with `from`.
type Generate struct {
	at        `yaml:"-"`
	As        string         `yaml:"as"`
	Lifecycle string         `yaml:"lifecycle"`
	Params    map[string]any `yaml:"params"`
	Charset   string         `yaml:"charset"`
	Seed      uint64         `yaml:"seed"`
	steps     []string       // the lifecycle's step names, found at load time
}

// Resend resends a message by hand (PayPal adds resend=true).
type Resend struct {
	at      `yaml:"-"`
	Message string `yaml:"message"`
}

// Fault makes the verifier misbehave for the next Count postbacks (0: until
// cleared), for one message or for all.
type Fault struct {
	at      `yaml:"-"`
	Kind    string `yaml:"kind"`
	Count   int    `yaml:"count"`
	Delay   string `yaml:"delay"`
	Message string `yaml:"message"` // an alias; empty for every message
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
	Down bool `yaml:"down"`
}

// Advance moves the emulator's manual clock.
type Advance struct {
	at `yaml:"-"`
	By string `yaml:"by"` // 90s, 15m, 96h, 4d
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
	Message      string `yaml:"message"`
	Acked        *bool  `yaml:"acked"`         // acknowledged with a 200
	AckStatus    int    `yaml:"ack_status"`    // HTTP status of its last attempt
	History      string `yaml:"history"`       // History status: Sent, Retrying, Failed ...
	Verdict      string `yaml:"verdict"`       // the last postback's: VERIFIED, INVALID, or none
	AnyVerified  bool   `yaml:"any_verified"`  // some postback of it was VERIFIED
	PostbacksMax int    `yaml:"postbacks_max"` // no more postbacks than this
	UserAgent    bool   `yaml:"user_agent"`    // every postback carried a User-Agent
	VerifyURL    bool   `yaml:"verify_url"`    // it was posted back to the emulator's verifier at all
	Within       string `yaml:"within"`        // how long to wait for a postback (wall time, default 5s)

	// About a transaction, through the probe.
	Txn       string `yaml:"txn"`      // a txn id, usually a reference: ${pay.txn_id}
	Provider  string `yaml:"provider"` // default: the scenario's
	Effects   *int   `yaml:"effects"`  // how many ledger effects (0 also when the probe has no such transaction)
	Net       string `yaml:"net"`      // net of the effects in Currency
	Currency  string `yaml:"currency"` // default USD (PayPal), EUR (PayDo)
	TxnStatus string `yaml:"txn_status"`
	Held      *bool  `yaml:"held"`
	PayerName string `yaml:"payer_name"`
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
