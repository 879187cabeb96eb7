package paydo

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// PayDo as a provider of the emulator (package plugin): its control API,
// its status lookup for listeners, its History details, its follow-ups
// planned on the clock. The emulator registers it like any plug-in, with
// Factory.

//go:embed openapi.yaml
var openapi []byte

// LookupPattern is PayDo's status lookup, served for listeners.
const LookupPattern = "/paydo/v1/transactions/{id}"

// Plugin is the fake PayDo plugged into one emulator.
type Plugin struct {
	host     plugin.Host
	svc      *Service
	metrics  *Metrics
	observer func(Lookup)
}

// Factory makes the fake PayDo for one emulator, with settings s;
// observe, if set, hears of every status lookup.
func Factory(s Settings, observe func(Lookup)) plugin.Factory {
	return func(h plugin.Host) (plugin.Provider, error) {
		p := &Plugin{host: h, observer: observe}
		var err error
		if p.metrics, err = NewMetrics(h.Metrics); err != nil {
			return nil, err
		}
		cfg := Config{Clock: h.Clock, Engine: h.Engine, SourceAddr: s.Source, ForwardedFor: s.ForwardedFor, OnLookup: p.onLookup,
			TLS: h.TLS, Allow: h.Allow, Journal: h.Journal, APIToken: s.APIToken, Claim: s.Claim}
		if s.Schedule != nil {
			cfg.Schedule = *s.Schedule
		}
		if p.svc, err = New(cfg); err != nil {
			return nil, err
		}
		return p, nil
	}
}

// Service is the fake PayDo's state: registrations, transactions, tokens.
func (p *Plugin) Service() *Service { return p.svc }

// kinds are what PayDo sends, as the Simulator offers them.
func kinds() []api.ProviderKind {
	ks := generate.PayDoKinds()
	out := make([]api.ProviderKind, len(ks))
	for i, k := range ks {
		out[i] = api.ProviderKind{Name: k.Name, Description: k.Description}
	}
	return out
}

func (*Plugin) Name() string  { return Provider }
func (*Plugin) Title() string { return "PayDo" }

func (p *Plugin) Routes() []plugin.Route {
	return []plugin.Route{
		{Method: "GET", Pattern: LookupPattern, Handler: p.svc.LookupHandler(), Public: true},
		plugin.APIRoute("POST", "/api/v1/paydo/notifications", plugin.Sending(p.Send)),
		plugin.APIRoute("PUT", "/api/v1/paydo/projects/{project}/ipn-url", p.putRegistration),
		plugin.APIRoute("DELETE", "/api/v1/paydo/projects/{project}/ipn-url", p.putRegistration),
		plugin.APIRoute("PUT", "/api/v1/paydo/projects/{project}/api-token", p.putAPIToken),
		plugin.APIRoute("DELETE", "/api/v1/paydo/projects/{project}/api-token", p.putAPIToken),
		plugin.APIRoute("PUT", "/api/v1/paydo/users/{user}/transfer-ipn-url", p.putRegistration),
		plugin.APIRoute("DELETE", "/api/v1/paydo/users/{user}/transfer-ipn-url", p.putRegistration),
		plugin.APIRoute("GET", "/api/v1/paydo/registrations", p.getRegistrations),
		plugin.APIRoute("GET", "/api/v1/paydo/transactions", p.listTransactions),
		plugin.APIRoute("GET", "/api/v1/fixtures/paydo/{kind}", p.previewPayDo),
	}
}

func (*Plugin) OpenAPI() []byte { return openapi }

// DefaultEndpoint: the default project's checkout IPN URL, else the
// default user's transfer IPN URL.
func (p *Plugin) DefaultEndpoint() string {
	projects, users := p.svc.Registrations()
	return cmp.Or(projects["default"], users["default"])
}

func (p *Plugin) Restore() (plugin.RestoredCounts, error) {
	n, err := p.svc.Restore()
	return plugin.NonZero(plugin.RestoredCounts{"transactions": n}), err
}

func (p *Plugin) ClientFor(route string) (*http.Client, error) {
	return p.svc.ClientFor(route)
}

// Describe: PayDo's body is JSON, shown as sent.
func (p *Plugin) Describe(id string, v *api.MessageView) {
	body, _ := p.host.Engine.Body(id)
	v.Body, v.Charset = string(body), "UTF-8"
}

// Resend: the same bytes again; PayDo has no profile URL.
func (p *Plugin) Resend(id string, req api.ResendRequest) error {
	if req.UseProfileURL {
		return plugin.BadRequest("use_profile_url is PayPal's: PayDo has no profile URL")
	}
	_, err := p.host.Engine.Resend(id, req.URL)
	return err
}

