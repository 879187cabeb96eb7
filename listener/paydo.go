package listener

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// payDoIPN is either PayDo notification: a transfer (transaction with
// identifierTxFrom and status) or a checkout (invoice, transaction with id
// and state).
type payDoIPN struct {
	Invoice *struct {
		ID       string         `json:"id"`
		TxID     string         `json:"txid"`
		Metadata map[string]any `json:"metadata"`
	} `json:"invoice"`
	Transaction *struct {
		Amount           json.RawMessage `json:"amount"`
		Status           *int            `json:"status"`
		Currency         string          `json:"currency"`
		IdentifierTxFrom string          `json:"identifierTxFrom"`
		ID               string          `json:"id"`
		State            *int            `json:"state"`
		Order            *struct {
			ID string `json:"id"`
		} `json:"order"`
		Error *struct {
			Message string `json:"message"`
			Code    string `json:"code"`
		} `json:"error"`
	} `json:"transaction"`
}

// parsePayDo reads a PayDo body, naming what is wrong with a bad one.
func parsePayDo(body []byte) (kind, key string, status int, n payDoIPN, err error) {
	if len(body) == 0 {
		return "", "", 0, n, errors.New("empty body")
	}
	if !utf8.Valid(body) {
		return "", "", 0, n, errors.New("body is not UTF-8 (JSON must be)")
	}
	// The same nesting bound as the emulator's PayDo (orderedjson): a
	// notification 40 levels deep is nobody's checkout.
	if _, err := orderedjson.ParseValue(body); errors.Is(err, orderedjson.ErrTooDeep) {
		return "", "", 0, n, fmt.Errorf("invalid JSON: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&n); err != nil {
		return "", "", 0, n, fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return "", "", 0, n, errors.New("invalid JSON: data after the object")
	}
	t := n.Transaction
	switch {
	case t == nil:
		return "", "", 0, n, errors.New(`no "transaction" object`)
	case n.Invoice != nil:
		if t.ID == "" || t.State == nil {
			return "", "", 0, n, errors.New("checkout without transaction.id or transaction.state")
		}
		return "checkout", t.ID, *t.State, n, nil
	default:
		if t.IdentifierTxFrom == "" || t.Status == nil {
			return "", "", 0, n, errors.New("transfer without transaction.identifierTxFrom or transaction.status")
		}
		if _, err := payDoAmount(t.Amount); err != nil {
			return "", "", 0, n, err
		}
		return "transfer", t.IdentifierTxFrom, *t.Status, n, nil
	}
}

// payDoAmount reads an amount sent as a number (25, 10.5) or a string ("10.50").
func payDoAmount(raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("amount %s: %v", raw, err)
		}
	}
	c, err := cents(s)
	if err != nil {
		return 0, fmt.Errorf("transaction.amount %s: not an amount with at most two decimals", raw)
	}
	return c, nil
}

