package listener

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipnlab/ipnlab/listener/store"
)

// The business rules: what a verified PayPal message does to the ledger
// (credit, hold, debit, re-credit), for payments, their children and Mass
// Pay items.

func (d *Delivery) applyPayPal(m ipn) error {
	kind, status, txn := m.kind(), m["payment_status"], m.txn()
	switch {
	case kind == "masspay":
		return d.applyMassPay(m)
	case kind == "new_case":
		return d.Log(txn, kind, status, "recorded", fmt.Sprintf("case %s (%s) opened on %s", m["case_id"], m["case_type"], txn))
	case m["transaction_type"] != "" || status == "" || txn == "":
		return d.Log(txn, kind, status, "recorded", "no payment to apply")
	}
	if !d.Ours(m["receiver_email"], m["receiver_id"], m["business"]) {
		return d.Log(txn, kind, status, "ignored", fmt.Sprintf("receiver %q / %q is not this merchant", m["receiver_email"], m["receiver_id"]))
	}
	gross, err1 := cents(m["mc_gross"])
	fee, err2 := cents(m["mc_fee"])
	if err := errors.Join(err1, err2); err != nil {
		return d.Log(txn, kind, status, "ignored", "unreadable amount: "+err.Error())
	}
	t, err := d.Tx.Txn(PayPal, txn)
	isNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !isNew {
		return err
	}
	if isNew {
		t = store.Txn{Provider: PayPal, TxnID: txn, FirstSeen: d.At}
	}
	if statusRank[status] < statusRank[t.Status] && !isNew {
		return d.Log(txn, kind, status, "ignored", fmt.Sprintf("stale: the transaction is already %s", t.Status))
	}
	parent := m["parent_txn_id"]
	if parent == txn {
		parent = ""
	}
	if kind != "" || t.Kind == "" {
		t.Kind = kind
	}
	t.ParentID, t.Status, t.Gross, t.Fee, t.Currency = parent, status, gross, fee, m["mc_currency"]
	t.PayerEmail, t.Updated = strings.ToLower(m["payer_email"]), d.At
	t.PayerName = strings.TrimSpace(m["first_name"] + " " + m["last_name"])
	if t.Customer == "" {
		t.Customer = d.CustomerFor(t.PayerEmail)
	}
	// A capture is a payment of its own (a new txn with parent_txn_id the
	// authorization's): credited, not applied as a refund is.
	capture := status == "Completed" && m["auth_id"] != "" && parent != ""
	if parent != "" && kind != "adjustment" && !capture {
		t.Held = "" // a child's effect is decided by applyChild
		if err := d.Tx.PutTxn(t); err != nil {
			return err
		}
		return d.settleChildren(parent, txn)
	}
	action, detail := "recorded", ""
	switch {
	case status == "Pending":
		t.Held = "pending: " + m["pending_reason"]
		if filters := fraudFilters(m); filters != "" {
			t.Held += " (fraud filters: " + filters + ")"
		}
		action, detail = "held", t.Held
	case status == "Completed" && creditKinds[t.Kind]:
		action, detail, t.Held, err = d.credit(&t)
		if err != nil {
			return err
		}
	case status == "Refunded" || status == "Reversed":
		action, detail, err = d.undo(txn, status)
		if err != nil {
			return err
		}
	case status == "Canceled_Reversal":
		action, detail, err = d.redo(txn)
		if err != nil {
			return err
		}
	case statusRank[status] == 2:
		t.Held, detail = "", status+": nothing to credit"
	}
	if err := d.Tx.PutTxn(t); err != nil {
		return err
	}
	if err := d.Log(txn, kind, status, action, detail); err != nil {
		return err
	}
	if status == "Completed" {
		return d.settleChildren(txn, "")
	}
	return nil
}

// credit applies a Completed payment to its customer once.
func (d *Delivery) credit(t *store.Txn) (action, detail, held string, err error) {
	switch {
	case !d.l.currency[t.Currency]:
		held = "currency " + t.Currency + " is not accepted"
		return "not credited", held, held, nil
	case t.Customer == "":
		held = "no customer has the payer email " + t.PayerEmail
		return "not credited", held, held, nil
	}
	amount := d.Amount(*t)
	added, err := d.Tx.AddEntry(store.Entry{Provider: PayPal, TxnID: t.TxnID, Status: "Completed", Customer: t.Customer,
		Amount: amount, Currency: t.Currency, ParentID: t.ParentID, InboxID: d.Item.ID, At: d.At})
	if err != nil {
		return "", "", "", err
	}
	if !added {
		return "duplicate", "already credited", "", nil
	}
	return "credited", fmt.Sprintf("%s %s to %s", money(amount), t.Currency, t.Customer), "", nil
}

