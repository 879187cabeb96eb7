// Package api holds the control API's wire types: what the emulator's
// HTTP API takes and answers, as Go values. The server, the Go client, the
// CLI and the scenarios use these; a client imports this package, not the
// emulator (no console, no fixtures, no journal store).
package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// Seed is a fixture seed. The API writes it as a JSON string, since a
// 64-bit number loses digits in JavaScript (the console would show a seed
// that regenerates another message), and reads a string or a number.
type Seed uint64

// MarshalJSON writes the seed as a decimal string.
func (s Seed) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(s), 10) + `"`), nil
}

// UnmarshalJSON reads a decimal string or a JSON number.
func (s *Seed) UnmarshalJSON(b []byte) error {
	text := strings.Trim(string(b), `"`)
	if text == "" || text == "null" {
		*s = 0
		return nil
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return fmt.Errorf("seed %s: want a whole number from 0 to %d, as a string or a number", b, uint64(math.MaxUint64))
	}
	*s = Seed(n)
	return nil
}

// LifecycleRequest asks for a fixture lifecycle to be sent, each step at
// its offset on the clock (a chargeback spans weeks: use a manual or scaled
// clock to see it through).
type LifecycleRequest struct {
	Name      string `json:"name"`
	Params    Params `json:"params,omitempty"`
	Charset   string `json:"charset,omitempty"`
	Seed      Seed   `json:"seed,omitempty"`
	Neutral   bool   `json:"neutral,omitempty"` // see SendRequest.Neutral
	NotifyURL string `json:"notify_url,omitempty"`
}

// PlannedStep is one step of a lifecycle and when it is sent.
type PlannedStep struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	TxnID     string    `json:"txn_id,omitempty"`
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id,omitempty"` // once sent
}

// LifecyclePlan is what SendLifecycle scheduled.
type LifecyclePlan struct {
	Lifecycle string        `json:"lifecycle"`
	Seed      Seed          `json:"seed"`
	Steps     []PlannedStep `json:"steps"`
}

// ParseClockMode reads a clock mode as serve --clock takes it: "real",
// "manual" or "scale:N" (N in (0, 1e9], e.g. "scale:3600" runs an hour
// per second). It returns how fast the clock runs against wall time: 1
// for real, N for scale:N, 0 for manual (it moves only when told).
func ParseClockMode(mode string) (float64, error) {
	switch {
	case mode == "real":
		return 1, nil
	case mode == "manual":
		return 0, nil
	case strings.HasPrefix(mode, "scale:"):
		n, err := strconv.ParseFloat(strings.TrimPrefix(mode, "scale:"), 64)
		if err != nil || !(n > 0 && n <= 1e9) { // also refuses NaN
			return 0, fmt.Errorf("clock mode %q: scale must be a number in (0, 1e9]", mode)
		}
		return n, nil
	}
	return 0, fmt.Errorf("clock mode %q: want real, manual or scale:N", mode)
}

// ClockView is the clock as the API shows it.
type ClockView struct {
	Now     time.Time `json:"now"`
	Mode    string    `json:"mode"`
	Pending int       `json:"pending"` // callbacks waiting (manual clock only)
}

// Summary is the compact form of a message record in events and lists.
type Summary struct {
	ID       string    `json:"id"`
	Provider string    `json:"provider"`
	Kind     string    `json:"kind,omitempty"`
	TxnID    string    `json:"txn_id,omitempty"`
	Status   string    `json:"status"`
	URL      string    `json:"url"`
	Created  time.Time `json:"created"`
	Resent   bool      `json:"resent,omitempty"`
	// AttemptCount is how many deliveries were made (a MessageView lists
	// them in Attempts).
	AttemptCount int        `json:"attempts"`
	Retries      int        `json:"retries"`
	LastCode     int        `json:"last_status_code,omitempty"`
	NextAttempt  *time.Time `json:"next_attempt,omitempty"`
	AckedAt      *time.Time `json:"acked_at,omitempty"`
	// Outcome answers what a developer asks of every message: did the
	// listener get it and verify it?
	Outcome Outcome `json:"outcome"`
}

