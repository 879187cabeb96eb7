package flawed

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/listener/store"
)

// rules are the business-rule bugs, each a decoration of the listener's
// rules (Config.WrapRules): the reference rules still apply what the bug
// leaves alone.
var rules = map[mutants.Name]func(*env, listener.Rules) listener.Rules{
	mutants.DedupeByTxn:          decorate(dedupeByTxn),
	mutants.DedupeByLastStatus:   decorate(dedupeByLastStatus),
	mutants.CreditPending:        creditPending(false),
	mutants.CreditFraudPends:     creditPending(true),
	mutants.IgnoreReceiver:       ignoreReceiver,
	mutants.RefundAsPayment:      decorate(refundAsPayment),
	mutants.CreditOwnMassPay:     decorate(creditOwnMassPay),
	mutants.IgnoreReversals:      decorate(ignoreReversals),
	mutants.DuplicateRefunds:     decorate(debitEveryRefund),
	mutants.UTF8Names:            decorate(misreadNames),
	mutants.PaydoFirstStatusWins: decorate(firstStatusWins),
}

// decorate makes a rules decoration of apply, which is given the
// reference rules to call for what it leaves alone.
func decorate(apply func(d *listener.Delivery, next listener.Rules) error) func(*env, listener.Rules) listener.Rules {
	return func(_ *env, next listener.Rules) listener.Rules {
		return listener.RulesFunc(func(d *listener.Delivery) error { return apply(d, next) })
	}
}

// payment reports whether the reference rules apply d to a PayPal
// transaction of its own: a payment, or a refund or reversal of one (not
// a Mass Pay, a case, an Adaptive Payment, or a message without a txn_id
// or status).
func payment(d *listener.Delivery) bool {
	return d.Item.Provider == listener.PayPal && d.Kind != "masspay" && d.Kind != "new_case" &&
		d.Fields["transaction_type"] == "" && d.Txn != "" && d.Status != ""
}

// child is the payment a refund, reversal or canceled reversal undoes
// ("" for a payment).
func child(d *listener.Delivery) string {
	if p := d.Fields["parent_txn_id"]; p != d.Txn {
		return p
	}
	return ""
}

// known reads d's transaction: ok false when the listener has none yet.
func known(d *listener.Delivery, provider string) (store.Txn, bool, error) {
	return knownTxn(d, provider, d.Txn)
}

// knownTxn reads transaction id: ok false when the listener has none yet.
func knownTxn(d *listener.Delivery, provider, id string) (store.Txn, bool, error) {
	t, err := d.Tx.Txn(provider, id)
	if errors.Is(err, store.ErrNotFound) {
		return t, false, nil
	}
	return t, err == nil, err
}

// dedupeByTxn takes any message of a transaction it knows for a duplicate,
// whatever the status it reports.
func dedupeByTxn(d *listener.Delivery, next listener.Rules) error {
	if !payment(d) {
		return next.Apply(d)
	}
	return ignoreKnown(d, next, listener.PayPal, "duplicate txn_id")
}

// ignoreKnown ignores, saying detail, a message of a transaction the
// listener knows; the rest goes to next.
func ignoreKnown(d *listener.Delivery, next listener.Rules, provider, detail string) error {
	_, seen, err := known(d, provider)
	switch {
	case err != nil:
		return err
	case seen:
		return d.Log(d.Txn, d.Kind, d.Status, "ignored", detail)
	}
	return next.Apply(d)
}

// dedupeByLastStatus compares a message with the transaction's latest
// status only: any other status is new to it, applied whatever the order
// (a late Pending becomes the latest), and credited again if it is a
// Completed one.
func dedupeByLastStatus(d *listener.Delivery, next listener.Rules) error {
	if payment(d) {
		t, seen, err := known(d, listener.PayPal)
		if err != nil {
			return err
		}
		if seen && t.Status != d.Status {
			d.Tx = &latestOnly{Tx: d.Tx, txn: d.Txn, item: d.Item.ID}
		}
	}
	return next.Apply(d)
}

