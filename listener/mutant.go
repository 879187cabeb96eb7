package listener

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/listener/store"
)

// The code below runs only for a flawed listener (Config.Mutant; see
// mutants.Flaw): each function reproduces one bug real IPN listeners have
// that needs the listener's own state. The reference listener never takes
// these paths.

// knownTxnTypes are the txn_types an "ignored-500" mutant still acks.
var knownTxnTypes = map[string]bool{
	"": true, "adjustment": true, "cart": true, "express_checkout": true, "masspay": true, "merch_pmt": true,
	"mp_cancel": true, "mp_signup": true, "new_case": true, "payout": true, "pro_hosted": true, "recurring_payment": true,
	"recurring_payment_expired": true, "recurring_payment_failed": true, "recurring_payment_profile_cancel": true,
	"recurring_payment_profile_created": true, "recurring_payment_skipped": true, "recurring_payment_suspended": true,
	"recurring_payment_suspended_due_to_max_failed_payment": true, "send_money": true, "subscr_cancel": true,
	"subscr_eot": true, "subscr_failed": true, "subscr_modify": true, "subscr_payment": true, "subscr_signup": true,
	"virtual_terminal": true, "web_accept": true,
}

// wouldIgnore is the "ignored-500" mutant's door check: the messages the
// reference listener ignores after verifying (another merchant's, a kind
// it does not handle, a child of a payment it has not seen), decided
// before storing so that they can be refused.
func (l *Listener) wouldIgnore(ctx context.Context, body []byte) bool {
	m, err := decodeIPN(body)
	if err != nil {
		return true
	}
	switch {
	case m["transaction_type"] != "":
		return false // Adaptive Payments: recorded, not ignored
	case m["txn_type"] == "masspay":
		// Ours: the merchant's own payout, or a payer's whose items pay
		// the merchant (a top-up).
		if l.ours(m["payer_email"], m["payer_id"]) {
			return false
		}
		for i := 1; m["masspay_txn_id_"+strconv.Itoa(i)] != ""; i++ {
			if l.ours(strings.ToLower(m["receiver_email_"+strconv.Itoa(i)])) {
				return false
			}
		}
		return true
	case !knownTxnTypes[m["txn_type"]] || !l.ours(m["receiver_email"], m["receiver_id"], m["business"]):
		return true
	}
	if p := m["parent_txn_id"]; p != "" {
		_, err := l.store.Txn(ctx, PayPal, p)
		return errors.Is(err, store.ErrNotFound)
	}
	return false
}

// misreadNames decodes the payer's name as UTF-8 whatever the charset.
func (m ipn) misreadNames(body []byte) {
	f, err := form.Parse(body)
	if err != nil {
		return
	}
	utf8 := form.MustCharset("UTF-8")
	for _, n := range []string{"first_name", "last_name"} {
		if v, ok := f.Get(n); ok {
			m[n] = utf8.Decode(v)
		}
	}
}

// racyDuplicate is the "racy-duplicates" mutant's check-then-act: it looks
// for an earlier credit outside any transaction, then gives other workers
// time to look too before anyone writes.
func (l *Listener) racyDuplicate(ctx context.Context, it store.InboxItem, m ipn) bool {
	if m.txn() == "" {
		return false // a Mass Pay: its items are transactions of their own
	}
	entries, err := l.store.Entries(ctx, PayPal, m.txn())
	if err == nil && len(entries) > 0 {
		_ = l.finish(ctx, it, store.InboxDone, "duplicate")
		return true
	}
	// The window every real race has, made wide: the worker waits until
	// every copy of the transaction received so far is inside the same
	// window, and 200 ms more for later ones, at most 3 s. Waiting for
	// the other copies to be picked up, not only received, keeps the race
	// when the other workers are busy elsewhere: with a fixed window the
	// copies met or missed each other depending on what else the listener
	// had to do.
	txn := m.txn()
	l.mu.Lock()
	l.racing[txn]++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.racing[txn]--; l.racing[txn] <= 0 {
			delete(l.racing, txn)
		}
		l.mu.Unlock()
	}()
	now := time.Now()
	deadline, quiet := now.Add(3*time.Second), now.Add(200*time.Millisecond)
	for t := now; t.Before(deadline); t = time.Now() {
		l.mu.Lock()
		// More copies wait outside while a worker is free to take them.
		waiting := l.busyTxns[txn] > l.racing[txn] && l.racing[txn] < l.cfg.Workers
		l.mu.Unlock()
		if waiting {
			quiet = t.Add(200 * time.Millisecond)
		} else if !t.Before(quiet) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// entryKey is the ledger key for a status: unique per transaction, except
// for the mutants that lost the unique constraint, whose every later
// credit of the same transaction gets a key of its own (the first keeps
// the plain one, so refunds and reversals still find it).
func (r *run) entryKey(txn, status string) (string, error) {
	if !r.l.flaw.NoUniqueCredit && !r.relapse {
		return status, nil
	}
	taken, err := r.tx.HasEntry(PayPal, txn, status)
	if err != nil || !taken {
		return status, err
	}
	return fmt.Sprintf("%s#%d", status, r.item.ID), nil
}

// mutantRules are the rule-level bugs; done means the message was handled.
func (r *run) mutantRules(m ipn, t store.Txn, isNew bool) (bool, error) {
	kind, status, txn := m.kind(), m["payment_status"], m.txn()
	switch {
	case r.l.flaw.DedupeByTxn && !isNew:
		return true, r.log(txn, kind, status, "VERIFIED", "ignored", "duplicate txn_id")
	case r.l.flaw.IgnoreReversals && (status == "Reversed" || status == "Canceled_Reversal"):
		return true, r.log(txn, kind, status, "VERIFIED", "ignored", "reversals are not handled")
	case r.l.flaw.RefundAsPayment && status == "Refunded":
		gross, err := cents(m["mc_gross"])
		if err != nil {
			return true, err
		}
		if gross < 0 {
			gross = -gross
		}
		customer := r.l.customerFor(m["payer_email"])
		if _, err := r.tx.AddEntry(store.Entry{Provider: PayPal, TxnID: txn, Status: "Completed", Customer: customer,
			Amount: gross, Currency: m["mc_currency"], InboxID: r.item.ID, At: r.at}); err != nil {
			return true, err
		}
		t.Status, t.Customer, t.Updated = status, customer, r.at
		if err := r.tx.PutTxn(t); err != nil {
			return true, err
		}
		return true, r.log(txn, kind, status, "VERIFIED", "credited", "a refund, credited as a payment")
	}
	return false, nil
}