// OutcomeState is a message's outcome in one word.
type OutcomeState string

// The outcomes, from the best. A listener that verifies acknowledges too:
// Verified needs both; Undelivered is any message not acknowledged (yet),
// whatever its postbacks said.
const (
	Verified    OutcomeState = "verified"    // acknowledged with 200, and a postback was VERIFIED
	Delivered   OutcomeState = "delivered"   // acknowledged; the provider has no postback (PayDo)
	NoPostback  OutcomeState = "no_postback" // acknowledged, never posted back (yet)
	Invalid     OutcomeState = "invalid"     // acknowledged, posted back, INVALID (Rule says why)
	FaultOnly   OutcomeState = "fault"       // acknowledged; every postback met a verifier fault
	Undelivered OutcomeState = "undelivered" // not acknowledged (yet): retried, failed or held
)

// OutcomeStates lists the states, best first.
var OutcomeStates = []OutcomeState{Verified, Delivered, NoPostback, Invalid, FaultOnly, Undelivered}

// Outcome is a message's outcome: its state, the verdict that decided it
// and one sentence a person reads first.
type Outcome struct {
	State   OutcomeState `json:"state"`
	Verdict string       `json:"verdict,omitempty"` // VERIFIED or INVALID, of the postback that decided
	Rule    string       `json:"rule,omitempty"`    // INVALID's main rule
	Field   string       `json:"field,omitempty"`   // the field that differs, when one does
	Fault   string       `json:"fault,omitempty"`   // the verifier fault the last postback met
	// ConfirmedByLookup: a PayDo checkout the listener also looked up
	// (PayDo's status lookup found it), as PayDo advises.
	ConfirmedByLookup bool   `json:"confirmed_by_lookup,omitempty"`
	Summary           string `json:"summary"`
}

// OK reports whether the listener did all it must: acknowledged the
// message and, where the provider verifies, had it VERIFIED.
func (o Outcome) OK() bool { return o.State == Verified || o.State == Delivered }

// Settled reports whether the message's outcome will stay as it is unless
// someone acts: verified, INVALID, a verifier fault, delivered where the
// provider has no postback; or not acknowledged with no attempt coming by
// itself (the schedule is over, it is Held, or manualClock: the clock moves
// only when told). Acknowledged but not posted back is never settled: the
// listener may post back later.
func (v Summary) Settled(manualClock bool) bool {
	switch v.Outcome.State {
	case Verified, Delivered, Invalid, FaultOnly:
		return true
	case Undelivered:
		return v.NextAttempt == nil || manualClock
	}
	return false
}

