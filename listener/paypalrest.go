package listener

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// PayPal REST webhooks: JSON events, signed; stored before the 2xx,
// verified (WebhookVerifier), then applied: a completed capture credits
// its customer once (the ledger's key is the capture and its status, so
// a resent event or a copy credits nothing), a refund or a reversal
// debits what was credited, and nothing else moves money.

// WebhookEvent is what the rules read of a PayPal REST webhook's event
// (Delivery.Webhook).
type WebhookEvent struct {
	ID           string `json:"id"`
	EventType    string `json:"event_type"`
	ResourceType string `json:"resource_type"`
	Resource     struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Amount   *Money `json:"amount"`
		CustomID string `json:"custom_id"`
		// PurchaseUnits are an order's (CHECKOUT.ORDER.*).
		PurchaseUnits []struct {
			Amount   *Money `json:"amount"`
			CustomID string `json:"custom_id"`
		} `json:"purchase_units"`
		Details *struct {
			Reason string `json:"reason"`
		} `json:"status_details"`
		Links []struct {
			Href string `json:"href"`
			Rel  string `json:"rel"`
		} `json:"links"`
		// A v1 sale's and its refund's (PAYMENT.SALE.*): state, custom,
		// and the refunded sale.
		State  string `json:"state"`
		Custom string `json:"custom"`
		SaleID string `json:"sale_id"`
		// A dispute's (CUSTOMER.DISPUTE.*).
		DisputeID            string `json:"dispute_id"`
		DisputedTransactions []struct {
			SellerTransactionID string `json:"seller_transaction_id"`
		} `json:"disputed_transactions"`
		DisputeAmount  *Money `json:"dispute_amount"`
		DisputeOutcome *struct {
			OutcomeCode string `json:"outcome_code"`
		} `json:"dispute_outcome"`
	} `json:"resource"`
}

// Money is an amount as PayPal's REST API writes it: v2's currency_code
// and value, or v1's currency and total.
type Money struct {
	Currency   string `json:"currency_code"`
	Value      string `json:"value"`
	CurrencyV1 string `json:"currency"`
	Total      string `json:"total"`
}

// normalize reads v1 sales and disputes in the captures' words: the
// amount's value and currency, custom_id, an upper-case status, the
// dispute's id as the resource's.
func (e *WebhookEvent) normalize() {
	r := &e.Resource
	if r.Amount != nil && r.Amount.Value == "" {
		r.Amount.Value, r.Amount.Currency = r.Amount.Total, r.Amount.CurrencyV1
	}
	if r.CustomID == "" {
		r.CustomID = r.Custom
	}
	if r.Status == "" && r.State != "" {
		r.Status = strings.ToUpper(r.State)
	}
	if r.ID == "" {
		r.ID = r.DisputeID
	}
}

// parseREST reads an event body, naming what is wrong with a bad one.
func parseREST(body []byte) (WebhookEvent, error) {
	var e WebhookEvent
	if len(body) == 0 {
		return e, errors.New("empty body")
	}
	if !utf8.Valid(body) {
		return e, errors.New("body is not UTF-8 (JSON must be)")
	}
	if _, err := orderedjson.Parse(body); err != nil {
		return e, fmt.Errorf("invalid JSON: %v", err)
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("invalid JSON: %v", err)
	}
	if e.ID == "" || e.EventType == "" {
		return e, errors.New("an event without id or event_type")
	}
	e.normalize()
	return e, nil
}

// Parent is what an event's resource belongs to: a refund's capture (the
// last part of its "up" link), a sale refund's sale, a dispute's
// disputed capture.
func (e *WebhookEvent) Parent() string {
	for _, l := range e.Resource.Links {
		if l.Rel == "up" && strings.Contains(l.Href, "/captures/") {
			return l.Href[strings.LastIndex(l.Href, "/")+1:]
		}
	}
	if e.Resource.SaleID != "" {
		return e.Resource.SaleID
	}
	if t := e.Resource.DisputedTransactions; len(t) > 0 {
		return t[0].SellerTransactionID
	}
	return ""
}

// Event types the rules act on.
const (
	restCompleted = "PAYMENT.CAPTURE.COMPLETED"
	restPending   = "PAYMENT.CAPTURE.PENDING"
	restDenied    = "PAYMENT.CAPTURE.DENIED"
	restRefunded  = "PAYMENT.CAPTURE.REFUNDED"
	restReversed  = "PAYMENT.CAPTURE.REVERSED"
)

