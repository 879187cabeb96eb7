package listener

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/listener/store"
)

// The business rules: what a verified PayPal message does to the ledger
// (credit, hold, debit, re-credit), for payments, their children and Mass
// Pay items.

// run is the application of one verified message inside a transaction.
type run struct {
	l    *Listener
	tx   store.Tx
	item store.InboxItem
	at   time.Time
	// relapse is set for a mutant that takes this message for a new one
	// although the transaction was credited (entryKey gives it a key of
	// its own).
	relapse bool
}

func (r *run) log(txn, kind, status, verdict, action, detail string) error {
	return r.tx.AddLog(store.LogLine{InboxID: r.item.ID, Provider: r.item.Provider, TxnID: txn, Kind: kind, Status: status,
		Verdict: verdict, Action: action, Detail: detail, At: r.at})
}

func (r *run) applyPayPal(m ipn) error {
	kind, status, txn := m.kind(), m["payment_status"], m.txn()
	switch {
	case kind == "masspay":
		return r.applyMassPay(m)
	case kind == "new_case":
		return r.log(txn, kind, status, "VERIFIED", "recorded", fmt.Sprintf("case %s (%s) opened on %s", m["case_id"], m["case_type"], txn))
	case m["transaction_type"] != "" || status == "" || txn == "":
		return r.log(txn, kind, status, "VERIFIED", "recorded", "no payment to apply")
	}
	if !r.l.ours(m["receiver_email"], m["receiver_id"], m["business"]) && !r.l.flaw.IgnoreReceiver {
		return r.log(txn, kind, status, "VERIFIED", "ignored", fmt.Sprintf("receiver %q / %q is not this merchant", m["receiver_email"], m["receiver_id"]))
	}
	gross, err1 := cents(m["mc_gross"])
	fee, err2 := cents(m["mc_fee"])
	if err := errors.Join(err1, err2); err != nil {
		return r.log(txn, kind, status, "VERIFIED", "ignored", "unreadable amount: "+err.Error())
	}
	t, err := r.tx.Txn(PayPal, txn)
	isNew := errors.Is(err, store.ErrNotFound)
	if err != nil && !isNew {
		return err
	}
	if isNew {
		t = store.Txn{Provider: PayPal, TxnID: txn, FirstSeen: r.at}
	}
	if done, err := r.mutantRules(m, t, isNew); done || err != nil {
		return err
	}
	// The dedupe-by-last-status mutant: a status other than the latest is
	// new to it, and a late Pending is taken as the latest.
	r.relapse = r.l.flaw.DedupeByLastStatus && !isNew && status != t.Status
	if statusRank[status] < statusRank[t.Status] && !isNew && !r.l.flaw.DedupeByLastStatus {
		return r.log(txn, kind, status, "VERIFIED", "ignored", fmt.Sprintf("stale: the transaction is already %s", t.Status))
	}
	parent := m["parent_txn_id"]
	if parent == txn {
		parent = ""
	}
	if kind != "" || t.Kind == "" {
		t.Kind = kind
	}
	t.ParentID, t.Status, t.Gross, t.Fee, t.Currency = parent, status, gross, fee, m["mc_currency"]
	t.PayerEmail, t.Updated = strings.ToLower(m["payer_email"]), r.at
	t.PayerName = strings.TrimSpace(m["first_name"] + " " + m["last_name"])
	if t.Customer == "" {
		t.Customer = r.l.customerFor(t.PayerEmail)
	}
	// A capture is a payment of its own (a new txn with parent_txn_id the
	// authorization's): credited, not applied as a refund is.
	capture := status == "Completed" && m["auth_id"] != "" && parent != ""
	if parent != "" && kind != "adjustment" && !capture {
		t.Held = "" // a child's effect is decided by applyChild
		if err := r.tx.PutTxn(t); err != nil {
			return err
		}
		return r.settleChildren(parent, txn)
	}
	action, detail := "recorded", ""
	switch {
	case status == "Pending" && creditKinds[t.Kind] && (r.l.flaw.CreditPending || (r.l.flaw.CreditFraudPends && fraudFilters(m) != "")):
		action, detail, t.Held, err = r.credit(&t)
		if err != nil {
			return err
		}
	case status == "Pending":
		t.Held = "pending: " + m["pending_reason"]
		if filters := fraudFilters(m); filters != "" {
			t.Held += " (fraud filters: " + filters + ")"
		}
		action, detail = "held", t.Held
	case status == "Completed" && creditKinds[t.Kind]:
		action, detail, t.Held, err = r.credit(&t)
		if err != nil {
			return err
		}
	case status == "Refunded" || status == "Reversed":
		action, detail, err = r.undo(txn, status)
		if err != nil {
			return err
		}
	case status == "Canceled_Reversal":
		action, detail, err = r.redo(txn)
		if err != nil {
			return err
		}
	case statusRank[status] == 2:
		t.Held, detail = "", status+": nothing to credit"
	}
	if err := r.tx.PutTxn(t); err != nil {
		return err
	}
	if err := r.log(txn, kind, status, "VERIFIED", action, detail); err != nil {
		return err
	}
	if status == "Completed" {
		return r.settleChildren(txn, "")
	}
	return nil
}

