// Package explore draws random payment histories from a small grammar,
// runs each against a listener through the emulator, and checks the
// listener's ledger (through its probe) against a model of the rules a
// correct listener follows. A history that breaks an invariant is shrunk
// to the smallest one that still breaks it and written as a scenario that
// ipnlab run replays. See docs/explore.md.
package explore

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/ipnlab/ipnlab/generate"
)

// A history is a few transactions (each a lifecycle of the fixtures:
// payment, pending, refunds, chargeback ...) and the events that deliver
// their messages: sends in any order, duplicates, concurrent copies,
// verifier faults, listener outages and clock jumps.
type History struct {
	Seed     uint64
	Families []Family
	Events   []Event
}

// Family is one transaction's lifecycle.
type Family struct {
	Name      string // what the grammar drew: a lifecycle, or pay (a lone payment)
	Lifecycle string // the fixtures' lifecycle its messages come from
	Gross     generate.Money
	Seed      uint64 // the facts' messages (their amounts depend on Gross alone)
	Steps     []Step
	Sent      []int // the steps the history delivers (a lone payment: the first)
	// PayDo is a PayDo checkout, or with Transfer an outgoing transfer:
	// its steps are the states PayDo reports, in order; Source is where its notifications come from: "" PayDo's
	// address, "stranger" another's, "spoof" another's claiming PayDo's
	// in X-Forwarded-For.
	PayDo    bool
	Transfer bool
	Source   string
	// MassPay is a one-item Mass Pay: "topup" a payer's to the merchant
	// (credits the payer), "payout" the merchant's own (credits no one).
	MassPay string
	// Order is how an order shop's order is paid (the grammar draws them
	// only with an order source): "short", "wrong_currency", "unknown"
	// (names an order the shop does not have) or "twice" (a second
	// payment, a transaction of its own, for the same order).
	Order string
	// Webhook is a capture (or an approved order) on PayPal's REST
	// webhooks: its steps are the event types sent, of one resource
	// (Step.Status: COMPLETED, PENDING, DENIED, REFUNDED, REVERSED,
	// APPROVED); Trap is how its first event is sent (webhookTraps).
	Webhook bool
	Trap    string
}

// Step is what the model needs to know of one message of a lifecycle.
type Step struct {
	Name   string
	Status string         // payment_status
	Amount generate.Money // mc_gross, as sent (negative for refunds and reversals)
	Child  bool           // a new txn_id with parent_txn_id: a refund, reversal ...
	Kind   string         // txn_type ("" for refunds and reversals)
	// Foreign is a payment to another merchant (receiver_email,
	// receiver_id and business not the listener's).
	Foreign bool
	// Dress is a lone payment's values that trip listeners (the others'
	// are neutral: ASCII, one line, no empty field): "named", a payer
	// whose name needs its charset (windows-1252 letters beyond ASCII);
	// "multiline", a street of two lines (CRLF); "empty", an empty
	// custom field.
	Dress string
	// Adaptive is an Adaptive Payments PAY (transaction[n].* keys):
	// recorded, no balance effect, but it must verify.
	Adaptive bool
	// Capture is an authorization's capture: a child (parent_txn_id and
	// auth_id the authorization's) that pays like a payment.
	Capture bool
	// Currency is mc_currency ("" for the messages that carry none).
	Currency string
}

// EventKind names what an event does.
type EventKind string

// Event kinds.
const (
	Send    EventKind = "send"    // deliver one message of a family
	Down    EventKind = "down"    // the listener stops answering
	Up      EventKind = "up"      // the listener is back
	Advance EventKind = "advance" // the clock moves: due retries go
)

// Event is one step of a history.
type Event struct {
	Kind   EventKind
	Family int
	Step   int
	Copies int    // concurrent identical copies (0 or 1: one)
	Fault  *Fault // the verifier's answer to this message's postbacks
	By     string // Advance: how far
}

// Fault is a verifier fault for one message's postbacks.
type Fault struct {
	Kind  string // invalid, newline, status500, garbage, unavailable, drop
	Count int    // 0: every postback of it; n: the first n
}

// lifecycles the grammar draws from: money in (some dressed in values
// that trip listeners), a payment to another merchant, pending that
// clears or fails, fraud holds and payment reviews, German ELV, another
// currency, authorizations captured or voided, refunds full and partial,
// a chargeback.
var lifecycles = []string{"pay", "named", "multiline", "empty", "foreign", "adaptive", "topup", "payout", "echeck_cleared", "echeck_failed",
	"fraud_accepted", "fraud_denied", "review_completed", "review_reversed", "elv_completed", "multi_currency",
	"auth_capture", "auth_void", "pay_refund", "pay_partial_refunds", "chargeback"}

