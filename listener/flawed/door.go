package flawed

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store"
)

// refuseIgnored answers 500 to a PayPal message the listener would ignore
// after verifying it (another merchant's, a kind it does not handle, a
// refund of a payment it has not seen), decided at the door so that it
// can be refused; the rest goes to the listener.
func refuseIgnored(e *env, next http.Handler) http.Handler {
	merchant := map[string]bool{}
	for _, id := range append(append([]string{}, e.cfg.ReceiverEmails...), e.cfg.ReceiverIDs...) {
		merchant[strings.ToLower(id)] = true
	}
	ours := func(ids ...string) bool {
		for _, id := range ids {
			if id != "" && merchant[strings.ToLower(id)] {
				return true
			}
		}
		return false
	}
	return onPayPal(next, func(w http.ResponseWriter, r *http.Request) {
		if body, ok := peekIPN(r); ok && wouldIgnore(r.Context(), e.store, ours, body) {
			http.Error(w, "not for us", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// knownTxnTypes are the txn_types the ignored-500 mutant still acks.
var knownTxnTypes = map[string]bool{
	"": true, "adjustment": true, "cart": true, "express_checkout": true, "masspay": true, "merch_pmt": true,
	"mp_cancel": true, "mp_signup": true, "new_case": true, "payout": true, "pro_hosted": true, "recurring_payment": true,
	"recurring_payment_expired": true, "recurring_payment_failed": true, "recurring_payment_profile_cancel": true,
	"recurring_payment_profile_created": true, "recurring_payment_skipped": true, "recurring_payment_suspended": true,
	"recurring_payment_suspended_due_to_max_failed_payment": true, "send_money": true, "subscr_cancel": true,
	"subscr_eot": true, "subscr_failed": true, "subscr_modify": true, "subscr_payment": true, "subscr_signup": true,
	"virtual_terminal": true, "web_accept": true,
}

// wouldIgnore reads a message as the reference rules would, up to whether
// they would ignore it.
func wouldIgnore(ctx context.Context, st store.Store, ours func(...string) bool, body []byte) bool {
	m, err := listener.DecodeIPN(body)
	if err != nil {
		return true
	}
	switch {
	case m["transaction_type"] != "":
		return false // Adaptive Payments: recorded, not ignored
	case m["txn_type"] == "masspay":
		// Ours: the merchant's own payout, or a payer's whose items pay
		// the merchant (a top-up).
		if ours(m["payer_email"], m["payer_id"]) {
			return false
		}
		for i := 1; m["masspay_txn_id_"+strconv.Itoa(i)] != ""; i++ {
			if ours(m["receiver_email_"+strconv.Itoa(i)]) {
				return false
			}
		}
		return true
	case !knownTxnTypes[m["txn_type"]] || !ours(m["receiver_email"], m["receiver_id"], m["business"]):
		return true
	}
	if p := m["parent_txn_id"]; p != "" {
		_, err := st.Txn(ctx, listener.PayPal, p)
		return errors.Is(err, store.ErrNotFound)
	}
	return false
}
