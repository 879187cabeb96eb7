package explore

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ipnlab/ipnlab/generate"
)

// Outcome is what a correct listener ends with for one transaction: the
// balance effects of the payment and its children (refunds, reversals),
// and their sum.
type Outcome struct {
	Effects int
	Net     generate.Money
}

// moneyIn are the kinds whose Completed payment credits the payer
// (docs/probe.md, "The reference listener's rules").
var moneyIn = map[string]bool{"web_accept": true, "cart": true, "express_checkout": true, "send_money": true,
	"virtual_terminal": true, "subscr_payment": true, "recurring_payment": true, "pro_hosted": true}

// Expected is the model: what each family of h must end with. It reads
// the rules in docs/probe.md, not the reference listener's code:
//   - a message is acted on if one of its deliveries can be verified: a
//     correct listener never acts on what it could not verify. Copies and
//     duplicates are the same bytes, so the verifier takes every postback
//     of them for the first send's and its fault answers them all: a fault
//     on every postback (count 0) leaves the message unapplied; an INVALID
//     for the first postback only leaves it unapplied unless another
//     delivery of it is verified; any other fault on the first postback
//     only is retried past;
//   - copies and duplicates of a message act once (the ledger's key is
//     the transaction and its status);
//   - a payment to another merchant credits nothing;
//   - a payer's Mass Pay to the merchant credits each Completed item to
//     the payer once; the merchant's own Mass Pay (payouts) credits no one;
//   - a Completed payment of a money-in kind credits its gross once,
//     whatever came before or after (a late Pending takes nothing back);
//     Pending, Created, Failed, Denied and Voided credit nothing; an
//     authorization's capture credits as a payment;
//   - a refund or reversal (a child, parent_txn_id) debits its amount once,
//     when its parent is credited, in whatever order they arrived;
//   - Canceled_Reversal credits back once a reversal was applied;
//   - cases and adjustments are recorded, with no balance effect.
func Expected(h History) []Outcome {
	applied := appliedSteps(h)
	out := make([]Outcome, len(h.Families))
	for fi, f := range h.Families {
		switch {
		case f.PayDo:
			out[fi] = paydoOutcome(f, applied[fi])
			continue
		case f.Webhook:
			out[fi] = webhookOutcome(f, applied[fi])
			continue
		case f.Order != "":
			// An order paid other than exactly: judged by the order (see
			// orderExpectations); an unknown one moves no money.
			continue
		case f.MassPay != "":
			// A payer's Mass Pay credits its Completed item to the payer;
			// the merchant's own pays out, crediting no one.
			if f.MassPay == "topup" && applied[fi][0] {
				out[fi] = Outcome{Effects: 1, Net: f.Gross}
			}
			continue
		}
		credited := false
		var gross generate.Money
		for i, s := range f.Steps {
			if applied[fi][i] && (!s.Child || s.Capture) && !s.Foreign && s.Status == "Completed" && moneyIn[s.Kind] {
				credited, gross = true, s.Amount
			}
		}
		if !credited {
			continue
		}
		o := Outcome{Effects: 1, Net: gross}
		reversed := false
		for i, s := range f.Steps {
			if !applied[fi][i] || !s.Child || s.Kind == "adjustment" {
				continue
			}
			switch s.Status {
			case "Refunded", "Reversed":
				o.Effects++
				o.Net -= abs(s.Amount)
				reversed = reversed || s.Status == "Reversed"
			}
		}
		for i, s := range f.Steps {
			if applied[fi][i] && s.Child && s.Status == "Canceled_Reversal" && reversed {
				o.Effects++
				o.Net += abs(s.Amount)
			}
		}
		out[fi] = o
	}
	return out
}

// Currency is what a family's money moves in: its payment's mc_currency
// (USD unless the lifecycle pays in another), PayDo's checkouts' EUR.
// unanswered reports whether a fault leaves every postback of a message
// without an answer (anything but a definitive INVALID, every time).
func unanswered(f *Fault) bool {
	return f != nil && f.Count == 0 && f.Kind != "invalid"
}