// v1 sales (a subscription's payments) and disputes.
const (
	saleCompleted   = "PAYMENT.SALE.COMPLETED"
	saleRefunded    = "PAYMENT.SALE.REFUNDED"
	saleReversed    = "PAYMENT.SALE.REVERSED"
	disputeResolved = "CUSTOMER.DISPUTE.RESOLVED"
	// buyerFavour is the outcome of a dispute the merchant lost.
	buyerFavour = "RESOLVED_BUYER_FAVOUR"
)

// restRank orders a capture's statuses, so that a late event never takes
// it back (a PENDING after its COMPLETED, a COMPLETED after its reversal).
var restRank = map[string]int{"PENDING": 1, "COMPLETED": 2, "DECLINED": 2, "REVERSED": 3}

func (l *Listener) receivePayPalREST(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	item := store.InboxItem{Provider: PayPalREST, ReceivedAt: l.cfg.now(), RemoteAddr: r.RemoteAddr, Headers: r.Header.Clone(), Body: body}
	why := ""
	if l.cfg.PayPalREST.WebhookID == "" {
		why = "PayPal REST webhooks are not configured (paypal_rest.webhook_id)"
	} else if _, err := parseREST(body); err != nil {
		why = err.Error()
	} else if _, err := TransmissionOf(r.Header); err != nil {
		why = err.Error()
	}
	if why != "" {
		l.keepRejected(r.Context(), item, why)
		http.Error(w, "refused webhook: "+why, http.StatusBadRequest)
		return
	}
	l.accept(w, r, item)
}

func (l *Listener) processPayPalREST(ctx context.Context, it store.InboxItem) error {
	e, err := parseREST(it.Body)
	if err != nil {
		return l.finish(ctx, it, store.InboxRejected, err.Error())
	}
	switch err := l.webhookVerifier.VerifyWebhook(ctx, it.Headers, it.Body); {
	case errors.Is(err, ErrNotGenuine):
		return l.store.Tx(ctx, func(tx store.Tx) error {
			d := &Delivery{Tx: tx, Item: it, At: l.cfg.now(), Verdict: "FAILURE", l: l}
			if err := d.Log(e.Resource.ID, e.EventType, e.Resource.Status, "ignored", err.Error()+": not acted on"); err != nil {
				return err
			}
			return tx.SetInboxState(it.ID, store.InboxDone, d.Verdict, it.Attempts)
		})
	case err != nil:
		return err // verification could not be done: retried
	}
	const verdict = "SUCCESS"
	d := &Delivery{Item: it, Verdict: verdict, Txn: e.Resource.ID, Kind: e.EventType, Status: e.Resource.Status, l: l, Webhook: &e}
	return l.store.Tx(ctx, func(tx store.Tx) error {
		d.Tx, d.At = tx, l.cfg.now()
		if err := l.rules.Apply(d); err != nil {
			return err
		}
		return tx.SetInboxState(it.ID, store.InboxDone, verdict, it.Attempts)
	})
}

// restKeys are the transactions a webhook works on: its resource and
// what that belongs to (a refund's or a dispute's capture, a sale
// refund's sale). It runs for every notification queued, after the door
// checked the body: a decode, not parseREST's checks again.
func restKeys(body []byte) []string {
	var e WebhookEvent
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	if e.normalize(); e.Resource.ID == "" {
		return nil
	}
	if p := e.Parent(); p != "" && p != e.Resource.ID {
		return []string{e.Resource.ID, p}
	}
	return []string{e.Resource.ID}
}

// applyPayPalREST is the reference rules for a verified webhook.
func (d *Delivery) applyPayPalREST() error {
	e := d.Webhook
	switch e.EventType {
	case restCompleted, restPending, restDenied, restReversed, saleCompleted, saleReversed:
		return d.applyCapture(e)
	case restRefunded, saleRefunded:
		return d.applyRESTRefund(e)
	case disputeResolved:
		return d.applyDispute(e)
	case "CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.UPDATED":
		return d.Log(d.Txn, d.Kind, d.Status, "recorded", "a dispute of "+e.Parent()+": nothing moves until it is resolved")
	case "CHECKOUT.ORDER.APPROVED":
		return d.Log(d.Txn, d.Kind, d.Status, "recorded", "an approved order is not paid: the capture's COMPLETED is")
	}
	return d.Log(d.Txn, d.Kind, d.Status, "recorded", "event type "+e.EventType+": nothing to apply")
}

