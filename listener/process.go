package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/listener/store"
)

// process handles one inbox item; it asks to be retried after wait when a
// step that can succeed later (the verifier, a lookup, the store) failed.
func (l *Listener) process(q queued) (retry bool, wait time.Duration) {
	ctx := context.Background()
	id := q.id
	var it store.InboxItem
	var err error
	if q.item != nil {
		it = *q.item
	} else if it, err = l.store.Inbox(ctx, id); err != nil {
		l.log.Error("inbox item unreadable", "id", id, "error", err)
		return false, 0
	}
	if it.State != store.InboxPending {
		return false, 0
	}
	switch it.Provider {
	case PayPal:
		err = l.processPayPal(ctx, it)
	case PayDo:
		err = l.processPayDo(ctx, it)
	default:
		err = l.finish(ctx, it, store.InboxFailed, "unknown provider "+it.Provider)
	}
	if err == nil {
		return false, 0
	}
	it.Attempts++
	if l.is("implicit-200") {
		// The bug: the 200 went out already and the failure is swallowed.
		_ = l.finish(ctx, it, store.InboxDone, "dropped: "+err.Error())
		return false, 0
	}
	if it.Attempts >= l.cfg.Verify.Attempts {
		l.log.Error("giving up on a notification; it stays in the inbox as failed", "id", id, "attempts", it.Attempts, "error", err)
		_ = l.store.Tx(ctx, func(tx store.Tx) error {
			if err := tx.AddLog(store.LogLine{InboxID: id, Provider: it.Provider, Verdict: "unverified", Action: "failed", Detail: err.Error(), At: l.cfg.now()}); err != nil {
				return err
			}
			return tx.SetInboxState(id, store.InboxFailed, err.Error(), it.Attempts)
		})
		return false, 0
	}
	_ = l.store.SetInboxState(ctx, id, store.InboxPending, err.Error(), it.Attempts)
	wait = l.cfg.Verify.Backoff << (it.Attempts - 1)
	if wait > l.cfg.Verify.MaxBackoff || wait <= 0 {
		wait = l.cfg.Verify.MaxBackoff
	}
	l.log.Warn("will retry a notification", "id", id, "attempt", it.Attempts, "in", wait, "error", err)
	return true, wait
}

func (l *Listener) finish(ctx context.Context, it store.InboxItem, state, detail string) error {
	return l.store.SetInboxState(ctx, it.ID, state, detail, it.Attempts)
}

// errVerifier is wrapped for answers that are neither VERIFIED nor INVALID.
var errVerifier = errors.New("verifier gave no usable answer")

// postback posts the exact bytes received back to the verifier and returns
// its verdict. Only HTTP 200 with a body of exactly VERIFIED or INVALID
// counts: VERIFIED with a 500, "VERIFIED\n" or an HTML page are errors.
func (l *Listener) postback(ctx context.Context, raw []byte) (string, error) {
	if l.is("no-postback") {
		return "VERIFIED", nil
	}
	if !l.is("ack-after-verify") {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Verify.Timeout)
		defer cancel()
	}
	raw = l.mangle(raw)
	body := make([]byte, 0, len(raw)+21)
	body = append(append(body, "cmd=_notify-validate&"...), raw...)
	verifyURL := l.cfg.VerifyURL
	if l.is("wrong-verify-url") {
		verifyURL = "http://127.0.0.1:9/cgi-bin/webscr"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, verifyURL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", l.cfg.Verify.UserAgent)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("postback: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return "", fmt.Errorf("postback: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK && !l.is("ignore-status") {
		return "", fmt.Errorf("%w: HTTP %d %q", errVerifier, resp.StatusCode, answer)
	}
	if l.is("contains-verified") && bytes.Contains(answer, []byte("VERIFIED")) {
		return "VERIFIED", nil
	}
	switch v := string(answer); v {
	case "VERIFIED", "INVALID":
		return v, nil
	default:
		return "", fmt.Errorf("%w: %q (want exactly VERIFIED or INVALID)", errVerifier, v)
	}
}

// ipn is a PayPal message decoded to UTF-8 text in its charset.
type ipn map[string]string

func decodeIPN(body []byte) (ipn, error) {
	f, err := form.Parse(body)
	if err != nil {
		return nil, err
	}
	cs, err := f.Charset()
	if err != nil {
		// An unknown charset: keep the bytes as they are rather than guess.
		cs = form.MustCharset("windows-1252")
	}
	m := make(ipn, len(f))
	for _, fd := range f.Text(cs) {
		if _, dup := m[fd.Name]; !dup {
			m[fd.Name] = fd.Value
		}
	}
	return m, nil
}