func (f Family) Currency() string {
	switch {
	case f.PayDo:
		return "EUR"
	case len(f.Steps) > 0 && f.Steps[0].Currency != "":
		return f.Steps[0].Currency
	}
	return "USD"
}

// BalanceChange is how far h moves the payer's balances, by currency: its
// transactions' nets added up. Every currency h pays in is named, moved
// or not.
func BalanceChange(h History) map[string]generate.Money {
	out := map[string]generate.Money{}
	outcomes := Expected(h)
	for fi, f := range h.Families {
		if f.Transfer {
			continue // the merchant's transfer account pays, not the payer
		}
		out[f.Currency()] += outcomes[fi].Net
	}
	return out
}

// A payer's name in windows-1252 letters that are not ISO-8859-1's (Œ)
// nor ASCII (ë, ü).
const payerFirst, payerLast = "Zoë", "Œuvray-Müller"

// dresses are the values of a dressed payment (Step.Dress), as a send
// step sets them.
var dresses = map[string]string{
	"named":     fmt.Sprintf("charset: windows-1252, set: {first_name: %q, last_name: %q}", payerFirst, payerLast),
	"multiline": `set: {address_street: "Flat 2\r\n10 Downing Street"}`,
	"empty":     `set: {custom: ""}`,
}

// foreignReceiver makes a payment another merchant's.
const foreignReceiver = `{receiver_email: someone-else@example.org, business: someone-else@example.org, receiver_id: OTHERMERCHNT9}`

// appliedSteps tells, per family, which steps a correct listener acts on
// (see Expected).
func appliedSteps(h History) []map[int]bool {
	type deliveries struct {
		fault *Fault // the first send's
		n     int
	}
	sent := make([]map[int]*deliveries, len(h.Families))
	for i := range sent {
		sent[i] = map[int]*deliveries{}
	}
	for _, e := range h.Events {
		if e.Kind != Send {
			continue
		}
		d := sent[e.Family][e.Step]
		if d == nil {
			d = &deliveries{fault: e.Fault}
			sent[e.Family][e.Step] = d
		}
		d.n += max(e.Copies, 1)
	}
	applied := make([]map[int]bool, len(h.Families))
	for fi := range applied {
		applied[fi] = map[int]bool{}
		for step, d := range sent[fi] {
			f := d.fault
			lost := f != nil && (f.Count == 0 || (f.Kind == "invalid" && d.n == 1))
			applied[fi][step] = !lost
		}
	}
	return applied
}

// paydoOutcome is a PayDo checkout's or transfer's: applied once if PayDo
// reported it accepted (2) from its own address, whatever failed or
// pending state came before (a checkout credits the payer, a transfer
// debits the merchant's transfer account); nothing from anyone else,
// X-Forwarded-For or not.
func paydoOutcome(f Family, applied map[int]bool) Outcome {
	if f.Source != "" {
		return Outcome{}
	}
	for i, s := range f.Steps {
		if applied[i] && s.Status == "2" {
			if f.Transfer {
				return Outcome{Effects: 1, Net: -f.Gross}
			}
			return Outcome{Effects: 1, Net: f.Gross}
		}
	}
	return Outcome{}
}

// webhookOutcome is a REST capture's: nothing for a refused trap (a
// forgery, a mock event, an attacker's certificate) or an approved order;
// else its gross credited once if its COMPLETED was sent, whatever came
// before or after (a late PENDING takes nothing back), and a refund or
// a reversal debited once when it was credited, in whatever order they
// arrived.
func webhookOutcome(f Family, applied map[int]bool) Outcome {
	sent := map[string]bool{}
	for i, s := range f.Steps {
		sent[s.Status] = sent[s.Status] || applied[i]
	}
	if refusedTrap(f.Trap) || !(sent["COMPLETED"] || sent["SALE"]) {
		return Outcome{}
	}
	o := Outcome{Effects: 1, Net: f.Gross}
	// A chargeback's reversal and its lost dispute are one debit; a
	// dispute the merchant won is none.
	for _, undo := range [][]string{{"REFUNDED"}, {"SALE_REFUNDED"}, {"REVERSED", "DISPUTE_LOST"}} {
		if slices.ContainsFunc(undo, func(s string) bool { return sent[s] }) {
			o.Effects++
			o.Net -= f.Gross
		}
	}
	return o
}