// restTxn reads the transaction of id, or starts one (isNew).
func (d *Delivery) restTxn(id string) (t store.Txn, isNew bool, err error) {
	t, err = d.Tx.Txn(PayPalREST, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Txn{Provider: PayPalREST, TxnID: id, FirstSeen: d.At}, true, nil
	}
	return t, false, err
}

func (d *Delivery) applyCapture(e *WebhookEvent) error {
	id, status := e.Resource.ID, e.Resource.Status
	if id == "" || e.Resource.Amount == nil {
		return d.Log(id, d.Kind, status, "ignored", "a capture without id or amount")
	}
	gross, err := cents(e.Resource.Amount.Value)
	if err != nil {
		return d.Log(id, d.Kind, status, "ignored", "unreadable amount: "+err.Error())
	}
	t, isNew, err := d.restTxn(id)
	if err != nil {
		return err
	}
	if !isNew && status == "COMPLETED" && t.Status == "REVERSED" {
		return d.completeReversed(t, e)
	}
	if !isNew && restRank[status] < restRank[t.Status] {
		return d.Log(id, d.Kind, status, "ignored", "stale: the capture is already "+t.Status)
	}
	t.Kind, t.Status, t.Gross, t.Currency, t.Updated = e.ResourceType, status, gross, e.Resource.Amount.Currency, d.At
	if t.Customer == "" {
		t.Customer = d.l.customerOf(e.Resource.CustomID)
	}
	action, detail := "recorded", ""
	switch status {
	case "PENDING":
		t.Held = "pending"
		if e.Resource.Details != nil && e.Resource.Details.Reason != "" {
			t.Held += ": " + e.Resource.Details.Reason
		}
		action, detail = "held", t.Held
	case "COMPLETED":
		switch {
		case !d.l.currency[t.Currency]:
			t.Held = "currency " + t.Currency + " is not accepted"
			action, detail = "not credited", t.Held
		case t.Customer == "":
			t.Held = fmt.Sprintf("no customer matches custom_id %q", e.Resource.CustomID)
			action, detail = "not credited", t.Held
		default:
			t.Held = ""
			action, detail, err = d.restEntry(t, id, "COMPLETED", t.Gross, "", "credited")
		}
	case "REVERSED":
		t.Held = ""
		credited, err2 := d.Tx.HasEntry(PayPalREST, id, "COMPLETED")
		switch {
		case err2 != nil:
			return err2
		case credited:
			action, detail, err = d.restEntry(t, id, "REVERSED", -t.Gross, "", "debited")
		default:
			// Its COMPLETED may still come (PayPal does not deliver in
			// order): credited and debited then, as a refund that came
			// first is.
			t.Held = "reversed before it was credited: its COMPLETED, if it comes, is credited and debited"
			action, detail = "held", t.Held
		}
	default:
		t.Held, detail = "", status+": nothing to credit"
	}
	if err != nil {
		return err
	}
	if err := d.Tx.PutTxn(t); err != nil {
		return err
	}
	if err := d.Log(id, d.Kind, status, action, detail); err != nil {
		return err
	}
	if status == "COMPLETED" {
		return d.settleRESTRefunds(id)
	}
	return nil
}

// completeReversed applies a COMPLETED that arrives after its capture's
// REVERSED: credited, then debited, so the capture nets nothing whatever
// the order its events came in. Once credited, a COMPLETED sent again is
// a duplicate.
func (d *Delivery) completeReversed(t store.Txn, e *WebhookEvent) error {
	id := t.TxnID
	if t.Customer == "" {
		t.Customer = d.l.customerOf(e.Resource.CustomID)
	}
	if !d.l.currency[t.Currency] || t.Customer == "" {
		return d.Log(id, d.Kind, "COMPLETED", "ignored", "reversed, and there is no customer or currency to credit: nothing to apply")
	}
	action, detail, err := d.restEntry(t, id, "COMPLETED", t.Gross, "", "credited")
	if err != nil || action == "duplicate" {
		if err == nil {
			err = d.Log(id, d.Kind, "COMPLETED", action, detail)
		}
		return err
	}
	if _, _, err := d.restEntry(t, id, "REVERSED", -t.Gross, "", "debited"); err != nil {
		return err
	}
	t.Held, t.Updated = "", d.At
	if err := d.Tx.PutTxn(t); err != nil {
		return err
	}
	return d.Log(id, d.Kind, "COMPLETED", "credited and debited", detail+", and debited again: the capture was reversed before its COMPLETED came")
}

