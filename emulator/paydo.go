package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// SendPayDo creates and delivers PayDo notifications and returns them in
// the order they were created.
func (e *Emulator) SendPayDo(req PayDoRequest) ([]MessageView, error) {
	msgs, interval, err := e.buildPayDo(req)
	if err != nil {
		return nil, err
	}
	copies := max(req.Copies, 1)
	var ids []string
	note := func(m generate.PayDoMessage) paydo.Notification {
		return paydo.Notification{Message: m, URL: req.NotifyURL, Project: req.Project, User: req.User, Source: req.Source, ForwardedFor: req.ForwardedFor}
	}
	send := func(m generate.PayDoMessage, n int) error {
		for range n {
			rec, err := e.paydo.Send(note(m))
			if err != nil {
				return payDoSendError(err)
			}
			ids = append(ids, rec.ID)
		}
		return nil
	}
	if err := send(msgs[0], copies); err != nil {
		return nil, err
	}
	e.WaitIdle()
	for i, m := range msgs[1:] {
		if interval == 0 {
			if err := send(m, 1); err != nil {
				return nil, err
			}
			e.WaitIdle()
			continue
		}
		payload, err := payDoPlanned(note(m))
		if err == nil {
			err = e.schedule(Planned{Provider: paydo.Provider, At: e.clock.Now().Add(time.Duration(i+1) * interval),
				Label: fmt.Sprintf("paydo %s follow-up %d", req.Kind, i+1), Payload: payload})
		}
		if err != nil {
			return nil, err
		}
	}
	views := make([]MessageView, 0, len(ids))
	for _, id := range ids {
		v, _ := e.View(id)
		views = append(views, v)
	}
	return views, nil
}

// DispatchPayDo creates one PayDo notification (no copies, no follow-up
// statuses) and hands it to delivery without waiting for the first attempt
// or building its view, for tools that send many (ipnlab load). It returns
// the message id.
func (e *Emulator) DispatchPayDo(req PayDoRequest) (string, error) {
	if req.Copies > 1 || len(req.Then) > 0 {
		return "", badRequest("dispatch sends one message: copies and then do not apply")
	}
	msgs, _, err := e.buildPayDo(req)
	if err != nil {
		return "", err
	}
	rec, err := e.paydo.Send(paydo.Notification{Message: msgs[0], URL: req.NotifyURL, Project: req.Project, User: req.User, Source: req.Source, ForwardedFor: req.ForwardedFor})
	if err != nil {
		return "", payDoSendError(err)
	}
	return rec.ID, nil
}

// payDoSendError marks the caller's mistakes as bad requests.
func payDoSendError(err error) error {
	if errors.Is(err, paydo.ErrNoTarget) || errors.Is(err, delivery.ErrBadURL) || errors.Is(err, paydo.ErrBadSource) {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return err
}

// MaxThen bounds a PayDo request's follow-up statuses: one request made
// 100,001 messages (738 MB) before there was a bound.
const MaxThen = 20

// buildPayDo makes every message of a request before any is sent.
func (e *Emulator) buildPayDo(req PayDoRequest) ([]generate.PayDoMessage, time.Duration, error) {
	if req.Kind == "" {
		return nil, 0, badRequest("kind is required: transfer or checkout")
	}
	if req.Copies < 0 || req.Copies > 1000 {
		return nil, 0, badRequest("copies %d: want 1 to 1000", req.Copies)
	}
	if len(req.Then) > MaxThen {
		return nil, 0, badRequest("then has %d statuses: at most %d (a transaction changes status a few times)", len(req.Then), MaxThen)
	}
	var interval time.Duration
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil || d < 0 {
			return nil, 0, badRequest("interval %q: want a duration such as 10m", req.Interval)
		}
		interval = d
	}
	p := generate.PayDoParams{
		Currency: req.Params.Currency, Status: req.Params.Status, Identifier: req.Params.Identifier,
		InvoiceID: req.Params.InvoiceID, TxID: req.Params.TxID, OrderID: req.Params.OrderID,
		AmountAsString: req.Params.AmountAsString,
	}
	if req.Params.Amount != "" {
		a, err := generate.ParseMoney(req.Params.Amount)
		if err != nil {
			return nil, 0, badRequest("params.amount: %v", err)
		}
		p.Amount = a
	}
	if len(req.Params.Metadata) > 0 {
		md, err := orderedjson.Parse(req.Params.Metadata)
		if err != nil {
			return nil, 0, badRequest("params.metadata: %v", err)
		}
		p.Metadata = md
	}
	var sets orderedjson.Object
	if len(req.Set) > 0 {
		var err error
		if sets, err = orderedjson.Parse(req.Set); err != nil {
			return nil, 0, badRequest("set: %v (want an object of paths to JSON values)", err)
		}
	}
	var first generate.PayDoMessage
	if len(req.Body) > 0 {
		first, err := wholePayDo(req, p)
		if err != nil {
			return nil, 0, err
		}
		return []generate.PayDoMessage{first}, interval, nil
	}
	gen, _, err := e.generator(uint64(req.Seed), "", "", false, "", &generate.Params{})
	if err != nil {
		return nil, 0, err
	}
	if first, err = gen.PayDo(req.Kind, p); err != nil {
		return nil, 0, badRequest("%v", err)
	}
	for _, m := range sets {
		if first.Body, err = first.Body.Set(m.Key, m.Value, generate.PayDoOpenPaths...); err != nil {
			return nil, 0, badRequest("set %v", err)
		}
	}
	msgs := []generate.PayDoMessage{first}
	statusPath := "transaction.state"
	if req.Kind == generate.PayDoTransfer {
		statusPath = "transaction.status"
	}
	for _, st := range req.Then {
		// Validate the status with the generator's own rules.
		if _, err := gen.PayDo(req.Kind, generate.PayDoParams{Status: st}); err != nil {
			return nil, 0, badRequest("then: %v", err)
		}
		next := first
		next.Body, _ = first.Body.Set(statusPath, json.Number(fmt.Sprint(st)))
		if req.Kind == generate.PayDoCheckout {
			msg := ""
			if st == generate.CheckoutFailed || st == generate.CheckoutFailed5 {
				msg = "Payment failed"
			}
			next.Body, _ = next.Body.Set("transaction.error.message", msg)
		}
		msgs = append(msgs, next)
	}
	return msgs, interval, nil
}