// credit applies a Completed payment to its customer once.
func (r *run) credit(t *store.Txn) (action, detail, held string, err error) {
	switch {
	case !r.l.currency[t.Currency]:
		held = "currency " + t.Currency + " is not accepted"
		return "not credited", held, held, nil
	case t.Customer == "":
		held = "no customer has the payer email " + t.PayerEmail
		return "not credited", held, held, nil
	}
	amount := t.Gross
	if r.l.cfg.DeductFees {
		amount -= t.Fee
	}
	key, err := r.entryKey(t.TxnID, "Completed")
	if err != nil {
		return "", "", "", err
	}
	added, err := r.tx.AddEntry(store.Entry{Provider: PayPal, TxnID: t.TxnID, Status: key, Customer: t.Customer,
		Amount: amount, Currency: t.Currency, ParentID: t.ParentID, InboxID: r.item.ID, At: r.at})
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
func (r *run) undo(txn, status string) (string, string, error) {
	credited, err := r.creditOf(txn)
	if err != nil || credited == nil {
		return "recorded", "nothing was credited", err
	}
	added, err := r.tx.AddEntry(store.Entry{Provider: PayPal, TxnID: txn, Status: status, Customer: credited.Customer,
		Amount: -credited.Amount, Currency: credited.Currency, InboxID: r.item.ID, At: r.at})
	if err != nil || !added {
		return "duplicate", "already debited", err
	}
	return "debited", fmt.Sprintf("%s %s from %s", money(-credited.Amount), credited.Currency, credited.Customer), nil
}

// redo re-credits a transaction whose own reversal was canceled.
func (r *run) redo(txn string) (string, string, error) {
	credited, err := r.creditOf(txn)
	if err != nil || credited == nil {
		return "recorded", "nothing was credited", err
	}
	reversed, err := r.tx.HasEntry(PayPal, txn, "Reversed")
	if err != nil || !reversed {
		return "recorded", "nothing was reversed", err
	}
	added, err := r.tx.AddEntry(store.Entry{Provider: PayPal, TxnID: txn, Status: "Canceled_Reversal", Customer: credited.Customer,
		Amount: credited.Amount, Currency: credited.Currency, InboxID: r.item.ID, At: r.at})
	if err != nil || !added {
		return "duplicate", "already re-credited", err
	}
	return "re-credited", fmt.Sprintf("%s %s to %s", money(credited.Amount), credited.Currency, credited.Customer), nil
}

// creditOf returns the credit entry of a payment, or nil.
func (r *run) creditOf(txn string) (*store.Entry, error) {
	t, err := r.tx.Txn(PayPal, txn)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ok, err := r.tx.HasEntry(PayPal, txn, "Completed")
	if err != nil || !ok {
		return nil, err
	}
	amount := t.Gross
	if r.l.cfg.DeductFees {
		amount -= t.Fee
	}
	return &store.Entry{Customer: t.Customer, Amount: amount, Currency: t.Currency}, nil
}

// settleChildren applies the refunds and reversals of parent that can be
// applied now (the parent credited, a reversal before its cancellation),
// and marks the rest as held. logFor names the child whose arrival caused
// this, to log its outcome.
func (r *run) settleChildren(parent, logFor string) error {
	redone := map[string]bool{} // children this delivery applied (the duplicate-refunds mutant applies its own once more)
	for progress := true; progress; {
		progress = false
		kids, err := r.tx.Children(PayPal, parent)
		if err != nil {
			return err
		}
		for _, k := range kids {
			applied, err := r.tx.HasEntry(PayPal, k.TxnID, k.Status)
			if err != nil {
				return err
			}
			again := applied && r.l.flaw.DebitEveryRefund && k.TxnID == logFor && !redone[k.TxnID]
			if applied && !again {
				continue
			}
			redone[k.TxnID] = true // applied by this delivery: once
			action, detail, held, err := r.applyChild(parent, k, again)
			if err != nil {
				return err
			}
			if k.Held != held {
				k.Held = held
				if err := r.tx.PutTxn(k); err != nil {
					return err
				}
			}
			if held == "" && action != "recorded" {
				progress = true
			}
			if k.TxnID == logFor || (held == "" && action != "recorded") {
				if err := r.log(k.TxnID, k.Kind, k.Status, "VERIFIED", action, detail); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// applyChild applies one refund, reversal or canceled reversal of parent.
func (r *run) applyChild(parent string, k store.Txn, again bool) (action, detail, held string, err error) {
	credited, err := r.creditOf(parent)
	if err != nil {
		return "", "", "", err
	}
	if credited == nil {
		if ended, err := r.reversedWhilePending(parent, k); err != nil || ended {
			return "recorded", "reversed before it was credited: nothing to debit", "", err
		}
		held = "waiting for the parent payment " + parent + " to be credited"
		return "held", held, held, nil
	}
	amount := k.Gross
	if r.l.cfg.DeductFees {
		amount -= k.Fee
	}
	switch k.Status {
	case "Refunded", "Reversed":
		if amount > 0 {
			amount = -amount
		}
	case "Canceled_Reversal":
		kids, err := r.tx.Children(PayPal, parent)
		if err != nil {
			return "", "", "", err
		}
		reversed := false
		for _, s := range kids {
			if s.Status == "Reversed" {
				if ok, _ := r.tx.HasEntry(PayPal, s.TxnID, "Reversed"); ok {
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
	key := k.Status
	if again { // the duplicate-refunds mutant: a key of its own for this delivery
		key = fmt.Sprintf("%s#%d", k.Status, r.item.ID)
	}
	added, err := r.tx.AddEntry(store.Entry{Provider: PayPal, TxnID: k.TxnID, Status: key, Customer: credited.Customer,
		Amount: amount, Currency: credited.Currency, ParentID: parent, InboxID: r.item.ID, At: r.at})
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
func (r *run) reversedWhilePending(parent string, k store.Txn) (bool, error) {
	if k.Status != "Reversed" {
		return false, nil
	}
	p, err := r.tx.Txn(PayPal, parent)
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
		p.Status, p.Held, p.Updated = "Reversed", "", r.at
		return true, r.tx.PutTxn(p)
	}
	return false, nil
}

// applyMassPay applies a Mass Pay. One the merchant sent pays its items
// out: each is recorded, never a top-up. One a payer sent, whose items pay
// this merchant, tops up the customer matched by the payer's email, item
// by item (how ConnexCS's customers pay: "via mass pay or send money").
func (r *run) applyMassPay(m ipn) error {
	own := r.l.ours(m["payer_email"], m["payer_id"], "")
	// The bug some listeners have: the merchant's own payouts credit their
	// receivers, as if they had paid.
	payout := own && !r.l.flaw.CreditMassPayReceivers
	for i := 1; ; i++ {
		n := fmt.Sprint(i)
		item := m["masspay_txn_id_"+n]
		if item == "" {
			if i == 1 {
				return r.log("", "masspay", m["payment_status"], "VERIFIED", "recorded", "no items")
			}
			return nil
		}
		status := m["status_"+n]
		gross, err1 := cents(m["mc_gross_"+n])
		fee, err2 := cents(m["mc_fee_"+n])
		if err := errors.Join(err1, err2); err != nil {
			if err := r.log(item, "masspay", status, "VERIFIED", "ignored", "unreadable amount: "+err.Error()); err != nil {
				return err
			}
			continue
		}
		receiver := strings.ToLower(m["receiver_email_"+n])
		if !own && !r.l.ours(receiver) {
			if err := r.log(item, "masspay", status, "VERIFIED", "ignored", "an item paid to someone else"); err != nil {
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
			Currency: m["mc_currency_"+n], PayerEmail: email, Customer: r.l.customerFor(email), FirstSeen: r.at, Updated: r.at}
		if old, err := r.tx.Txn(PayPal, item); err == nil {
			t.FirstSeen = old.FirstSeen
		}
		action, detail := "recorded", "item "+status
		switch {
		case payout:
			action, detail = "recorded", "payout "+status+": the merchant's own Mass Pay is not a top-up"
		case status == "Completed":
			var err error
			if action, detail, t.Held, err = r.credit(&t); err != nil {
				return err
			}
		}
		if err := r.tx.PutTxn(t); err != nil {
			return err
		}
		if err := r.log(item, "masspay", status, "VERIFIED", action, detail); err != nil {
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