// PayDoParams pins generated values of a PayDo message.
type PayDoParams struct {
	Amount         string          `json:"amount,omitempty"` // "25.00"
	Currency       string          `json:"currency,omitempty"`
	Status         int             `json:"status,omitempty"` // transfer status or checkout state
	Identifier     string          `json:"identifier,omitempty"`
	InvoiceID      string          `json:"invoice_id,omitempty"`
	TxID           string          `json:"txid,omitempty"`
	OrderID        string          `json:"order_id,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	AmountAsString bool            `json:"amount_as_string,omitempty"`
}

// PayDoRequest asks for PayDo notifications: one message (and Copies-1
// identical ones, delivered concurrently), then one per status in Then for
// the same transaction, each after the previous (Interval apart on the
// clock, or as soon as the previous was first delivered).
type PayDoRequest struct {
	Kind   string          `json:"kind"`
	Params PayDoParams     `json:"params,omitempty"`
	Set    json.RawMessage `json:"set,omitempty"` // {"transaction.status": 2, "invoice.metadata.x": "y"}
	// Body is the whole message (as a preview gives it, then edited),
	// sent as given; of the rest only params.amount and params.currency
	// (what a checkout's status lookup answers) and copies apply.
	Body      json.RawMessage `json:"body,omitempty"`
	Then      []int           `json:"then,omitempty"`
	Interval  string          `json:"interval,omitempty"`
	Copies    int             `json:"copies,omitempty"`
	Seed      Seed            `json:"seed,omitempty"`
	NotifyURL string          `json:"notify_url,omitempty"`
	Project   string          `json:"project,omitempty"`
	User      string          `json:"user,omitempty"`
	// Source is the local IP these deliveries leave from (default: the
	// emulator's PayDo source).
	Source string `json:"source,omitempty"`
	// ForwardedFor is these deliveries' X-Forwarded-For.
	ForwardedFor string `json:"forwarded_for,omitempty"`
}

// ResendRequest is the body of a resend.
type ResendRequest struct {
	URL           string `json:"url,omitempty"`
	UseProfileURL bool   `json:"use_profile_url,omitempty"`
	// Bulk resend only: messages created at or after Since with Status.
	Since  string `json:"since,omitempty"`
	Status string `json:"status,omitempty"`
}

// Fields is an ordered list of name/value overrides. In JSON it is an
// object whose key order is kept ({"custom": "x", "invoice": "7"}).
type Fields form.Form

// UnmarshalJSON reads an object, keeping key order (orderedjson: a
// duplicate key is refused, not quietly overridden); values must be
// strings.
func (f *Fields) UnmarshalJSON(b []byte) error {
	obj, err := orderedjson.Parse(b)
	if err != nil {
		return fmt.Errorf(`want an object of field names to string values, e.g. {"custom": "x"}: %w`, err)
	}
	if len(obj) > form.MaxFields {
		return fmt.Errorf("more than %d fields: not an IPN", form.MaxFields)
	}
	out := make(Fields, 0, len(obj))
	for _, m := range obj {
		v, ok := m.Value.(string)
		if !ok {
			return fmt.Errorf("field %q: value must be a string (IPN values are text), got %v", m.Key, m.Value)
		}
		out = append(out, form.Field{Name: m.Key, Value: v})
	}
	*f = out
	return nil
}

// MarshalJSON writes the fields as an object, in order (orderedjson, the
// one ordered-JSON codec).
func (f Fields) MarshalJSON() ([]byte, error) {
	obj := make(orderedjson.Object, len(f))
	for i, fd := range f {
		obj[i] = orderedjson.Member{Key: fd.Name, Value: fd.Value}
	}
	return obj.MarshalJSON()
}

// Params pins generated values (see fixtures.Params). Amounts are strings
// with two decimals.
type Params struct {
	Gross         string `json:"gross,omitempty"`
	Currency      string `json:"currency,omitempty"`
	Status        string `json:"status,omitempty"`
	PendingReason string `json:"pending_reason,omitempty"`
	ReasonCode    string `json:"reason_code,omitempty"`
	Items         int    `json:"items,omitempty"`
	Filters       int    `json:"filters,omitempty"`
	CaseType      string `json:"case_type,omitempty"`
	TxnID         string `json:"txn_id,omitempty"`
	ParentTxnID   string `json:"parent_txn_id,omitempty"`
	SubscrID      string `json:"subscr_id,omitempty"`
	ProfileID     string `json:"profile_id,omitempty"`
	Custom        string `json:"custom,omitempty"`
	Invoice       string `json:"invoice,omitempty"`
	ItemNumber    string `json:"item_number,omitempty"`
	PayerEmail    string `json:"payer_email,omitempty"`
}

// SendRequest asks for one PayPal notification: generated from a kind, or
// replayed byte for byte from Raw/RawBase64.
type SendRequest struct {
	Kind    string   `json:"kind,omitempty"`
	Params  Params   `json:"params,omitempty"`
	Set     Fields   `json:"set,omitempty"`
	Unset   []string `json:"unset,omitempty"`
	Charset string   `json:"charset,omitempty"`
	Flavour string   `json:"flavour,omitempty"`
	Seed    Seed     `json:"seed,omitempty"`
	// Neutral draws values no listener bug but the one under test trips
	// on (see fixtures.Options.Neutral); set and params are kept as given.
	Neutral   bool   `json:"neutral,omitempty"`
	NotifyURL string `json:"notify_url,omitempty"`
	Raw       string `json:"raw,omitempty"`
	RawBase64 string `json:"raw_base64,omitempty"`
	// Fields is the whole message as text, in order (as a preview gives
	// it, then edited), encoded in the charset its charset field names.
	// Kind may label it; nothing is generated.
	Fields []TextField   `json:"fields,omitempty"`
	Fault  *FaultRequest `json:"fault,omitempty"`
	// Copies sends that many identical messages (the same bytes, separate
	// History rows), delivered concurrently: a duplicate storm.
	Copies int `json:"copies,omitempty"`
}

// FieldView is one field of a message: its text and its exact bytes.
type FieldView struct {
	Name  string `json:"name"`
	Value string `json:"value"` // decoded in the message's charset
	Raw   string `json:"raw"`   // percent-encoded bytes as sent
}

// MessageView is a message as the API shows it.
type MessageView struct {
	Summary
	Charset   string      `json:"charset"`
	Sandbox   bool        `json:"sandbox"`
	Seed      Seed        `json:"seed,omitempty"`
	Fields    []FieldView `json:"fields"`
	Body      string      `json:"body"`
	Attempts  []Attempt   `json:"attempts"`
	Postbacks []Postback  `json:"postbacks"`
	// Copies lists the ids of the identical copies sent with it.
	Copies []string `json:"copies,omitempty"`
	// Remake is the command that makes it again from its seed (ipnlab
	// fixtures show), every value quoted for a POSIX shell; empty
	// without a seed.
	Remake string `json:"remake,omitempty"`
	// Details are what its provider says of it besides the fields every
	// message has (a signature scheme, an event's resource), in order:
	// the console shows them with the message's summary.
	Details []Detail `json:"details,omitempty"`
}

// Detail is one labelled fact a provider adds to a message's view.
type Detail struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// ResendRefusal is a message a bulk resend did not resend, and why.
type ResendRefusal struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// FaultRequest is a verifier fault as the API takes it.
type FaultRequest struct {
	Kind  string `json:"kind"`
	Delay string `json:"delay,omitempty"` // for slow, e.g. "2s"
	Count int    `json:"count,omitempty"`
}

// TextField is one field of a message as text, in order: what the
// Simulator edits and sends back whole.
type TextField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Preview is a generated message that was not sent: PayPal's fields (and
// the charset they would be encoded in) or PayDo's JSON body. Sending it
// back whole (SendRequest.Fields, PayDoRequest.Body) sends exactly this.
type Preview struct {
	Provider string          `json:"provider"`
	Kind     string          `json:"kind"`
	Seed     Seed            `json:"seed"`
	Charset  string          `json:"charset,omitempty"`
	Fields   []TextField     `json:"fields,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	// Amount and Currency of a PayDo checkout: its IPN does not carry
	// them, but PayDo's status lookup answers with them.
	Amount   string `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// Kind is a PayPal message kind fixtures can generate, as
// GET /api/v1/fixtures/kinds lists it.
type Kind struct {
	Name        string `json:"name"`
	TxnType     string `json:"txn_type"`
	Description string `json:"description"`
	Sample      string `json:"sample,omitempty"` // the captured message (fixtures/testdata/sample_orders.txt) whose field order it follows
}

// ProviderInfo is a provider as GET /api/v1/providers lists it.
type ProviderInfo struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Sends says it makes messages asked for by kind (POST
	// /api/v1/providers/{name}/messages): the console's Simulator and
	// ipnlab send offer it.
	Sends bool `json:"sends"`
	// Kinds are the kinds it sends, when it lists them.
	Kinds []ProviderKind `json:"kinds,omitempty"`
}

// ProviderKind is one kind of message a provider sends.
type ProviderKind struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// NotifyRequest asks a provider for messages of one kind (POST
// /api/v1/providers/{name}/messages): Kind and Set mean what the
// provider says they mean (PayPal: a generated kind and field values;
// PayDo: transfer or checkout and JSON paths).
type NotifyRequest struct {
	Kind      string         `json:"kind"`
	Set       map[string]any `json:"set,omitempty"`
	NotifyURL string         `json:"notify_url,omitempty"`
	Seed      Seed           `json:"seed,omitempty"`
	Copies    int            `json:"copies,omitempty"`
}