// faults the grammar draws from: those a correct listener survives (the
// first postback only) and those that must leave the message unapplied.
var faults = []Fault{
	{"status500", 1}, {"newline", 1}, {"unavailable", 1}, {"garbage", 1}, {"drop", 1},
	{"invalid", 1}, {"invalid", 0}, {"newline", 0}, {"status500", 0}, {"garbage", 0}, {"drop", 0},
}

// paydoStates are the sequences of states a PayDo checkout or transfer reports (2
// accepted, 3 and 5 failed, 4 pending): an acceptance is final, so none
// is followed by another state (PayDo's lookup would answer the later
// one).
var paydoStates = [][]int{{2}, {5, 2}, {3, 2}, {4, 2}, {5}, {4}, {3}}

// transferStates are a transfer's: PayDo reports a transfer Accepted (2)
// or Rejected (3).
var transferStates = [][]int{{2}, {3, 2}, {3}}

// webhookLifecycles are the REST families the grammar draws: event types
// of one capture (or a subscription's sale) in PayPal's order (a
// neighbour may be swapped on delivery, as for IPN), or an order approved
// and never captured. DISPUTE_LOST and DISPUTE_WON are a dispute of the
// capture resolved in the buyer's or the merchant's favour; a chargeback
// is reported both as the capture's reversal and as a lost dispute.
var webhookLifecycles = []struct {
	name  string
	steps []string
	swap  bool
}{
	{"capture", []string{"COMPLETED"}, false},
	{"capture_pending", []string{"PENDING", "COMPLETED"}, true},
	{"capture_denied", []string{"PENDING", "DENIED"}, true},
	{"capture_refund", []string{"COMPLETED", "REFUNDED"}, true},
	{"capture_reversal", []string{"COMPLETED", "REVERSED"}, true},
	{"order_approved", []string{"APPROVED"}, false},
	{"sale", []string{"SALE"}, false},
	{"sale_refund", []string{"SALE", "SALE_REFUNDED"}, true},
	{"dispute_lost", []string{"COMPLETED", "DISPUTE_LOST"}, true},
	{"dispute_won", []string{"COMPLETED", "DISPUTE_WON"}, true},
	{"chargeback", []string{"COMPLETED", "REVERSED", "DISPUTE_LOST"}, true},
}

// webhookTraps are how a REST family's first event may be sent: as
// PayPal sends it (""), or a trap a correct listener survives (quirks: an
// escaped body; rotated: a new signing key; outage: a new key whose
// certificate fails its first fetches) or refuses (forged: an amount
// changed after signing; mock: the simulator's; foreign_cert: an
// attacker's key). A refused trap's family is a capture alone.
var webhookTraps = []string{"", "", "", "", "quirks", "rotated", "outage", "forged", "mock", "foreign_cert"}

// refusedTrap reports whether a correct listener acts on nothing sent
// with trap.
func refusedTrap(trap string) bool {
	return trap == "forged" || trap == "mock" || trap == "foreign_cert"
}

// webhookFamily is a REST family: lifecycle's events, the first sent with
// trap.
func webhookFamily(lifecycle int, trap string, gross generate.Money) Family {
	lc := webhookLifecycles[lifecycle]
	if refusedTrap(trap) {
		lc = webhookLifecycles[0]
	}
	f := Family{Name: "webhook_" + lc.name, Gross: gross, Webhook: true, Trap: trap}
	for i, t := range lc.steps {
		f.Steps = append(f.Steps, Step{Name: strings.ToLower(t), Status: t, Amount: gross, Currency: "USD"})
		f.Sent = append(f.Sent, i)
	}
	return f
}

// Generate draws a history of at most maxEvents events from seed; PayDo
// checkouts and transfers join the PayPal transactions when paydo is set
// (the listener takes PayDo).
func Generate(seed uint64, maxEvents int, paydo bool) (History, error) {
	return GenerateFor(seed, maxEvents, Grammar{PayDo: paydo})
}

// Grammar says what a listener takes beyond PayPal's payments.
type Grammar struct {
	// PayDo: PayDo checkouts and transfers.
	PayDo bool
	// Orders: the listener is an order shop (an order source): orders
	// paid short, in another currency, twice, or unknown join the draw.
	Orders bool
	// Webhooks: PayPal REST webhooks, captures and their refunds,
	// reversals, pending holds, approved orders and traps.
	Webhooks bool
}

// orderPayments are the ways the grammar pays an order other than
// exactly (every other payment pays a new order exactly).
var orderPayments = []string{"short", "wrong_currency", "unknown", "twice"}