// writeWebhookSend writes the step that delivers e, an event of REST
// family f: a send (its first delivery; sent true), or a resend of the
// first one's message (PayPal's duplicate: the same event). A family's
// first send carries its trap; its later ones name its capture.
func writeWebhookSend(b *strings.Builder, f Family, e Event, alias string, captureRef []string, firstSends map[[2]int]string) (sent bool) {
	step := f.Steps[e.Step]
	key := [2]int{e.Family, e.Step}
	if first, ok := firstSends[key]; ok && f.Trap != "mock" {
		for range max(e.Copies, 1) {
			fmt.Fprintf(b, "  - resend: {message: %s}\n", first)
		}
		return false
	}
	firstSends[key] = alias
	set := fmt.Sprintf("amount: %q, currency: USD, custom_id: \"${env.payer_email}\"", f.Gross.String())
	more, child := webhookChild[step.Status]
	set += more
	switch ref := captureRef[e.Family]; {
	case ref == "" || refusedTrap(f.Trap):
		// A refused trap's every delivery is one (a mock event cannot
		// be resent: the simulator sends another).
		set += webhookTrapSet[f.Trap]
	case child:
		set += fmt.Sprintf(", parent: %q", ref)
	default:
		set += fmt.Sprintf(", resource_id: %q", ref)
	}
	if captureRef[e.Family] == "" {
		captureRef[e.Family] = fmt.Sprintf("${%s.txn_id}", alias)
		if child {
			captureRef[e.Family] = fmt.Sprintf("${%s.parent}", alias)
		}
	}
	fmt.Fprintf(b, "  - send: {as: %s, provider: paypalrest, kind: %s, set: {%s}", alias, webhookKind(step.Status), set)
	if e.Copies > 1 {
		fmt.Fprintf(b, ", copies: %d", e.Copies)
	}
	b.WriteString("}\n")
	return true
}

// webhookKinds are the event types a REST family's steps send.
var webhookKinds = map[string]string{"APPROVED": "CHECKOUT.ORDER.APPROVED", "SALE": "PAYMENT.SALE.COMPLETED",
	"SALE_REFUNDED": "PAYMENT.SALE.REFUNDED", "DISPUTE_LOST": "CUSTOMER.DISPUTE.RESOLVED", "DISPUTE_WON": "CUSTOMER.DISPUTE.RESOLVED"}

// webhookChild are the steps that name their capture (or sale) as their
// parent, not as their own resource, and what else they set.
var webhookChild = map[string]string{"REFUNDED": "", "SALE_REFUNDED": "", "DISPUTE_LOST": ", outcome: RESOLVED_BUYER_FAVOUR",
	"DISPUTE_WON": ", outcome: RESOLVED_SELLER_FAVOUR"}

func webhookKind(status string) string {
	if k, ok := webhookKinds[status]; ok {
		return k
	}
	return "PAYMENT.CAPTURE." + status
}

// webhookTrapSet is what a family's first event sets for its trap.
var webhookTrapSet = map[string]string{
	"quirks": ", quirks: true", "rotated": ", rotate: true", "outage": ", rotate: true, cert_outage: 2",
	"forged": ", tamper: body", "mock": ", mock: true", "foreign_cert": ", tamper: foreign_cert",
}

func abs(m generate.Money) generate.Money {
	if m < 0 {
		return -m
	}
	return m
}

// Scenario renders h as a scenario (YAML, as ipnlab run reads it): the
// lifecycles, the events, then the invariants: every message acked with a
// 200, verified when a correct listener acts on it, never asked about
// more often than delivered; each transaction's effects and net as the
// model says; and, when customer is set (the listener's id of the payer),
// the payer's balances moved by the model's amounts. The messages' ids
// derive from the run's seed (ipnlab run --seed), not from the history:
// each run has transactions of its own, so a listener that already saw
// one run does not carry it into the next.
func Scenario(h History, name, description, customer string) string {
	return ScenarioIgnoring(h, name, description, customer, nil)
}

