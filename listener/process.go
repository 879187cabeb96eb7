package listener

import (
	"context"
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
	case PayPalREST:
		err = l.processPayPalREST(ctx, it)
	default:
		err = l.finish(ctx, it, store.InboxFailed, "unknown provider "+it.Provider)
	}
	if err == nil {
		return false, 0
	}
	it.Attempts++
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

// ipn is a PayPal message decoded to UTF-8 text in its charset.
type ipn map[string]string

// DecodeIPN decodes a PayPal message to text in the charset it declares
// (windows-1252 when it names one nobody knows), keeping the first of a
// repeated name: the fields the rules read (Delivery.Fields).
func DecodeIPN(body []byte) (map[string]string, error) {
	f, err := form.Parse(body)
	if err != nil {
		return nil, err
	}
	cs, err := f.Charset()
	if err != nil {
		// An unknown charset: keep the bytes as they are rather than guess.
		cs = form.MustCharset("windows-1252")
	}
	m := make(map[string]string, len(f))
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
	fields, err := DecodeIPN(it.Body)
	if err != nil {
		return l.finish(ctx, it, store.InboxRejected, err.Error())
	}
	m := ipn(fields)
	d := &Delivery{Item: it, Verdict: verdict, Fields: fields, Txn: m.txn(), Kind: m.kind(), Status: m["payment_status"], l: l}
	return l.store.Tx(ctx, func(tx store.Tx) error {
		d.Tx, d.At = tx, l.cfg.now()
		if verdict == "INVALID" {
			if err := d.Log(d.Txn, d.Kind, d.Status, "ignored", "the verifier answered INVALID: not acted on"); err != nil {
				return err
			}
		} else if err := l.rules.Apply(d); err != nil {
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

// creditKinds are the txn_types that bring money in from a customer.
var creditKinds = map[string]bool{
	"web_accept": true, "cart": true, "express_checkout": true, "send_money": true,
	"virtual_terminal": true, "subscr_payment": true, "recurring_payment": true, "pro_hosted": true,
}

// PaysIn reports whether a PayPal txn_type brings money in from a
// customer: a payment the rules credit once it is Completed.
func PaysIn(kind string) bool { return creditKinds[kind] }

// statusRank orders payment statuses so that a late message never takes a
// transaction back (a Pending arriving after its Completed).
var statusRank = map[string]int{
	"Created": 1, "Pending": 1, "Completed": 2, "Processed": 2, "Failed": 2, "Denied": 2,
	"Expired": 2, "Voided": 2, "Refunded": 3, "Reversed": 3, "Canceled_Reversal": 4,
}