// GenerateFor draws a history for a listener that takes what g says.
func GenerateFor(seed uint64, maxEvents int, g Grammar) (History, error) {
	paydo := g.PayDo
	rng := rand.New(rand.NewPCG(seed, 0x1b7e))
	h := History{Seed: seed}
	n := 1 + rng.IntN(3)
	for range n {
		gross := generate.Money(500 + rng.IntN(20000))
		if g.Orders && rng.IntN(3) == 0 {
			h.Families = append(h.Families, orderFamily(orderPayments[rng.IntN(len(orderPayments))], gross))
			continue
		}
		// Drawn only for a listener of webhooks: a grammar without them
		// draws the histories it always drew.
		if g.Webhooks && rng.IntN(3) == 0 {
			h.Families = append(h.Families, webhookFamily(rng.IntN(len(webhookLifecycles)), webhookTraps[rng.IntN(len(webhookTraps))], gross))
			continue
		}
		if paydo && rng.IntN(4) == 0 {
			states, transfer := paydoStates[rng.IntN(len(paydoStates))], rng.IntN(3) == 0
			if transfer {
				states = transferStates[rng.IntN(len(transferStates))]
			}
			h.Families = append(h.Families, paydoFamily(states, gross, []string{"", "", "", "stranger", "spoof"}[rng.IntN(5)], transfer))
			continue
		}
		f, err := family(lifecycles[rng.IntN(len(lifecycles))], gross, rng.Uint64())
		if err != nil {
			return History{}, err
		}
		h.Families = append(h.Families, f)
	}
	// Each family's messages in their order, a neighbour swapped now and
	// then (a refund before its payment's Completed), then the families
	// interleaved.
	var queues [][]int
	for _, f := range h.Families {
		order := append([]int(nil), f.Sent...)
		odds := 4
		if f.Webhook {
			odds = 2 // PayPal promises webhooks no order at all: one pair in two
		}
		for i := 0; i+1 < len(order) && !f.PayDo && f.Order == "" && (!f.Webhook || webhookSwaps(f)); i++ {
			if rng.IntN(odds) == 0 {
				order[i], order[i+1] = order[i+1], order[i]
			}
		}
		queues = append(queues, order)
	}
	down := false
	sent := map[[2]int]bool{}
	for len(h.Events) < maxEvents {
		var open []int
		for fi, q := range queues {
			if len(q) > 0 {
				open = append(open, fi)
			}
		}
		if len(open) == 0 {
			break
		}
		fi := open[rng.IntN(len(open))]
		step := queues[fi][0]
		queues[fi] = queues[fi][1:]
		switch r := rng.IntN(20); {
		case r == 0 && !down:
			h.Events = append(h.Events, Event{Kind: Down})
			down = true
		case r == 1 && down:
			h.Events = append(h.Events, Event{Kind: Up}, Event{Kind: Advance, By: "2m"})
			down = false
		case r == 2 && !down:
			// Not while the listener is down: days of retries against it
			// would use up PayPal's schedule, which the model does not
			// follow.
			h.Events = append(h.Events, Event{Kind: Advance, By: []string{"1h", "1d", "4d"}[rng.IntN(3)]})
		}
		ev := Event{Kind: Send, Family: fi, Step: step}
		if rng.IntN(10) == 0 {
			ev.Copies = 2 + rng.IntN(2)
		}
		// A fault on a message's first send only: later deliveries are
		// the same bytes, answered as the first one's (see Expected).
		if rng.IntN(7) == 0 && !sent[[2]int{fi, step}] && !h.Families[fi].PayDo && !h.Families[fi].Webhook {
			f := faults[rng.IntN(len(faults))]
			ev.Fault = &f
		}
		sent[[2]int{fi, step}] = true
		h.Events = append(h.Events, ev)
		if rng.IntN(7) == 0 && len(h.Events) < maxEvents && (h.Families[fi].Lifecycle != "" || h.Families[fi].Webhook) {
			// A duplicate delivery, later on (of a generated message: a
			// foreign payment is made afresh by each send).
			queues[fi] = append(queues[fi], step)
		}
	}
	if down {
		h.Events = append(h.Events, Event{Kind: Up})
	}
	return h, nil
}

// webhookSwaps reports whether f's events may be delivered out of order.
func webhookSwaps(f Family) bool {
	for _, lc := range webhookLifecycles {
		if "webhook_"+lc.name == f.Name {
			return lc.swap
		}
	}
	return false
}

// orderFamily is an order paid as how says: one payment, or two for
// "twice" (each a transaction of its own, made by its send).
func orderFamily(how string, gross generate.Money) Family {
	f := Family{Name: "order_" + how, Gross: gross, Order: how, Sent: []int{0},
		Steps: []Step{{Name: "pay", Status: "Completed", Amount: gross, Kind: "web_accept"}}}
	if how == "twice" {
		f.Steps = append(f.Steps, Step{Name: "again", Status: "Completed", Amount: gross, Kind: "web_accept"})
		f.Sent = append(f.Sent, 1)
	}
	return f
}