// The invariants, as --ignore names them.
const (
	InvAcked     = "acked"      // every delivery acknowledged in the end
	InvVerified  = "verified"   // every message acted on VERIFIED
	InvNoFlood   = "no-flood"   // no definitive answer asked for again
	InvEffects   = "effects"    // each transaction's effects and net
	InvPayerName = "payer-name" // the named payer's name, decoded
	InvBalances  = "balances"   // the payer's balances
	InvOrders    = "orders"     // an order shop's orders: paid once, never short, never in another currency
)

// Invariants lists them, in the order a history's scenario checks them.
var Invariants = []string{InvAcked, InvVerified, InvNoFlood, InvOrders, InvEffects, InvPayerName, InvBalances}

// ScenarioIgnoring is Scenario without the expectations of the
// invariants in ignore: a known gap set aside, so that the rest are
// still checked.
func ScenarioIgnoring(h History, name, description, customer string, ignore map[string]bool) string {
	var b strings.Builder
	// Neutral values: what a history does depends on nothing it does not
	// say. The values that trip listeners (an accented name, a street of
	// two lines, an empty field) are dressed payments of the grammar, so
	// a shrunk history keeps them and its replay, whatever its seed,
	// fails the same way.
	fmt.Fprintf(&b, "name: %s\ndescription: %q\nprovider: paypal\nvalues: neutral\nsteps:\n", name, description)
	for i, f := range h.Families {
		if f.Lifecycle != "" {
			fmt.Fprintf(&b, "  - generate: {as: t%d, lifecycle: %s, params: {gross: %q, currency: USD}}\n", i+1, f.Lifecycle, f.Gross.String())
		}
	}
	// parentAlias names the send whose transaction a family's
	// expectations are about: its payment's, or its capture's.
	parentAlias := make([]string, len(h.Families))
	captured := make([]bool, len(h.Families))
	sends := 0
	var mustAck []string // a stranger's PayDo posts are refused (403), rightly
	// mustVerify are the first sends of the PayPal messages a correct
	// listener gets verified: the verifier takes every postback of the
	// same bytes for the first send's.
	var mustVerify []string
	// firstSends are the first sends of every PayPal message: the
	// postbacks of its copies and resends are counted on them.
	var firstSends []string
	firstSend := map[[2]int]bool{}
	applied := appliedSteps(h)
	// A REST family's capture, as later steps and the expectations name
	// it (from its first send: its txn_id, or a refund's parent), and
	// the first send of each of its steps, which a duplicate resends.
	captureRef := make([]string, len(h.Families))
	webhookSent := map[[2]int]string{}
	for _, e := range h.Events {
		switch e.Kind {
		case Down:
			b.WriteString("  - outage: {down: true}\n")
		case Up:
			b.WriteString("  - outage: {down: false}\n")
		case Advance:
			fmt.Fprintf(&b, "  - advance: {by: %s}\n", e.By)
		case Send:
			sends++
			step := h.Families[e.Family].Steps[e.Step]
			alias := fmt.Sprintf("m%d", sends)
			if f := h.Families[e.Family]; f.Webhook {
				// Acknowledged in the end: anything PayPal sent (a
				// listener may refuse a forgery as it likes).
				if sent := writeWebhookSend(&b, f, e, alias, captureRef, webhookSent); sent && !refusedTrap(f.Trap) {
					mustAck = append(mustAck, alias)
				}
				if parentAlias[e.Family] == "" {
					parentAlias[e.Family] = alias
				}
				continue
			}
			// Acknowledged in the end, unless a stranger sent it (PayDo
			// refuses it, rightly), or every postback of it meets a
			// verifier that gives no answer: then leaving it
			// unacknowledged, so that PayPal resends, is as right as
			// retrying the verification (the PP-OUTAGE-* checks' rule).
			if f := h.Families[e.Family]; (!f.PayDo || f.Source == "") && !unanswered(e.Fault) {
				mustAck = append(mustAck, alias)
			}
			if key := [2]int{e.Family, e.Step}; !h.Families[e.Family].PayDo && !firstSend[key] {
				firstSend[key] = true
				firstSends = append(firstSends, alias)
				if applied[e.Family][e.Step] {
					mustVerify = append(mustVerify, alias)
				}
			}
			switch {
			case step.Capture && !captured[e.Family]:
				// What a capture credits is its own transaction's, known
				// to the listener whether or not the authorization was.
				parentAlias[e.Family], captured[e.Family] = alias, true
			case !step.Child && parentAlias[e.Family] == "":
				parentAlias[e.Family] = alias
			}
			if f := h.Families[e.Family]; f.PayDo {
				params := fmt.Sprintf("status: %s, amount: %q", step.Status, f.Gross.String())
				if first := parentAlias[e.Family]; first != alias {
					params += fmt.Sprintf(", identifier: \"${%s.transaction}\"", first)
				}
				kind := "checkout"
				if f.Transfer {
					kind = "transfer"
				}
				fmt.Fprintf(&b, "  - send: {as: %s, provider: paydo, kind: %s, params: {%s}", alias, kind, params)
				switch f.Source {
				case "stranger":
					b.WriteString(", source: stranger")
				case "spoof":
					b.WriteString(", source: stranger, forwarded_for: paydo")
				}
			} else if step.Adaptive {
				fmt.Fprintf(&b, "  - send: {as: %s, kind: adaptive_pay, params: {items: 2}", alias)
			} else if step.Dress != "" {
				fmt.Fprintf(&b, "  - send: {as: %s, kind: web_accept, params: {gross: %q, currency: USD}, %s", alias, f.Gross.String(), dresses[step.Dress])
			} else if f.MassPay == "topup" {
				fmt.Fprintf(&b, "  - send: {as: %s, kind: masspay_received, params: {items: 1, status: Completed, currency: USD, payer_email: \"${env.payer_email}\"}, set: {mc_gross_1: %q, mc_fee_1: \"0.40\"}", alias, f.Gross.String())
			} else if f.MassPay == "payout" {
				fmt.Fprintf(&b, "  - send: {as: %s, kind: masspay, params: {items: 1, status: Completed, currency: USD}, set: {receiver_email_1: \"${env.payer_email}\", mc_gross_1: %q, mc_fee_1: \"0.40\"}", alias, f.Gross.String())
			} else if f.Order != "" {
				order := "order: new"
				switch {
				case f.Order == "unknown":
					order = "order: unknown"
				case f.Order == "short" || f.Order == "wrong_currency":
					order += ", pay: " + f.Order
				case e.Step == 1 && parentAlias[e.Family] != alias:
					order = "order: " + parentAlias[e.Family] // the same order again
				}
				fmt.Fprintf(&b, "  - send: {as: %s, kind: web_accept, params: {gross: %q, currency: USD}, %s", alias, f.Gross.String(), order)
			} else if f.Lifecycle == "" {
				fmt.Fprintf(&b, "  - send: {as: %s, kind: web_accept, params: {gross: %q, currency: USD}, set: %s", alias, f.Gross.String(), foreignReceiver)
			} else {
				fmt.Fprintf(&b, "  - send: {as: %s, from: t%d.%s", alias, e.Family+1, step.Name)
			}
			if e.Copies > 1 {
				fmt.Fprintf(&b, ", copies: %d", e.Copies)
			}
			if e.Fault != nil {
				fmt.Fprintf(&b, ", fault: {kind: %s, count: %d}", e.Fault.Kind, e.Fault.Count)
			}
			b.WriteString("}\n")
		}
	}
	// Whatever the events did, the listener is up at the end and the
	// retries of what failed during an outage are due: the model's
	// "eventually delivered".
	down := false
	for _, e := range h.Events {
		if e.Kind == Down || e.Kind == Up {
			down = e.Kind == Down
		}
	}
	if down {
		b.WriteString("  - outage: {down: false}\n")
	}
	b.WriteString("  - advance: {by: 2m}\n")
	// Protocol: every delivery was acknowledged with a 200 in the end
	// (PayPal resends the others for days).
	for _, alias := range mustAck {
		if !ignore[InvAcked] {
			fmt.Fprintf(&b, "  - expect: {message: %s, acked: true}\n", alias)
		}
	}
	for _, alias := range mustVerify {
		if !ignore[InvVerified] {
			fmt.Fprintf(&b, "  - expect: {message: %s, any_verified: true}\n", alias)
		}
	}
	for _, alias := range firstSends {
		if !ignore[InvNoFlood] {
			fmt.Fprintf(&b, "  - expect: {message: %s, no_flood: true}\n", alias)
		}
	}
	for fi, f := range h.Families {
		if f.Order == "" || parentAlias[fi] == "" || ignore[InvOrders] {
			continue
		}
		switch f.Order {
		case "short":
			fmt.Fprintf(&b, "  - expect: {order: %s, paid: false}\n", parentAlias[fi])
		case "wrong_currency":
			fmt.Fprintf(&b, "  - expect: {order: %s, paid: false, received: \"0.00\"}\n", parentAlias[fi])
		case "unknown":
			fmt.Fprintf(&b, "  - expect: {txn: \"${%s.txn_id}\", effects: 0}\n", parentAlias[fi])
		case "twice":
			// Paid once, for its amount, by whichever payment a correct
			// shop acted on first (a payment lost to the verifier pays
			// nothing).
			paid := false
			for _, ok := range applied[fi] {
				paid = paid || ok
			}
			received := generate.Money(0)
			if paid {
				received = f.Gross
			}
			fmt.Fprintf(&b, "  - expect: {order: %s, paid: %v, received: %q}\n", parentAlias[fi], paid, received.String())
		}
	}
	for fi, o := range Expected(h) {
		if h.Families[fi].Order != "" {
			continue // judged by its order, above
		}
		if ignore[InvEffects] && (ignore[InvPayerName] || h.Families[fi].Steps[0].Dress != "named" || o.Effects == 0) {
			continue
		}
		if parentAlias[fi] == "" || h.Families[fi].Steps[0].Adaptive {
			continue // none of its payment's messages was sent: nothing names it
		}
		if h.Families[fi].Webhook {
			if !ignore[InvEffects] {
				fmt.Fprintf(&b, "  - expect: {txn: %q, provider: paypalrest, effects: %d, net: %q, currency: USD}\n", captureRef[fi], o.Effects, o.Net.String())
			}
			continue
		}
		if h.Families[fi].MassPay != "" {
			fmt.Fprintf(&b, "  - expect: {txn: \"${%s.masspay_txn_id_1}\", effects: %d, net: %q}\n", parentAlias[fi], o.Effects, o.Net.String())
			continue
		}
		if h.Families[fi].PayDo {
			fmt.Fprintf(&b, "  - expect: {txn: \"${%s.transaction}\", provider: paydo, effects: %d, net: %q, currency: EUR}\n", parentAlias[fi], o.Effects, o.Net.String())
			continue
		}
		more := "" // the payer's name, the currency
		if h.Families[fi].Steps[0].Dress == "named" && o.Effects > 0 && !ignore[InvPayerName] {
			// The name as the payer wrote it, decoded in the message's
			// charset (a message never verified leaves nothing to ask).
			more = fmt.Sprintf(", payer_name: %q", payerFirst+" "+payerLast)
		}
		if c := h.Families[fi].Currency(); c != "USD" {
			more += ", currency: " + c
		}
		money := fmt.Sprintf("effects: %d, net: %q", o.Effects, o.Net.String())
		if ignore[InvEffects] {
			money = "" // the name alone
			more = strings.TrimPrefix(more, ", ")
		}
		fmt.Fprintf(&b, "  - expect: {txn: \"${%s.txn_id}\", %s%s}\n", parentAlias[fi], money, more)
	}
	if customer != "" && !ignore[InvBalances] {
		change := BalanceChange(h)
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(change)) {
			parts = append(parts, fmt.Sprintf("%s: %q", c, change[c].String()))
		}
		fmt.Fprintf(&b, "  - expect: {customer: %q, balance_change: {%s}}\n", customer, strings.Join(parts, ", "))
	}
	return b.String()
}