func (e *Emulator) postPayDo(w http.ResponseWriter, r *http.Request) error {
	var req PayDoRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	views, err := e.SendPayDo(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"messages": views})
	return nil
}

func (e *Emulator) putRegistration(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		URL string `json:"url"`
	}
	if r.Method == http.MethodPut {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
		if req.URL == "" {
			return badRequest("url is required (DELETE removes a registration)")
		}
	}
	var err error
	if project := r.PathValue("project"); project != "" {
		err = e.paydo.RegisterCheckoutURL(project, req.URL)
	} else {
		err = e.paydo.RegisterTransferURL(r.PathValue("user"), req.URL)
	}
	switch {
	case errors.Is(err, paydo.ErrAlreadyExists):
		return apiError(http.StatusConflict, err.Error())
	case err != nil:
		return refused(err)
	}
	return e.getRegistrations(w, r)
}

// putAPIToken sets (PUT {"token"}) or removes (DELETE) the token a
// project's status lookups must carry. It answers 204: tokens are never
// shown back.
func (e *Emulator) putAPIToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token string `json:"token"`
	}
	if r.Method == http.MethodPut {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
		if req.Token == "" {
			return badRequest("token is required (DELETE removes it)")
		}
	}
	if err := e.paydo.SetAPIToken(r.PathValue("project"), req.Token); err != nil {
		return refused(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Emulator) getRegistrations(w http.ResponseWriter, r *http.Request) error {
	projects, users := e.paydo.Registrations()
	writeJSON(w, http.StatusOK, map[string]any{"checkout_ipn_urls": projects, "transfer_ipn_urls": users})
	return nil
}

func (e *Emulator) listPayDoTransactions(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"transactions": e.paydo.Transactions()})
	return nil
}

func (e *Emulator) onLookup(l paydo.Lookup) {
	e.paydoMetrics.Lookup(l)
	if f := e.cfg.Observer.Lookup; f != nil {
		f(l)
	}
	// Filed under the transaction's latest notification, so that a view
	// of that message (its page, ipnlab send --wait) hears of it.
	id := ""
	if tx, ok := e.paydo.Transaction(l.Key); ok && l.Found && len(tx.Messages) > 0 {
		id = tx.Messages[len(tx.Messages)-1]
	}
	e.bus.Publish(events.PayDoLookup, l.Time, paydo.Provider, id, l)
}

// wholePayDo takes a request's whole body as the message.
func wholePayDo(req PayDoRequest, p generate.PayDoParams) (generate.PayDoMessage, error) {
	if len(req.Set) > 0 || len(req.Then) > 0 || req.Seed != 0 || p.Status != 0 || p.Identifier != "" || p.InvoiceID != "" || p.TxID != "" ||
		p.OrderID != "" || len(p.Metadata) > 0 || p.AmountAsString {
		return generate.PayDoMessage{}, badRequest("body is the whole message: set, then, seed and params other than amount and currency do not apply")
	}
	if req.Kind != generate.PayDoTransfer && req.Kind != generate.PayDoCheckout {
		return generate.PayDoMessage{}, badRequest("kind %q: want transfer or checkout", req.Kind)
	}
	body, err := orderedjson.Parse(req.Body)
	if err != nil {
		return generate.PayDoMessage{}, badRequest("body: %v (want a JSON object)", err)
	}
	return generate.PayDoMessage{Kind: req.Kind, Body: body, Amount: p.Amount, Currency: p.Currency}, nil
}