// sourceIP is where a request came from: the peer, or, when the peer is a
// trusted proxy, the nearest untrusted address in X-Forwarded-For.
func (l *Listener) sourceIP(r *http.Request) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return peer, fmt.Errorf("peer address %q: %v", r.RemoteAddr, err)
	}
	peer = peer.Unmap()
	if !contains(l.proxies, peer) {
		return peer, nil
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer, fmt.Errorf("X-Forwarded-For entry %q is not an IP", hops[i])
		}
		if a = a.Unmap(); !contains(l.proxies, a) {
			return a, nil
		}
	}
	return peer, nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *Listener) receivePayDo(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	item := store.InboxItem{Provider: PayDo, ReceivedAt: l.cfg.now(), RemoteAddr: r.RemoteAddr, Headers: r.Header.Clone(), Body: body}
	src, err := l.sourceIP(r)
	if err == nil && !contains(l.allowed, src) {
		err = fmt.Errorf("source %s is not an allowed PayDo address", src)
	}
	if err != nil {
		l.keepRejected(r.Context(), item, err.Error())
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if _, _, _, _, err := parsePayDo(body); err != nil {
		l.keepRejected(r.Context(), item, err.Error())
		http.Error(w, "malformed PayDo notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	l.accept(w, r, item)
}

// PayDo states and statuses the listener acts on.
const (
	payDoAccepted = 2
	payDoPending  = 4
)

func (l *Listener) processPayDo(ctx context.Context, it store.InboxItem) error {
	kind, key, status, n, err := parsePayDo(it.Body)
	if err != nil {
		return l.finish(ctx, it, store.InboxRejected, err.Error())
	}
	d := &Delivery{Item: it, Verdict: "allowlisted", Txn: key, Kind: kind, Status: strconv.Itoa(status), l: l, payDo: n}
	// A checkout IPN carries no amount: confirm the state and read the
	// amount from PayDo, as its documentation suggests.
	if kind == "checkout" && status == payDoAccepted {
		if d.lookupAmount, d.lookupCurrency, err = l.lookupPayDo(ctx, key); err != nil {
			return err
		}
	}
	return l.store.Tx(ctx, func(tx store.Tx) error {
		d.Tx, d.At, d.action = tx, l.cfg.now(), ""
		if err := l.rules.Apply(d); err != nil {
			return err
		}
		return tx.SetInboxState(it.ID, store.InboxDone, d.action, it.Attempts)
	})
}

// applyPayDo is PayDo's rules: a transaction's first accepted status
// credits its customer (a checkout) or records the outgoing transfer;
// pending holds; a failure records; nothing moves an accepted one.
func (d *Delivery) applyPayDo() error {
	kind, key, statusText, n := d.Kind, d.Txn, d.Status, d.payDo
	status, _ := strconv.Atoi(statusText)
	t, lookupErr := d.Tx.Txn(PayDo, key)
	isNew := errors.Is(lookupErr, store.ErrNotFound)
	if lookupErr != nil && !isNew {
		return lookupErr
	}
	var err error
	if isNew {
		t = store.Txn{Provider: PayDo, TxnID: key, Kind: kind, FirstSeen: d.At}
	}
	action, detail := "recorded", ""
	switch {
	case !isNew && t.Status == statusText:
		action, detail = "ignored", "duplicate of a notification already applied"
	case t.Status == strconv.Itoa(payDoAccepted):
		action, detail = "ignored", fmt.Sprintf("status %d after the transaction was accepted", status)
	default:
		t.Status, t.Updated = statusText, d.At
		switch {
		case status == payDoAccepted && kind == "transfer":
			amount, _ := payDoAmount(n.Transaction.Amount)
			t.Gross, t.Currency, t.Customer = amount, n.Transaction.Currency, d.l.cfg.PayDo.TransferAccount
			action, detail, err = d.payDoEntry(&t, -amount, "recorded the outgoing transfer")
		case status == payDoAccepted:
			t.Gross, t.Currency = d.lookupAmount, d.lookupCurrency
			t.Customer = d.l.payDoCustomer(n)
			switch {
			case !d.l.currency[t.Currency]:
				t.Held = "currency " + t.Currency + " is not accepted"
				action, detail = "not credited", t.Held
			case t.Customer == "":
				t.Held = "no customer in invoice.metadata.customer"
				action, detail = "not credited", t.Held
			default:
				action, detail, err = d.payDoEntry(&t, d.lookupAmount, "credited")
			}
		case status == payDoPending:
			t.Held = "pending"
			action, detail = "held", "pending: credited when accepted"
		default:
			t.Held = ""
			detail = fmt.Sprintf("status %d: nothing to apply", status)
			if n.Transaction.Error != nil && n.Transaction.Error.Message != "" {
				detail += " (" + n.Transaction.Error.Message + ")"
			}
		}
		if err != nil {
			return err
		}
		if err := d.Tx.PutTxn(t); err != nil {
			return err
		}
	}
	return d.Log(key, kind, statusText, action, detail)
}

func (d *Delivery) payDoEntry(t *store.Txn, amount int64, verb string) (string, string, error) {
	t.Held = ""
	added, err := d.Tx.AddEntry(store.Entry{Provider: PayDo, TxnID: t.TxnID, Status: "accepted", Customer: t.Customer,
		Amount: amount, Currency: t.Currency, InboxID: d.Item.ID, At: d.At})
	if err != nil {
		return "", "", err
	}
	if !added {
		return "duplicate", "already applied", nil
	}
	return verb, fmt.Sprintf("%s %s for %s", money(amount), t.Currency, t.Customer), nil
}

// payDoCustomer reads the customer a checkout is for from its metadata: a
// customer id, or an email matched like a PayPal payer's.
func (l *Listener) payDoCustomer(n payDoIPN) string {
	if n.Invoice == nil {
		return ""
	}
	v, _ := n.Invoice.Metadata["customer"].(string)
	return l.customerOf(v)
}

// lookupPayDo asks PayDo for a checkout's state and amount; it fails (to
// be retried) unless PayDo confirms the transaction is accepted.
func (l *Listener) lookupPayDo(ctx context.Context, id string) (int64, string, error) {
	if l.cfg.PayDo.LookupURL == "" {
		return 0, "", errors.New("paydo.lookup_url is not set: cannot confirm a checkout")
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Verify.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.cfg.PayDo.LookupURL+url.PathEscape(id), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", l.cfg.Verify.UserAgent)
	if l.cfg.PayDo.LookupToken != "" {
		req.Header.Set("Authorization", "Bearer "+l.cfg.PayDo.LookupToken)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("paydo lookup: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("paydo lookup %s: HTTP %d", id, resp.StatusCode)
	}
	var out struct {
		Data struct {
			State    *int            `json:"state"`
			Amount   json.RawMessage `json:"amount"` // a number, or a string
			Currency string          `json:"currency"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Data.State == nil {
		return 0, "", fmt.Errorf("paydo lookup %s: unreadable answer %q", id, raw)
	}
	if *out.Data.State != payDoAccepted {
		return 0, "", fmt.Errorf("paydo lookup %s: state %d, the notification said accepted", id, *out.Data.State)
	}
	amount, err := cents(strings.Trim(string(out.Data.Amount), `"`))
	if err != nil {
		return 0, "", fmt.Errorf("paydo lookup %s: %v", id, err)
	}
	return amount, out.Data.Currency, nil
}