// undo debits what a transaction credited, when its own status becomes
// Refunded or Reversed (a payment review ending in Reversed).
func (d *Delivery) undo(txn, status string) (string, string, error) {
	credited, err := d.creditOf(txn)
	if err != nil || credited == nil {
		return "recorded", "nothing was credited", err
	}
	added, err := d.Tx.AddEntry(store.Entry{Provider: PayPal, TxnID: txn, Status: status, Customer: credited.Customer,
		Amount: -credited.Amount, Currency: credited.Currency, InboxID: d.Item.ID, At: d.At})
	if err != nil || !added {
		return "duplicate", "already debited", err
	}
	return "debited", fmt.Sprintf("%s %s from %s", money(-credited.Amount), credited.Currency, credited.Customer), nil
}

// redo re-credits a transaction whose own reversal was canceled.
func (d *Delivery) redo(txn string) (string, string, error) {
	credited, err := d.creditOf(txn)
	if err != nil || credited == nil {
		return "recorded", "nothing was credited", err
	}
	reversed, err := d.Tx.HasEntry(PayPal, txn, "Reversed")
	if err != nil || !reversed {
		return "recorded", "nothing was reversed", err
	}
	added, err := d.Tx.AddEntry(store.Entry{Provider: PayPal, TxnID: txn, Status: "Canceled_Reversal", Customer: credited.Customer,
		Amount: credited.Amount, Currency: credited.Currency, InboxID: d.Item.ID, At: d.At})
	if err != nil || !added {
		return "duplicate", "already re-credited", err
	}
	return "re-credited", fmt.Sprintf("%s %s to %s", money(credited.Amount), credited.Currency, credited.Customer), nil
}

// creditOf returns the credit entry of a payment, or nil.
func (d *Delivery) creditOf(txn string) (*store.Entry, error) {
	t, err := d.Tx.Txn(PayPal, txn)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ok, err := d.Tx.HasEntry(PayPal, txn, "Completed")
	if err != nil || !ok {
		return nil, err
	}
	return &store.Entry{Customer: t.Customer, Amount: d.Amount(t), Currency: t.Currency}, nil
}