// paydoFamily is a PayDo checkout (or transfer) reporting states, from
// source.
func paydoFamily(states []int, gross generate.Money, source string, transfer bool) Family {
	f := Family{Name: "paydo_checkout", Gross: gross, PayDo: true, Source: source, Transfer: transfer}
	if transfer {
		f.Name = "paydo_transfer"
	}
	for i, s := range states {
		f.Steps = append(f.Steps, Step{Name: fmt.Sprintf("state%d", i+1), Status: fmt.Sprint(s), Amount: gross})
		f.Sent = append(f.Sent, i)
	}
	return f
}

// family makes a lifecycle's facts. A lone payment ("pay") is the first
// message of pay_refund, whose refund is never sent; a foreign payment (a
// web_accept to another merchant) and a Mass Pay are made by their send.
func family(name string, gross generate.Money, seed uint64) (Family, error) {
	switch name {
	case "foreign":
		return Family{Name: name, Gross: gross, Seed: seed, Sent: []int{0},
			Steps: []Step{{Name: "pay", Status: "Completed", Amount: gross, Kind: "web_accept", Foreign: true}}}, nil
	case "adaptive":
		return Family{Name: name, Gross: gross, Seed: seed, Sent: []int{0},
			Steps: []Step{{Name: "pay", Kind: "adaptive_pay", Adaptive: true}}}, nil
	case "named", "multiline", "empty":
		return Family{Name: name, Gross: gross, Seed: seed, Sent: []int{0},
			Steps: []Step{{Name: "pay", Status: "Completed", Amount: gross, Kind: "web_accept", Dress: name}}}, nil
	case "topup", "payout":
		return Family{Name: name, Gross: gross, Seed: seed, Sent: []int{0}, MassPay: name,
			Steps: []Step{{Name: "masspay", Status: "Completed", Amount: gross, Kind: "masspay"}}}, nil
	}
	gen, err := generate.New(seed, generate.Options{Neutral: true, Sandbox: true})
	if err != nil {
		return Family{}, err
	}
	lifecycle := name
	if name == "pay" {
		lifecycle = "pay_refund"
	}
	f := Family{Name: name, Lifecycle: lifecycle, Gross: gross, Seed: seed}
	steps, err := gen.Lifecycle(lifecycle, generate.Params{Gross: gross, Currency: "USD"})
	if err != nil {
		return Family{}, err
	}
	for i := range steps {
		if name != "pay" || i == 0 {
			f.Sent = append(f.Sent, i)
		}
	}
	for _, s := range steps {
		amount, err := generate.ParseMoney(s.Message.Fields.Value("mc_gross"))
		if err != nil && s.Message.Fields.Value("mc_gross") != "" {
			return Family{}, fmt.Errorf("%s.%s: %w", lifecycle, s.Name, err)
		}
		fields := s.Message.Fields
		txn, parent := fields.Value("txn_id"), fields.Value("parent_txn_id")
		child := parent != "" && parent != txn
		f.Steps = append(f.Steps, Step{Name: s.Name, Status: fields.Value("payment_status"), Amount: amount,
			Child: child, Capture: child && fields.Value("auth_id") == parent, Kind: fields.Value("txn_type"), Currency: fields.Value("mc_currency")})
	}
	return f, nil
}

// String is the history in one line per event, for reports.
func (h History) String() string {
	var b strings.Builder
	for i, f := range h.Families {
		fmt.Fprintf(&b, "t%d: %s of %s", i+1, f.Name, f.Gross)
		if f.Trap != "" {
			fmt.Fprintf(&b, " (sent %s)", f.Trap)
		}
		if f.PayDo {
			var states []string
			for _, s := range f.Steps {
				states = append(states, s.Status)
			}
			fmt.Fprintf(&b, " (states %s%s)", strings.Join(states, ", "), map[string]string{"stranger": ", from a stranger", "spoof": ", from a stranger claiming PayDo's address"}[f.Source])
		}
		b.WriteString("\n")
	}
	for _, e := range h.Events {
		switch e.Kind {
		case Send:
			fmt.Fprintf(&b, "send t%d.%s", e.Family+1, h.Families[e.Family].Steps[e.Step].Name)
			if e.Copies > 1 {
				fmt.Fprintf(&b, " x%d", e.Copies)
			}
			if e.Fault != nil {
				fmt.Fprintf(&b, " (verifier: %s, count %d)", e.Fault.Kind, e.Fault.Count)
			}
			b.WriteString("\n")
		case Advance:
			fmt.Fprintf(&b, "advance %s\n", e.By)
		default:
			fmt.Fprintf(&b, "listener %s\n", e.Kind)
		}
	}
	return b.String()
}