func (*Plugin) Forget([]string) {}

// Notify: a generated notification of kind transfer or checkout, n.Set
// giving JSON paths their values.
func (p *Plugin) Notify(n plugin.Notify) ([]api.MessageView, error) {
	req := api.PayDoRequest{Kind: n.Kind, NotifyURL: n.NotifyURL, Seed: api.Seed(n.Seed), Copies: n.Copies}
	if len(n.Set) > 0 {
		set, err := json.Marshal(n.Set)
		if err != nil {
			return nil, plugin.BadRequest("set: %v", err)
		}
		req.Set = set
	}
	return p.Send(req)
}

func (*Plugin) Kinds() []api.ProviderKind { return kinds() }

// payDoPlan is what PayDo plans a follow-up with: the message and where
// it goes (the journal kept it under "paydo" before providers planned
// their own sends).
type payDoPlan struct {
	Kind         string          `json:"kind"`
	Body         json.RawMessage `json:"body"`
	Amount       generate.Money  `json:"amount"`
	Currency     string          `json:"currency"`
	URL          string          `json:"url,omitempty"`
	Project      string          `json:"project,omitempty"`
	User         string          `json:"user,omitempty"`
	Source       string          `json:"source,omitempty"`
	ForwardedFor string          `json:"forwarded_for,omitempty"`
}