// settleChildren applies the refunds and reversals of parent that can be
// applied now (the parent credited, a reversal before its cancellation),
// and marks the rest as held. logFor names the child whose arrival caused
// this, to log its outcome.
func (d *Delivery) settleChildren(parent, logFor string) error {
	for progress := true; progress; {
		progress = false
		kids, err := d.Tx.Children(PayPal, parent)
		if err != nil {
			return err
		}
		for _, k := range kids {
			applied, err := d.Tx.HasEntry(PayPal, k.TxnID, k.Status)
			if err != nil {
				return err
			}
			if applied {
				continue
			}
			action, detail, held, err := d.applyChild(parent, k)
			if err != nil {
				return err
			}
			if k.Held != held {
				k.Held = held
				if err := d.Tx.PutTxn(k); err != nil {
					return err
				}
			}
			if held == "" && action != "recorded" {
				progress = true
			}
			if k.TxnID == logFor || (held == "" && action != "recorded") {
				if err := d.Log(k.TxnID, k.Kind, k.Status, action, detail); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// applyChild applies one refund, reversal or canceled reversal of parent.
func (d *Delivery) applyChild(parent string, k store.Txn) (action, detail, held string, err error) {
	credited, err := d.creditOf(parent)
	if err != nil {
		return "", "", "", err
	}
	if credited == nil {
		if ended, err := d.reversedWhilePending(parent, k); err != nil || ended {
			return "recorded", "reversed before it was credited: nothing to debit", "", err
		}
		held = "waiting for the parent payment " + parent + " to be credited"
		return "held", held, held, nil
	}
	amount := d.Amount(k)
	switch k.Status {
	case "Refunded", "Reversed":
		if amount > 0 {
			amount = -amount
		}
	case "Canceled_Reversal":
		kids, err := d.Tx.Children(PayPal, parent)
		if err != nil {
			return "", "", "", err
		}
		reversed := false
		for _, s := range kids {
			if s.Status == "Reversed" {
				if ok, _ := d.Tx.HasEntry(PayPal, s.TxnID, "Reversed"); ok {
					reversed = true
				}
			}
		}
		if !reversed {
			held = "waiting for the reversal it cancels"
			return "held", held, held, nil
		}
		if amount < 0 {
			amount = -amount
		}
	default:
		return "recorded", k.Status + " of " + parent, "", nil
	}
	added, err := d.Tx.AddEntry(store.Entry{Provider: PayPal, TxnID: k.TxnID, Status: k.Status, Customer: credited.Customer,
		Amount: amount, Currency: credited.Currency, ParentID: parent, InboxID: d.Item.ID, At: d.At})
	if err != nil {
		return "", "", "", err
	}
	if !added {
		return "duplicate", "already applied", "", nil
	}
	verb := "debited"
	if amount > 0 {
		verb = "re-credited"
	}
	return verb, fmt.Sprintf("%s %s for %s of %s", money(amount), credited.Currency, strings.ToLower(k.Status), parent), "", nil
}

// reversedWhilePending ends a payment PayPal reversed before it released
// it (a payment review that failed): the Reversed child of a Pending
// parent that was never credited. The parent ends Reversed, its hold
// lifted; there is nothing to debit.
func (d *Delivery) reversedWhilePending(parent string, k store.Txn) (bool, error) {
	if k.Status != "Reversed" {
		return false, nil
	}
	p, err := d.Tx.Txn(PayPal, parent)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // the parent may still come: held
	}
	if err != nil {
		return false, err
	}
	switch p.Status {
	case "Reversed":
		return true, nil
	case "Pending":
		p.Status, p.Held, p.Updated = "Reversed", "", d.At
		return true, d.Tx.PutTxn(p)
	}
	return false, nil
}

// applyMassPay applies a Mass Pay. One the merchant sent pays its items
// out: each is recorded, never a top-up. One a payer sent, whose items pay
// this merchant, tops up the customer matched by the payer's email, item
// by item (how ConnexCS's customers pay: "via mass pay or send money").
func (d *Delivery) applyMassPay(m ipn) error {
	own := d.Ours(m["payer_email"], m["payer_id"], "")
	for i := 1; ; i++ {
		n := fmt.Sprint(i)
		item := m["masspay_txn_id_"+n]
		if item == "" {
			if i == 1 {
				return d.Log("", "masspay", m["payment_status"], "recorded", "no items")
			}
			return nil
		}
		status := m["status_"+n]
		gross, err1 := cents(m["mc_gross_"+n])
		fee, err2 := cents(m["mc_fee_"+n])
		if err := errors.Join(err1, err2); err != nil {
			if err := d.Log(item, "masspay", status, "ignored", "unreadable amount: "+err.Error()); err != nil {
				return err
			}
			continue
		}
		receiver := strings.ToLower(m["receiver_email_"+n])
		if !own && !d.Ours(receiver) {
			if err := d.Log(item, "masspay", status, "ignored", "an item paid to someone else"); err != nil {
				return err
			}
			continue
		}
		// Whose the item is: the payer's, for a top-up; the receiver's,
		// for the merchant's own payout (recorded only).
		email := strings.ToLower(m["payer_email"])
		if own {
			email = receiver
		}
		t := store.Txn{Provider: PayPal, TxnID: item, Kind: "masspay", Status: status, Gross: gross, Fee: fee,
			Currency: m["mc_currency_"+n], PayerEmail: email, Customer: d.CustomerFor(email), FirstSeen: d.At, Updated: d.At}
		if old, err := d.Tx.Txn(PayPal, item); err == nil {
			t.FirstSeen = old.FirstSeen
		}
		action, detail := "recorded", "item "+status
		switch {
		case own:
			action, detail = "recorded", "payout "+status+": the merchant's own Mass Pay is not a top-up"
		case status == "Completed":
			var err error
			if action, detail, t.Held, err = d.credit(&t); err != nil {
				return err
			}
		}
		if err := d.Tx.PutTxn(t); err != nil {
			return err
		}
		if err := d.Log(item, "masspay", status, action, detail); err != nil {
			return err
		}
	}
}

func fraudFilters(m ipn) string {
	var out []string
	for i := 1; ; i++ {
		f, ok := m[fmt.Sprintf("fraud_management_pending_filters_%d", i)]
		if !ok {
			return strings.Join(out, ", ")
		}
		out = append(out, f)
	}
}

// ours reports whether any of the ids names this merchant.
func (l *Listener) ours(ids ...string) bool {
	for _, id := range ids {
		if id != "" && l.receivers[strings.ToLower(id)] {
			return true
		}
	}
	return false
}

// customerFor matches a payer's email to a customer ("" when none).
func (l *Listener) customerFor(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	if id, ok := l.customers[email]; ok {
		return id
	}
	if l.cfg.UnknownPayers == "create" && email != "" {
		return email
	}
	return ""
}
