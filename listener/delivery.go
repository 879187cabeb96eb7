package listener

import (
	"fmt"
	"time"

	"github.com/ipnlab/ipnlab/listener/store"
)

// Rules are what a notification, once verified (PayPal) or allowlisted
// (PayDo), does to the listener's state: the business rules, applied
// inside one store transaction. The reference rules are the listener's
// own; Config.WrapRules decorates them (a team's own policy, or the
// mutant gallery's business-rule bugs, package listener/flawed).
type Rules interface {
	// Apply applies d inside d.Tx, logging what it did (Delivery.Log).
	// An error rolls the transaction back; the item is retried.
	Apply(d *Delivery) error
}

// RulesFunc is a function that is Rules.
type RulesFunc func(*Delivery) error

// Apply calls f.
func (f RulesFunc) Apply(d *Delivery) error { return f(d) }

// Delivery is one notification being applied by the rules.
type Delivery struct {
	// Tx is the store transaction everything the rules do lands in.
	Tx store.Tx
	// Item is the notification as stored.
	Item store.InboxItem
	// At is the time the rules apply it.
	At time.Time
	// Verdict is why it is applied: VERIFIED (PayPal's postback),
	// allowlisted (PayDo's source address), SUCCESS (a REST webhook's
	// signature).
	Verdict string
	// Fields is a PayPal message decoded to text in its charset (the first
	// of a repeated name); nil for PayDo, whose JSON the rules read from
	// Item.Body.
	Fields map[string]string
	// Txn, Kind and Status say which transaction the notification is
	// about, its kind (txn_type; PayDo's checkout or transfer) and the
	// status it reports, as the rules read them.
	Txn, Kind, Status string
	// Webhook is a PayPal REST webhook's event as the rules read it
	// (decorations may change it before the reference rules apply it);
	// nil for IPN and PayDo.
	Webhook *WebhookEvent

	l *Listener
	// payDo is PayDo's notification parsed, and the amount of an accepted
	// checkout as PayDo's API reported it (read before the transaction).
	payDo          payDoIPN
	lookupAmount   int64
	lookupCurrency string
	// action is the last action logged, PayDo's inbox detail.
	action string
	// logFor is the REST refund whose arrival is being applied.
	logFor string
}

// Log adds a line to the payment log for this notification.
func (d *Delivery) Log(txn, kind, status, action, detail string) error {
	d.action = action
	return d.Tx.AddLog(store.LogLine{InboxID: d.Item.ID, Provider: d.Item.Provider, TxnID: txn, Kind: kind, Status: status,
		Verdict: d.Verdict, Action: action, Detail: detail, At: d.At})
}

// Ours reports whether any of the ids (an email or a PayPal account id)
// names the merchant (Config.ReceiverEmails, ReceiverIDs).
func (d *Delivery) Ours(ids ...string) bool { return d.l.ours(ids...) }

// CustomerFor matches a payer's email to a customer, as
// Config.Customers and UnknownPayers say ("" when none).
func (d *Delivery) CustomerFor(email string) string { return d.l.customerFor(email) }

// Credit applies a completed payment to its customer once (the ledger
// entry is unique per transaction and status): its action and detail for
// the log, and why the credit waits ("" unless the currency is refused or
// no customer matches).
func (d *Delivery) Credit(t *store.Txn) (action, detail, held string, err error) {
	return d.credit(t)
}

// Amount is what a transaction's gross and fee are worth to the ledger:
// the gross, or the net when Config.DeductFees.
func (d *Delivery) Amount(t store.Txn) int64 {
	if d.l.cfg.DeductFees {
		return t.Gross - t.Fee
	}
	return t.Gross
}

// reference is the listener's own rules.
func (l *Listener) reference(d *Delivery) error {
	switch d.Item.Provider {
	case PayPal:
		return d.applyPayPal(ipn(d.Fields))
	case PayDo:
		return d.applyPayDo()
	case PayPalREST:
		return d.applyPayPalREST()
	}
	return fmt.Errorf("no rules for provider %q", d.Item.Provider)
}