// latestOnly is the store as dedupe-by-last-status sees it for one message
// that is new to it: the transaction's status is no order to keep, and a
// credit of it is not the one already made.
type latestOnly struct {
	store.Tx
	txn  string
	item int64
}

func (l *latestOnly) Txn(provider, txnID string) (store.Txn, error) {
	t, err := l.Tx.Txn(provider, txnID)
	if txnID == l.txn {
		t.Status = ""
	}
	return t, err
}

func (l *latestOnly) AddEntry(e store.Entry) (bool, error) {
	if e.TxnID == l.txn && e.Status == "Completed" {
		taken, err := l.Tx.HasEntry(e.Provider, e.TxnID, e.Status)
		if err != nil {
			return false, err
		}
		if taken {
			e.Status = fmt.Sprintf("%s#%d", e.Status, l.item)
		}
	}
	return l.Tx.AddEntry(e)
}

// creditPending credits a Pending payment the reference rules held: every
// one, or (fraudOnly) those held by fraud filters.
func creditPending(fraudOnly bool) func(*env, listener.Rules) listener.Rules {
	return decorate(func(d *listener.Delivery, next listener.Rules) error {
		if err := next.Apply(d); err != nil || !payment(d) || d.Status != "Pending" || child(d) != "" {
			return err
		}
		if fraudOnly && d.Fields["fraud_management_pending_filters_1"] == "" {
			return nil
		}
		t, seen, err := known(d, listener.PayPal)
		if err != nil || !seen || t.Status != "Pending" || t.Held == "" || !listener.PaysIn(t.Kind) {
			return err
		}
		return credit(d, t, d.Kind)
	})
}

// credit credits t as the reference rules credit a completed payment,
// and logs it as a message of kind.
func credit(d *listener.Delivery, t store.Txn, kind string) error {
	action, detail, held, err := d.Credit(&t)
	if err != nil {
		return err
	}
	t.Held = held
	if err := d.Tx.PutTxn(t); err != nil {
		return err
	}
	return d.Log(t.TxnID, kind, t.Status, action, detail)
}

// ignoreReceiver never checks whom a payment was for: the rules read every
// payment as one to the merchant.
func ignoreReceiver(e *env, next listener.Rules) listener.Rules {
	return listener.RulesFunc(func(d *listener.Delivery) error {
		m := d.Fields
		if payment(d) && !d.Ours(m["receiver_email"], m["receiver_id"], m["business"]) {
			d.Fields = maps.Clone(m)
			if len(e.cfg.ReceiverEmails) > 0 {
				d.Fields["receiver_email"] = e.cfg.ReceiverEmails[0]
			} else if len(e.cfg.ReceiverIDs) > 0 {
				d.Fields["receiver_id"] = e.cfg.ReceiverIDs[0]
			}
		}
		return next.Apply(d)
	})
}

// refundAsPayment ignores parent_txn_id: a refund to the merchant credits
// its amount to the payer's customer, like a payment.
func refundAsPayment(d *listener.Delivery, next listener.Rules) error {
	m := d.Fields
	if !payment(d) || d.Status != "Refunded" || !d.Ours(m["receiver_email"], m["receiver_id"], m["business"]) {
		return next.Apply(d)
	}
	gross, err := strconv.ParseFloat(m["mc_gross"], 64)
	if err != nil {
		return next.Apply(d) // the reference rules say what is unreadable
	}
	t, seen, err := known(d, listener.PayPal)
	if err != nil {
		return err
	}
	if !seen {
		t = store.Txn{Provider: listener.PayPal, TxnID: d.Txn, FirstSeen: d.At}
	}
	t.Status, t.Customer, t.Updated = d.Status, d.CustomerFor(m["payer_email"]), d.At
	if _, err := d.Tx.AddEntry(store.Entry{Provider: listener.PayPal, TxnID: d.Txn, Status: "Completed", Customer: t.Customer,
		Amount: int64(math.Round(math.Abs(gross) * 100)), Currency: m["mc_currency"], InboxID: d.Item.ID, At: d.At}); err != nil {
		return err
	}
	if err := d.Tx.PutTxn(t); err != nil {
		return err
	}
	return d.Log(d.Txn, d.Kind, d.Status, "credited", "a refund, credited as a payment")
}