// payDoPlanned is the payload PayDo plans notification n with.
func payDoPlanned(n Notification) (json.RawMessage, error) {
	body, err := json.Marshal(n.Message.Body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(payDoPlan{Kind: n.Message.Kind, Body: body, Amount: n.Message.Amount, Currency: n.Message.Currency,
		URL: n.URL, Project: n.Project, User: n.User, Source: n.Source, ForwardedFor: n.ForwardedFor})
}

// SendScheduled sends a planned follow-up.
func (p *Plugin) SendScheduled(payload json.RawMessage) error {
	var plan payDoPlan
	if err := json.Unmarshal(payload, &plan); err != nil {
		return fmt.Errorf("planned PayDo send: %w", err)
	}
	body, err := orderedjson.Parse(plan.Body)
	if err != nil {
		return fmt.Errorf("planned PayDo body: %w", err)
	}
	msg := generate.PayDoMessage{Kind: plan.Kind, Body: body, Amount: plan.Amount, Currency: plan.Currency}
	_, err = p.svc.Send(Notification{Message: msg, URL: plan.URL, Project: plan.Project, User: plan.User, Source: plan.Source, ForwardedFor: plan.ForwardedFor})
	return err
}

// Outcome: acknowledged is delivered; a checkout the listener also
// looked up says so (PayDo's IPN carries no signature: the lookup is how
// a listener confirms it).
func (p *Plugin) Outcome(m delivery.Message) api.Outcome {
	if o, acked := plugin.Unacknowledged(m); !acked {
		return o
	}
	o := api.Outcome{State: api.Delivered, Summary: "delivered (HTTP 200)"}
	if tx, ok := p.svc.Transaction(m.TxnID); ok && tx.LookedUp != nil {
		o.ConfirmedByLookup, o.Summary = true, "delivered (HTTP 200), confirmed by lookup"
	}
	return o
}

func (p *Plugin) Responsive(d time.Duration) bool { return p.svc.Responsive(d) }

// Send creates and delivers PayDo notifications and returns them in
// the order they were created.
func (p *Plugin) Send(req api.PayDoRequest) ([]api.MessageView, error) {
	msgs, interval, err := p.build(req)
	if err != nil {
		return nil, err
	}
	copies := max(req.Copies, 1)
	var ids []string
	note := func(m generate.PayDoMessage) Notification {
		return Notification{Message: m, URL: req.NotifyURL, Project: req.Project, User: req.User, Source: req.Source, ForwardedFor: req.ForwardedFor}
	}
	send := func(m generate.PayDoMessage, n int) error {
		for range n {
			rec, err := p.svc.Send(note(m))
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
	p.host.WaitIdle()
	for i, m := range msgs[1:] {
		if interval == 0 {
			if err := send(m, 1); err != nil {
				return nil, err
			}
			p.host.WaitIdle()
			continue
		}
		payload, err := payDoPlanned(note(m))
		if err == nil {
			err = p.host.Schedule(plugin.Planned{Provider: Provider, At: p.host.Clock.Now().Add(time.Duration(i+1) * interval),
				Label: fmt.Sprintf("paydo %s follow-up %d", req.Kind, i+1), Payload: payload})
		}
		if err != nil {
			return nil, err
		}
	}
	views := make([]api.MessageView, 0, len(ids))
	for _, id := range ids {
		v, _ := p.host.View(id)
		views = append(views, v)
	}
	return views, nil
}

// Dispatch creates one PayDo notification (no copies, no follow-up
// statuses) and hands it to delivery without waiting for the first attempt
// or building its view, for tools that send many (ipnlab load). It returns
// the message id.
func (p *Plugin) Dispatch(req api.PayDoRequest) (string, error) {
	if req.Copies > 1 || len(req.Then) > 0 {
		return "", plugin.BadRequest("dispatch sends one message: copies and then do not apply")
	}
	msgs, _, err := p.build(req)
	if err != nil {
		return "", err
	}
	rec, err := p.svc.Send(Notification{Message: msgs[0], URL: req.NotifyURL, Project: req.Project, User: req.User, Source: req.Source, ForwardedFor: req.ForwardedFor})
	if err != nil {
		return "", payDoSendError(err)
	}
	return rec.ID, nil
}

// payDoSendError marks the caller's mistakes as bad requests.
func payDoSendError(err error) error {
	if errors.Is(err, ErrNoTarget) || errors.Is(err, delivery.ErrBadURL) || errors.Is(err, ErrBadSource) {
		return fmt.Errorf("%w: %w", plugin.ErrBadRequest, err)
	}
	return err
}

// MaxThen bounds a PayDo request's follow-up statuses: one request made
// 100,001 messages (738 MB) before there was a bound.
const MaxThen = 20

// build makes every message of a request before any is sent.
func (p *Plugin) build(req api.PayDoRequest) ([]generate.PayDoMessage, time.Duration, error) {
	if req.Kind == "" {
		return nil, 0, plugin.BadRequest("kind is required: transfer or checkout")
	}
	if req.Copies < 0 || req.Copies > 1000 {
		return nil, 0, plugin.BadRequest("copies %d: want 1 to 1000", req.Copies)
	}
	if len(req.Then) > MaxThen {
		return nil, 0, plugin.BadRequest("then has %d statuses: at most %d (a transaction changes status a few times)", len(req.Then), MaxThen)
	}
	var interval time.Duration
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil || d < 0 {
			return nil, 0, plugin.BadRequest("interval %q: want a duration such as 10m", req.Interval)
		}
		interval = d
	}
	params := generate.PayDoParams{
		Currency: req.Params.Currency, Status: req.Params.Status, Identifier: req.Params.Identifier,
		InvoiceID: req.Params.InvoiceID, TxID: req.Params.TxID, OrderID: req.Params.OrderID,
		AmountAsString: req.Params.AmountAsString,
	}
	if req.Params.Amount != "" {
		a, err := generate.ParseMoney(req.Params.Amount)
		if err != nil {
			return nil, 0, plugin.BadRequest("params.amount: %v", err)
		}
		params.Amount = a
	}
	if len(req.Params.Metadata) > 0 {
		md, err := orderedjson.Parse(req.Params.Metadata)
		if err != nil {
			return nil, 0, plugin.BadRequest("params.metadata: %v", err)
		}
		params.Metadata = md
	}
	var sets orderedjson.Object
	if len(req.Set) > 0 {
		var err error
		if sets, err = orderedjson.Parse(req.Set); err != nil {
			return nil, 0, plugin.BadRequest("set: %v (want an object of paths to JSON values)", err)
		}
	}
	var first generate.PayDoMessage
	if len(req.Body) > 0 {
		first, err := wholePayDo(req, params)
		if err != nil {
			return nil, 0, err
		}
		return []generate.PayDoMessage{first}, interval, nil
	}
	seed := uint64(req.Seed)
	if seed == 0 {
		seed = p.host.DrawSeed()
	}
	gen, err := generate.New(seed, generate.Options{Start: p.host.Clock.Now()})
	if err != nil {
		return nil, 0, plugin.BadRequest("%v", err)
	}
	if first, err = gen.PayDo(req.Kind, params); err != nil {
		return nil, 0, plugin.BadRequest("%v", err)
	}
	for _, m := range sets {
		if first.Body, err = first.Body.Set(m.Key, m.Value, generate.PayDoOpenPaths...); err != nil {
			return nil, 0, plugin.BadRequest("set %v", err)
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
			return nil, 0, plugin.BadRequest("then: %v", err)
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

func (p *Plugin) putRegistration(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		URL string `json:"url"`
	}
	if r.Method == http.MethodPut {
		if err := plugin.ReadJSON(w, r, &req); err != nil {
			return err
		}
		if req.URL == "" {
			return plugin.BadRequest("url is required (DELETE removes a registration)")
		}
	}
	var err error
	if project := r.PathValue("project"); project != "" {
		err = p.svc.RegisterCheckoutURL(project, req.URL)
	} else {
		err = p.svc.RegisterTransferURL(r.PathValue("user"), req.URL)
	}
	switch {
	case errors.Is(err, ErrAlreadyExists):
		return plugin.StatusError(http.StatusConflict, "%v", err)
	case err != nil:
		return plugin.Refused(err)
	}
	return p.getRegistrations(w, r)
}

// putAPIToken sets (PUT {"token"}) or removes (DELETE) the token a
// project's status lookups must carry. It answers 204: tokens are never
// shown back.
func (p *Plugin) putAPIToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token string `json:"token"`
	}
	if r.Method == http.MethodPut {
		if err := plugin.ReadJSON(w, r, &req); err != nil {
			return err
		}
		if req.Token == "" {
			return plugin.BadRequest("token is required (DELETE removes it)")
		}
	}
	if err := p.svc.SetAPIToken(r.PathValue("project"), req.Token); err != nil {
		return plugin.Refused(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (p *Plugin) getRegistrations(w http.ResponseWriter, r *http.Request) error {
	projects, users := p.svc.Registrations()
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"checkout_ipn_urls": projects, "transfer_ipn_urls": users})
	return nil
}

func (p *Plugin) listTransactions(w http.ResponseWriter, r *http.Request) error {
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"transactions": p.svc.Transactions()})
	return nil
}

func (p *Plugin) onLookup(l Lookup) {
	p.metrics.Lookup(l)
	if p.observer != nil {
		p.observer(l)
	}
	// Filed under the transaction's latest notification, so that a view
	// of that message (its page, ipnlab send --wait) hears of it.
	id := ""
	if tx, ok := p.svc.Transaction(l.Key); ok && l.Found && len(tx.Messages) > 0 {
		id = tx.Messages[len(tx.Messages)-1]
	}
	p.host.Publish(events.PayDoLookup, l.Time, Provider, id, l)
}

// wholePayDo takes a request's whole body as the message.
func wholePayDo(req api.PayDoRequest, p generate.PayDoParams) (generate.PayDoMessage, error) {
	if len(req.Set) > 0 || len(req.Then) > 0 || req.Seed != 0 || p.Status != 0 || p.Identifier != "" || p.InvoiceID != "" || p.TxID != "" ||
		p.OrderID != "" || len(p.Metadata) > 0 || p.AmountAsString {
		return generate.PayDoMessage{}, plugin.BadRequest("body is the whole message: set, then, seed and params other than amount and currency do not apply")
	}
	if req.Kind != generate.PayDoTransfer && req.Kind != generate.PayDoCheckout {
		return generate.PayDoMessage{}, plugin.BadRequest("kind %q: want transfer or checkout", req.Kind)
	}
	body, err := orderedjson.Parse(req.Body)
	if err != nil {
		return generate.PayDoMessage{}, plugin.BadRequest("body: %v (want a JSON object)", err)
	}
	return generate.PayDoMessage{Kind: req.Kind, Body: body, Amount: p.Amount, Currency: p.Currency}, nil
}

// Preview generates the first message a PayDoRequest would send,
// without sending it.
func (p *Plugin) Preview(req api.PayDoRequest) (api.Preview, error) {
	if len(req.Body) > 0 {
		return api.Preview{}, plugin.BadRequest("a preview generates a message: a whole body is already what it is")
	}
	if req.Seed == 0 {
		// Drawn here rather than by the generator, so the preview tells it.
		req.Seed = api.Seed(p.host.DrawSeed())
	}
	msgs, _, err := p.build(req)
	if err != nil {
		return api.Preview{}, err
	}
	m := msgs[0]
	body, err := m.JSON()
	if err != nil {
		return api.Preview{}, fmt.Errorf("preview %s: %w", m.Kind, err)
	}
	out := api.Preview{Provider: Provider, Kind: m.Kind, Seed: req.Seed, Body: body}
	if m.Kind == generate.PayDoCheckout {
		out.Amount, out.Currency = m.Amount.String(), m.Currency
	}
	return out, nil
}

func (p *Plugin) previewPayDo(w http.ResponseWriter, r *http.Request) error {
	q, err := plugin.Query(r, "seed")
	if err != nil {
		return err
	}
	seed, err := plugin.ParseSeed(q.Get("seed"))
	if err != nil {
		return err
	}
	preview, err := p.Preview(api.PayDoRequest{Kind: r.PathValue("kind"), Seed: api.Seed(seed)})
	if err != nil {
		return err
	}
	plugin.WriteJSON(w, http.StatusOK, preview)
	return nil
}