func (l *Listener) processPayPal(ctx context.Context, it store.InboxItem) error {
	verdict, err := l.postback(ctx, it.Body)
	if err != nil {
		return err
	}
	m, err := decodeIPN(it.Body)
	if err != nil {
		return l.finish(ctx, it, store.InboxRejected, err.Error())
	}
	if l.is("utf8-names") {
		m.misreadNames(it.Body)
	}
	if l.is("racy-duplicates") && l.racyDuplicate(ctx, it, m) {
		return nil
	}
	return l.store.Tx(ctx, func(tx store.Tx) error {
		r := &run{l: l, tx: tx, item: it, at: l.cfg.now()}
		if verdict == "INVALID" {
			if err := r.log(m.txn(), m.kind(), m["payment_status"], "INVALID", "ignored", "the verifier answered INVALID: not acted on"); err != nil {
				return err
			}
		} else if err := r.applyPayPal(m); err != nil {
			return err
		}
		return tx.SetInboxState(it.ID, store.InboxDone, verdict, it.Attempts)
	})
}

func (m ipn) txn() string { return m["txn_id"] }

func (m ipn) kind() string {
	if k := m["txn_type"]; k != "" {
		return k
	}
	return m["transaction_type"]
}

// run is the application of one verified message inside a transaction.
type run struct {
	l    *Listener
	tx   store.Tx
	item store.InboxItem
	at   time.Time
}

func (r *run) log(txn, kind, status, verdict, action, detail string) error {
	return r.tx.AddLog(store.LogLine{InboxID: r.item.ID, Provider: r.item.Provider, TxnID: txn, Kind: kind, Status: status,
		Verdict: verdict, Action: action, Detail: detail, At: r.at})
}

// creditKinds are the txn_types that bring money in from a customer.
var creditKinds = map[string]bool{
	"web_accept": true, "cart": true, "express_checkout": true, "send_money": true,
	"virtual_terminal": true, "subscr_payment": true, "recurring_payment": true, "pro_hosted": true,
}

// statusRank orders payment statuses so that a late message never takes a
// transaction back (a Pending arriving after its Completed).
var statusRank = map[string]int{
	"Created": 1, "Pending": 1, "Completed": 2, "Processed": 2, "Failed": 2, "Denied": 2,
	"Expired": 2, "Voided": 2, "Refunded": 3, "Reversed": 3, "Canceled_Reversal": 4,
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
	if !r.l.ours(m["receiver_email"], m["receiver_id"], m["business"]) && !r.l.is("ignore-receiver") {
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
	if statusRank[status] < statusRank[t.Status] && !isNew {
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
	if parent != "" && kind != "adjustment" {
		t.Held = "" // a child's effect is decided by applyChild
		if err := r.tx.PutTxn(t); err != nil {
			return err
		}
		return r.settleChildren(parent, txn)
	}
	action, detail := "recorded", ""
	switch {
	case status == "Pending" && creditKinds[t.Kind] && (r.l.is("credit-pending") || (r.l.is("credit-fraud-pends") && fraudFilters(m) != "")):
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
		Amount: amount, Currency: t.Currency, InboxID: r.item.ID, At: r.at})
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
			if applied {
				continue
			}
			action, detail, held, err := r.applyChild(parent, k)
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
func (r *run) applyChild(parent string, k store.Txn) (action, detail, held string, err error) {
	credited, err := r.creditOf(parent)
	if err != nil {
		return "", "", "", err
	}
	if credited == nil {
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
	added, err := r.tx.AddEntry(store.Entry{Provider: PayPal, TxnID: k.TxnID, Status: k.Status, Customer: credited.Customer,
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

// applyMassPay credits each Completed item to the customer it was paid to.
func (r *run) applyMassPay(m ipn) error {
	if !r.l.ours(m["payer_email"], m["payer_id"], "") {
		return r.log("", "masspay", m["payment_status"], "VERIFIED", "ignored", "the Mass Pay sender is not this merchant")
	}
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
		email := strings.ToLower(m["receiver_email_"+n])
		t := store.Txn{Provider: PayPal, TxnID: item, Kind: "masspay", Status: status, Gross: gross, Fee: fee,
			Currency: m["mc_currency_"+n], PayerEmail: email, Customer: r.l.customerFor(email), FirstSeen: r.at, Updated: r.at}
		if old, err := r.tx.Txn(PayPal, item); err == nil {
			t.FirstSeen = old.FirstSeen
		}
		action, detail := "recorded", "item "+status
		if status == "Completed" {
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

// cents reads an amount such as "19.95", "-4.00", "25" or "" (zero).
func cents(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("amount %q", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/100-1 {
		return 0, fmt.Errorf("amount %q", s)
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	c := w*100 + f
	if neg {
		c = -c
	}
	return c, nil
}

func money(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