// creditOwnMassPay credits the receivers of the merchant's own Mass Pay,
// item by item, as if they had paid (the reference rules record them as
// payouts).
func creditOwnMassPay(d *listener.Delivery, next listener.Rules) error {
	if err := next.Apply(d); err != nil {
		return err
	}
	m := d.Fields
	if d.Item.Provider != listener.PayPal || d.Kind != "masspay" || !d.Ours(m["payer_email"], m["payer_id"]) {
		return nil
	}
	for i := 1; m["masspay_txn_id_"+strconv.Itoa(i)] != ""; i++ {
		t, err := d.Tx.Txn(listener.PayPal, m["masspay_txn_id_"+strconv.Itoa(i)])
		if errors.Is(err, store.ErrNotFound) || (err == nil && t.Status != "Completed") {
			continue
		}
		if err != nil {
			return err
		}
		if err := credit(d, t, "masspay"); err != nil {
			return err
		}
	}
	return nil
}

// ignoreReversals does not handle Reversed and Canceled_Reversal.
func ignoreReversals(d *listener.Delivery, next listener.Rules) error {
	if payment(d) && (d.Status == "Reversed" || d.Status == "Canceled_Reversal") {
		return d.Log(d.Txn, d.Kind, d.Status, "ignored", "reversals are not handled")
	}
	return next.Apply(d)
}

// debitEveryRefund checks payments for duplicates, not their refunds and
// reversals: one delivered again debits the customer again.
func debitEveryRefund(d *listener.Delivery, next listener.Rules) error {
	parent := child(d)
	if !payment(d) || parent == "" || d.Kind == "adjustment" || (d.Status != "Refunded" && d.Status != "Reversed") {
		return next.Apply(d)
	}
	applied, err := d.Tx.HasEntry(listener.PayPal, d.Txn, d.Status)
	if err != nil {
		return err
	}
	if err := next.Apply(d); err != nil || !applied {
		return err
	}
	k, err1 := d.Tx.Txn(listener.PayPal, d.Txn)
	p, err2 := d.Tx.Txn(listener.PayPal, parent)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	amount := d.Amount(k)
	if amount > 0 {
		amount = -amount
	}
	if _, err := d.Tx.AddEntry(store.Entry{Provider: listener.PayPal, TxnID: d.Txn, Status: fmt.Sprintf("%s#%d", d.Status, d.Item.ID),
		Customer: p.Customer, Amount: amount, Currency: p.Currency, ParentID: parent, InboxID: d.Item.ID, At: d.At}); err != nil {
		return err
	}
	return d.Log(d.Txn, d.Kind, d.Status, "debited", fmt.Sprintf("again: %d.%02d %s from %s", -amount/100, -amount%100, p.Currency, p.Customer))
}

// misreadNames decodes the payer's name as UTF-8, whatever the charset the
// message declares.
func misreadNames(d *listener.Delivery, next listener.Rules) error {
	if d.Item.Provider == listener.PayPal {
		if f, err := form.Parse(d.Item.Body); err == nil {
			d.Fields = maps.Clone(d.Fields)
			utf8 := form.MustCharset("UTF-8")
			for _, n := range []string{"first_name", "last_name"} {
				if v, ok := f.Get(n); ok {
					d.Fields[n] = utf8.Decode(v)
				}
			}
		}
	}
	return next.Apply(d)
}

// firstStatusWins keeps the first status PayDo reports of a transaction.
func firstStatusWins(d *listener.Delivery, next listener.Rules) error {
	if d.Item.Provider != listener.PayDo {
		return next.Apply(d)
	}
	return ignoreKnown(d, next, listener.PayDo, "already seen")
}