// applyDispute applies a resolved dispute: one the merchant lost debits
// its amount from the disputed capture as its reversal does, under the
// same key, so that a chargeback PayPal also reports as
// PAYMENT.CAPTURE.REVERSED debits once; one the merchant won (or the buyer
// cancelled) moves nothing.
func (d *Delivery) applyDispute(e *WebhookEvent) error {
	r := e.Resource
	outcome := ""
	if r.DisputeOutcome != nil {
		outcome = r.DisputeOutcome.OutcomeCode
	}
	capture := e.Parent()
	if outcome != buyerFavour {
		return d.Log(d.Txn, d.Kind, d.Status, "recorded", fmt.Sprintf("dispute of %s resolved %s: nothing to debit", capture, outcome))
	}
	if capture == "" || r.DisputeAmount == nil {
		return d.Log(d.Txn, d.Kind, d.Status, "ignored", "a lost dispute without its disputed transaction or amount")
	}
	lost := *e
	lost.ResourceType = "capture"
	lost.Resource.ID, lost.Resource.Status, lost.Resource.Amount = capture, "REVERSED", r.DisputeAmount
	return d.applyCapture(&lost)
}

// restEntry adds a ledger entry for t's customer, once per (txn, status).
func (d *Delivery) restEntry(t store.Txn, txn, status string, amount int64, parent, verb string) (string, string, error) {
	added, err := d.Tx.AddEntry(store.Entry{Provider: PayPalREST, TxnID: txn, Status: status, Customer: t.Customer,
		Amount: amount, Currency: t.Currency, ParentID: parent, InboxID: d.Item.ID, At: d.At})
	if err != nil {
		return "", "", err
	}
	if !added {
		return "duplicate", "already applied", nil
	}
	return verb, fmt.Sprintf("%s %s for %s", money(amount), t.Currency, t.Customer), nil
}

func (d *Delivery) applyRESTRefund(e *WebhookEvent) error {
	id, parent := e.Resource.ID, e.Parent()
	if id == "" || parent == "" || e.Resource.Amount == nil {
		return d.Log(id, d.Kind, e.Resource.Status, "ignored", "a refund without id, amount or the capture it refunds (its \"up\" link)")
	}
	amount, err := cents(e.Resource.Amount.Value)
	if err != nil {
		return d.Log(id, d.Kind, e.Resource.Status, "ignored", "unreadable amount: "+err.Error())
	}
	t, _, err := d.restTxn(id)
	if err != nil {
		return err
	}
	// Kept whatever its capture's state: a refund that arrives first
	// waits for the capture it refunds.
	t.Kind, t.ParentID, t.Status, t.Gross, t.Currency, t.Updated = e.ResourceType, parent, "REFUNDED", amount, e.Resource.Amount.Currency, d.At
	if err := d.Tx.PutTxn(t); err != nil {
		return err
	}
	d.logFor = id
	return d.settleRESTRefunds(parent)
}

// settleRESTRefunds debits the refunds of capture once it is credited;
// until then they wait.
func (d *Delivery) settleRESTRefunds(capture string) error {
	kids, err := d.Tx.Children(PayPalREST, capture)
	if err != nil {
		return err
	}
	credited, err := d.Tx.HasEntry(PayPalREST, capture, "COMPLETED")
	if err != nil {
		return err
	}
	var c store.Txn
	if credited {
		if c, err = d.Tx.Txn(PayPalREST, capture); err != nil {
			return err
		}
	}
	for _, k := range kids {
		action, detail := "held", "waiting for the capture "+capture+" to be credited"
		if credited {
			k.Customer = c.Customer
			if action, detail, err = d.restEntry(k, k.TxnID, "REFUNDED", -k.Gross, capture, "debited"); err != nil {
				return err
			}
			if action == "duplicate" && k.TxnID != d.logFor {
				continue
			}
			detail += " (refund of " + capture + ")"
		} else if k.TxnID != d.logFor {
			continue
		}
		held := ""
		if !credited {
			held = detail
		}
		if k.Held != held || k.Customer != c.Customer {
			k.Held = held
			if err := d.Tx.PutTxn(k); err != nil {
				return err
			}
		}
		if err := d.Log(k.TxnID, restRefunded, k.Status, action, detail); err != nil {
			return err
		}
	}
	return nil
}

// customerOf is the customer a custom_id names: a customer id, or an
// email matched as a payer's is.
func (l *Listener) customerOf(v string) string {
	for _, c := range l.cfg.Customers {
		if c.ID == v {
			return v
		}
	}
	if !strings.Contains(v, "@") {
		return ""
	}
	return l.customerFor(v)
}
