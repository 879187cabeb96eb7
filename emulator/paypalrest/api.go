package paypalrest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// PayPal's REST API, as integrations call it, and the control API's send.

// apiFailure answers as PayPal's REST API does: {"name", "message"}.
func apiFailure(w http.ResponseWriter, status int, name, format string, args ...any) {
	plugin.WriteJSON(w, status, map[string]any{"name": name, "message": fmt.Sprintf(format, args...)})
}

// tokenTTL is how long an OAuth token lasts (PayPal's: 9 hours).
const tokenTTL = 9 * time.Hour

// token is POST /v1/oauth2/token: client credentials (HTTP Basic) for a
// bearer token.
func (p *Plugin) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != p.app.ClientID || secret != p.app.Secret {
		apiFailure(w, http.StatusUnauthorized, "invalid_client", "Client Authentication failed")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		apiFailure(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	tok := "A21AA" + randomHex(24)
	p.mu.Lock()
	now := p.host.Clock.Now()
	for t, until := range p.tokens {
		if now.After(until) {
			delete(p.tokens, t)
		}
	}
	p.tokens[tok] = now.Add(tokenTTL)
	p.mu.Unlock()
	plugin.WriteJSON(w, http.StatusOK, map[string]any{
		"scope":        "https://uri.paypal.com/services/applications/webhooks",
		"access_token": tok, "token_type": "Bearer", "app_id": "APP-80W284485P519543T",
		"expires_in": int(tokenTTL / time.Second), "nonce": p.host.Clock.Now().UTC().Format(time.RFC3339) + randomHex(8),
	})
}

// authorized serves h to a request with a live bearer token.
func (p *Plugin) authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		until, known := p.tokens[tok]
		p.mu.Unlock()
		if !ok || !known || p.host.Clock.Now().After(until) {
			apiFailure(w, http.StatusUnauthorized, "AUTHENTICATION_FAILURE", "Authentication failed due to invalid authentication credentials or a missing Authorization header (get a token at POST /v1/oauth2/token)")
			return
		}
		h(w, r)
	})
}

// cert serves a signing certificate, PEM.
func (p *Plugin) cert(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p.mu.Lock()
	i := slices.IndexFunc(p.signers, func(s *signer) bool { return s.Name == name })
	var body []byte
	failing := false
	if i >= 0 {
		body = p.signers[i].CertPEM()
		if failing = p.signers[i].failing > 0; failing {
			p.signers[i].failing--
		}
	}
	p.mu.Unlock()
	switch {
	case failing:
		p.note("certificate "+name+" → 503 (the outage a send asked for)", true)
		http.Error(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", http.StatusServiceUnavailable)
		return
	case body != nil:
		p.note("certificate "+name+" fetched", false)
	}
	if body == nil {
		apiFailure(w, http.StatusNotFound, "RESOURCE_NOT_FOUND", "no certificate %q", name)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(body)
}

// note tells the emulator's events (and a tail) what a listener asked.
func (p *Plugin) note(text string, bad bool) {
	if p.host.Publish != nil {
		p.host.Publish(events.Note, p.host.Clock.Now(), Provider, "", events.NoteData{Text: text, Bad: bad})
	}
}

// readBody reads a REST request's JSON body into v, strictly.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := plugin.ReadJSON(w, r, v); err != nil {
		apiFailure(w, plugin.StatusOf(err), "INVALID_REQUEST", "%s", plugin.MessageOf(err))
		return false
	}
	return true
}

func (p *Plugin) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL        string      `json:"url"`
		EventTypes []EventType `json:"event_types"`
	}
	if !readBody(w, r, &req) {
		return
	}
	wh, err := p.subscribe(req.URL, req.EventTypes)
	if err != nil {
		apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "%v", err)
		return
	}
	plugin.WriteJSON(w, http.StatusCreated, wh)
}

// checkWebhook refuses a bad URL and an event type this provider does not
// send.
func checkWebhook(rawURL string, types []EventType) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want an http(s) URL", rawURL)
	}
	if len(types) == 0 {
		return fmt.Errorf("event_types is required: names of event types, or \"*\" for all")
	}
	for _, t := range types {
		if _, ok := lookupKind(t.Name); !ok && t.Name != "*" {
			return fmt.Errorf("event type %q: want \"*\" or one of %s", t.Name, strings.Join(KindNames(), ", "))
		}
	}
	return nil
}

// errURLTaken is subscribe's error for a URL a webhook has.
var errURLTaken = errors.New("WEBHOOK_URL_ALREADY_EXISTS")

// subscribe adds a webhook, refusing a bad or taken URL, a type this
// provider does not send, and an eleventh webhook.
func (p *Plugin) subscribe(rawURL string, types []EventType) (Webhook, error) {
	if err := checkWebhook(rawURL, types); err != nil {
		return Webhook{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case slices.ContainsFunc(p.webhooks, func(w Webhook) bool { return w.URL == rawURL }):
		return Webhook{}, fmt.Errorf("%w: a webhook has the URL %s already", errURLTaken, rawURL)
	case len(p.webhooks) >= MaxWebhooks:
		return Webhook{}, fmt.Errorf("WEBHOOK_NUMBER_LIMIT_EXCEEDED: an app has at most %d webhooks", MaxWebhooks)
	}
	id := p.settings.WebhookIDs[rawURL]
	if id == "" || slices.ContainsFunc(p.webhooks, func(w Webhook) bool { return w.ID == id }) {
		id = strings.ToUpper(randomHex(9))[:17]
	}
	wh := Webhook{ID: id, URL: rawURL, EventTypes: types}
	if err := p.journalWebhook(wh, false); err != nil {
		return Webhook{}, err
	}
	p.webhooks = append(p.webhooks, wh)
	return wh, nil
}

// Subscribe adds a webhook under an id of the caller's: a lab wiring a
// listener configured with it (PayPal's API draws the id). The same
// webhook subscribed again (a restarted lab) is kept as it is.
func (p *Plugin) Subscribe(wh Webhook) (Webhook, error) {
	if wh.ID == "" || strings.ContainsAny(wh.ID, " \t\n/") {
		return Webhook{}, fmt.Errorf("webhook id %q: want an id without spaces or slashes", wh.ID)
	}
	if len(wh.EventTypes) == 0 {
		wh.EventTypes = []EventType{{Name: "*"}}
	}
	if err := checkWebhook(wh.URL, wh.EventTypes); err != nil {
		return Webhook{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.webhooks {
		switch {
		case w.ID == wh.ID && w.URL == wh.URL:
			return w, nil
		case w.ID == wh.ID:
			return Webhook{}, fmt.Errorf("webhook id %s is taken by %s", wh.ID, w.URL)
		case w.URL == wh.URL:
			return Webhook{}, fmt.Errorf("%w: webhook %s has the URL %s", errURLTaken, w.ID, wh.URL)
		}
	}
	if len(p.webhooks) >= MaxWebhooks {
		return Webhook{}, fmt.Errorf("WEBHOOK_NUMBER_LIMIT_EXCEEDED: an app has at most %d webhooks", MaxWebhooks)
	}
	if err := p.journalWebhook(wh, false); err != nil {
		return Webhook{}, err
	}
	p.webhooks = append(p.webhooks, wh)
	return wh, nil
}

func (p *Plugin) journalWebhook(wh Webhook, remove bool) error {
	if p.host.Journal == nil {
		return nil
	}
	raw, err := json.Marshal(wh)
	if err != nil {
		return err
	}
	return p.host.Journal.Write(journal.Entry{Kind: kindWebhook, Key: wh.ID, Value: raw, Delete: remove})
}

func (p *Plugin) listWebhooks(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	list := append([]Webhook{}, p.webhooks...)
	p.mu.Unlock()
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": list})
}

func (p *Plugin) getWebhook(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	i := slices.IndexFunc(p.webhooks, func(wh Webhook) bool { return wh.ID == r.PathValue("id") })
	var wh Webhook
	if i >= 0 {
		wh = p.webhooks[i]
	}
	p.mu.Unlock()
	if i < 0 {
		apiFailure(w, http.StatusNotFound, "INVALID_RESOURCE_ID", "no webhook %q", r.PathValue("id"))
		return
	}
	plugin.WriteJSON(w, http.StatusOK, wh)
}

func (p *Plugin) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	i := slices.IndexFunc(p.webhooks, func(wh Webhook) bool { return wh.ID == r.PathValue("id") })
	var err error
	if i >= 0 {
		if err = p.journalWebhook(p.webhooks[i], true); err == nil {
			p.webhooks = slices.Delete(p.webhooks, i, i+1)
		}
	}
	p.mu.Unlock()
	switch {
	case i < 0:
		apiFailure(w, http.StatusNotFound, "INVALID_RESOURCE_ID", "no webhook %q", r.PathValue("id"))
	case err != nil:
		apiFailure(w, http.StatusInternalServerError, "INTERNAL_SERVICE_ERROR", "%v", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// SendRequest asks for one event, delivered to every webhook that takes
// its type.
type SendRequest struct {
	EventType string `json:"event_type"`
	Seed      uint64 `json:"seed,omitempty"`
	Amount    string `json:"amount,omitempty"`
	Currency  string `json:"currency,omitempty"`
	CustomID  string `json:"custom_id,omitempty"`
	// ResourceID pins the resource's id: the capture a later event of the
	// same capture names (PENDING, then COMPLETED), or a refund's own.
	ResourceID string `json:"resource_id,omitempty"`
	// Parent is the capture a refund refunds (its "up" link), the sale a
	// sale's refund refunds (sale_id), the capture a dispute disputes
	// (its disputed transaction's seller_transaction_id), or the order a
	// capture captures (its related order_id and "up" link).
	Parent string `json:"parent,omitempty"`
	// Outcome is a resolved dispute's outcome_code (default
	// RESOLVED_BUYER_FAVOUR).
	Outcome string `json:"outcome,omitempty"`
	// Subscription is the subscription a sale pays (billing_agreement_id).
	Subscription string `json:"subscription,omitempty"`
	// Quirks writes the body as a re-serializing verifier does not: with
	// escaped non-ASCII text and escaped slashes ("\u20ac", "\/"), as
	// JSON may be written and PayPal's signature covers.
	Quirks bool `json:"quirks,omitempty"`
	// Tamper delivers a forgery: "body" changes the amount after the
	// event is signed (the signature is over the genuine bytes);
	// "foreign_cert" signs it with an attacker's key, its PAYPAL-CERT-URL
	// on the attacker's host (a loopback server of this provider's, the
	// URL mentioning paypal.com in its path).
	Tamper string `json:"tamper,omitempty"`
	// Rotate makes a new signing key first (as POST
	// /api/v1/paypalrest/rotate): the event names a certificate no
	// listener has fetched yet.
	Rotate bool `json:"rotate,omitempty"`
	// CertOutage is how many fetches of the certificate the event names
	// are answered 503 first (with rotate: the first fetches there are).
	// An outage ends when the next event is sent: what a listener did
	// not fetch meanwhile does not fail a later event.
	CertOutage int `json:"cert_outage,omitempty"`
	// Mock sends it as the webhooks simulator does: signed for
	// WEBHOOK_ID, to NotifyURL only, once.
	Mock bool `json:"mock,omitempty"`
	// Copies delivers the same event this many times to each webhook
	// (PayPal's duplicates, milliseconds apart); default 1.
	Copies int `json:"copies,omitempty"`
	// NotifyURL, if set, is subscribed to every type first (as a user of
	// the dashboard would) when no webhook has it yet.
	NotifyURL string `json:"notify_url,omitempty"`
}

// MaxCopies bounds SendRequest.Copies.
const MaxCopies = 100

// The forgeries SendRequest.Tamper knows.
const (
	TamperBody        = "body"
	TamperForeignCert = "foreign_cert"
)

// MaxCertOutage bounds SendRequest.CertOutage.
const MaxCertOutage = 100

// Notify: an event of type n.Kind, n.Copies times; n.Set may pin
// amount, currency, custom_id, resource_id and parent, and ask for
// quirks, tamper or mock (plugin's Sender).
func (p *Plugin) Notify(n plugin.Notify) ([]api.MessageView, error) {
	req := SendRequest{EventType: n.Kind, Seed: n.Seed, NotifyURL: n.NotifyURL, Copies: n.Copies}
	texts := map[string]*string{"amount": &req.Amount, "currency": &req.Currency, "custom_id": &req.CustomID,
		"resource_id": &req.ResourceID, "parent": &req.Parent, "tamper": &req.Tamper, "outcome": &req.Outcome, "subscription": &req.Subscription}
	flags := map[string]*bool{"quirks": &req.Quirks, "mock": &req.Mock, "rotate": &req.Rotate}
	for k, v := range n.Set {
		// A scenario's YAML gives typed values; JSON numbers come as
		// float64; the command line's --set k=v as text.
		if k == "cert_outage" {
			var err error
			switch x := v.(type) {
			case int:
				req.CertOutage = x
			case float64:
				req.CertOutage = int(x)
				if float64(req.CertOutage) != x {
					err = fmt.Errorf("%v", x)
				}
			case string:
				req.CertOutage, err = strconv.Atoi(x)
			default:
				err = fmt.Errorf("%T", v)
			}
			if err != nil {
				return nil, plugin.BadRequest("set.cert_outage: want a whole number of fetches (%v)", err)
			}
			continue
		}
		if f, ok := flags[k]; ok {
			switch x := v.(type) {
			case bool:
				*f = x
			case string:
				b, err := strconv.ParseBool(x)
				if err != nil {
					return nil, plugin.BadRequest("set.%s: want true or false, not %q", k, x)
				}
				*f = b
			default:
				return nil, plugin.BadRequest("set.%s: want true or false, not %T", k, v)
			}
			continue
		}
		t, ok := texts[k]
		if !ok {
			return nil, plugin.BadRequest("set.%s: want amount, currency, custom_id, resource_id, parent, outcome, subscription, quirks, tamper, mock, rotate or cert_outage", k)
		}
		s, isText := v.(string)
		if !isText {
			return nil, plugin.BadRequest("set.%s: want text, not %T", k, v)
		}
		*t = s
	}
	return p.Send(req)
}

// Send generates one event and delivers it to every webhook that takes
// its type (a mock event: to NotifyURL), Copies messages each, and
// returns their views.
func (p *Plugin) Send(req SendRequest) ([]api.MessageView, error) {
	if req.EventType == "" {
		return nil, plugin.BadRequest("event_type is required: one of %s", strings.Join(KindNames(), ", "))
	}
	if req.Copies < 0 || req.Copies > MaxCopies {
		return nil, plugin.BadRequest("copies %d: want 1 to %d", req.Copies, MaxCopies)
	}
	if req.Tamper != "" && req.Tamper != TamperBody && req.Tamper != TamperForeignCert {
		return nil, plugin.BadRequest("tamper %q: want %s (the amount changed after signing) or %s (signed by an attacker's key, its certificate on the attacker's host)",
			req.Tamper, TamperBody, TamperForeignCert)
	}
	if req.CertOutage < 0 || req.CertOutage > MaxCertOutage {
		return nil, plugin.BadRequest("cert_outage %d: want 0 to %d fetches", req.CertOutage, MaxCertOutage)
	}
	if req.Mock && req.NotifyURL == "" {
		return nil, plugin.BadRequest("mock: give notify_url, where the simulator sends its mock event")
	}
	if req.NotifyURL != "" && !req.Mock {
		p.mu.Lock()
		known := slices.ContainsFunc(p.webhooks, func(w Webhook) bool { return w.URL == req.NotifyURL })
		p.mu.Unlock()
		if !known {
			// Two sends at once may both subscribe it: one wins.
			if _, err := p.subscribe(req.NotifyURL, []EventType{{Name: "*"}}); err != nil && !errors.Is(err, errURLTaken) {
				return nil, plugin.BadRequest("notify_url: %v", err)
			}
		}
	}
	seed := req.Seed
	if seed == 0 {
		seed = p.host.DrawSeed()
	}
	switch req.Outcome {
	case "", "RESOLVED_BUYER_FAVOUR", "RESOLVED_SELLER_FAVOUR", "RESOLVED_WITH_PAYOUT", "CANCELED_BY_BUYER", "DENIED":
	default:
		return nil, plugin.BadRequest("outcome %q: want RESOLVED_BUYER_FAVOUR, RESOLVED_SELLER_FAVOUR, RESOLVED_WITH_PAYOUT, CANCELED_BY_BUYER or DENIED", req.Outcome)
	}
	params := eventParams{Amount: req.Amount, Currency: req.Currency, CustomID: req.CustomID, ResourceID: req.ResourceID, Parent: req.Parent,
		Quirks: req.Quirks, Outcome: req.Outcome, Subscription: req.Subscription}
	ev, err := generateEvent(seed, req.EventType, p.host.Clock.Now(), p.settings.Live, params)
	if err != nil {
		return nil, plugin.BadRequest("%v", err)
	}
	if req.Tamper == TamperBody {
		if ev, err = forge(ev); err != nil {
			return nil, plugin.BadRequest("%v", err)
		}
	}
	if req.Tamper == TamperForeignCert {
		ev.Foreign = true
		if err := p.startAttacker(); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	sg, err := p.currentLocked()
	if err == nil && req.Rotate {
		sg, err = p.rotateLocked()
	}
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	for _, s := range p.signers {
		s.failing = 0
	}
	sg.failing = req.CertOutage
	var targets []Webhook
	for _, wh := range p.webhooks {
		if wh.takes(ev.Type) && !req.Mock {
			targets = append(targets, wh)
		}
	}
	p.mu.Unlock()
	if req.Mock {
		targets = []Webhook{{ID: MockWebhookID, URL: req.NotifyURL}}
	}
	if len(targets) == 0 {
		return nil, plugin.BadRequest("no webhook takes %s: create one (POST /v1/notifications/webhooks) or give notify_url", ev.Type)
	}
	var ids []string
	for _, wh := range targets {
		for range max(req.Copies, 1) {
			id, err := p.submit(ev, wh, req.Mock)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
	}
	p.host.WaitIdle()
	views := make([]api.MessageView, 0, len(ids))
	for _, id := range ids {
		v, _ := p.host.View(id)
		views = append(views, v)
	}
	return views, nil
}

// Dispatch generates one event and hands it to delivery for each webhook
// that takes its type, without waiting for the first attempts or building
// views, for tools that send many (ipnlab load). It returns the message
// ids. Traps, copies and mock events are Send's.
func (p *Plugin) Dispatch(req SendRequest) ([]string, error) {
	if req.Tamper != "" || req.Mock || req.Copies > 1 || req.Rotate || req.CertOutage > 0 || req.NotifyURL != "" {
		return nil, plugin.BadRequest("dispatch sends one genuine event to the webhooks there are: tamper, mock, copies, rotate, cert_outage and notify_url are Send's")
	}
	seed := req.Seed
	if seed == 0 {
		seed = p.host.DrawSeed()
	}
	ev, err := generateEvent(seed, req.EventType, p.host.Clock.Now(), p.settings.Live, eventParams{Amount: req.Amount, Currency: req.Currency,
		CustomID: req.CustomID, ResourceID: req.ResourceID, Parent: req.Parent, Quirks: req.Quirks, Outcome: req.Outcome, Subscription: req.Subscription})
	if err != nil {
		return nil, plugin.BadRequest("%v", err)
	}
	p.mu.Lock()
	_, err = p.currentLocked()
	var targets []Webhook
	for _, wh := range p.webhooks {
		if wh.takes(ev.Type) {
			targets = append(targets, wh)
		}
	}
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, plugin.BadRequest("no webhook takes %s", ev.Type)
	}
	ids := make([]string, 0, len(targets))
	for _, wh := range targets {
		id, err := p.submit(ev, wh, false)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// forge is ev delivered with every amount multiplied by a hundred,
// signed over ev's genuine bytes: what an attacker who keeps a captured
// signature sends.
func forge(ev Event) (Event, error) {
	v := amountOf(ev.Body)
	c, err := cents(v)
	if err != nil {
		return ev, fmt.Errorf("tamper: the event's amount: %w", err)
	}
	forged := ev
	forged.Signed = ev.Body
	raised := formatCents(c * 100)
	forged.Body = bytes.ReplaceAll(ev.Body, []byte(`"value":"`+v+`"`), []byte(`"value":"`+raised+`"`))
	forged.Body = bytes.ReplaceAll(forged.Body, []byte(`"total":"`+v+`"`), []byte(`"total":"`+raised+`"`))
	return forged, nil
}

// amountOf reads the resource's amount.value of an event body.
func amountOf(body []byte) string {
	var e struct {
		Resource struct {
			Amount struct {
				Value string `json:"value"`
				Total string `json:"total"`
			} `json:"amount"`
			DisputeAmount struct {
				Value string `json:"value"`
			} `json:"dispute_amount"`
			PurchaseUnits []struct {
				Amount struct {
					Value string `json:"value"`
				} `json:"amount"`
			} `json:"purchase_units"`
		} `json:"resource"`
	}
	_ = json.Unmarshal(body, &e)
	if len(e.Resource.PurchaseUnits) > 0 {
		return e.Resource.PurchaseUnits[0].Amount.Value
	}
	return cmp.Or(e.Resource.Amount.Value, e.Resource.Amount.Total, e.Resource.DisputeAmount.Value)
}

// postRotate makes a new signing key; the old certificates stay served.
func (p *Plugin) postRotate(w http.ResponseWriter, _ *http.Request) error {
	p.mu.Lock()
	s, err := p.rotateLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"cert_url": s.CertURL()})
	return nil
}

// verifyRequest is the verify API's body; webhook_event is kept as the
// bytes posted, which the signature is checked over.
type verifyRequest struct {
	AuthAlgo         string          `json:"auth_algo"`
	CertURL          string          `json:"cert_url"`
	TransmissionID   string          `json:"transmission_id"`
	TransmissionSig  string          `json:"transmission_sig"`
	TransmissionTime string          `json:"transmission_time"`
	WebhookID        string          `json:"webhook_id"`
	WebhookEvent     json.RawMessage `json:"webhook_event"`
}

// verifySignature is POST /v1/notifications/verify-webhook-signature:
// SUCCESS or FAILURE, both with HTTP 200 as PayPal answers. A FAILURE
// says why, in a field of ipnlab's own (PayPal says nothing more).
func (p *Plugin) verifySignature(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, plugin.MaxAPIBody))
	if err != nil {
		apiFailure(w, http.StatusBadRequest, "INVALID_REQUEST", "reading the body: %v", err)
		return
	}
	var req verifyRequest
	if err := plugin.DecodeJSON(bytes.NewReader(raw), &req); err != nil {
		apiFailure(w, http.StatusBadRequest, "INVALID_REQUEST", "%s", plugin.MessageOf(err))
		return
	}
	for name, v := range map[string]string{"auth_algo": req.AuthAlgo, "cert_url": req.CertURL, "transmission_id": req.TransmissionID,
		"transmission_sig": req.TransmissionSig, "transmission_time": req.TransmissionTime, "webhook_id": req.WebhookID} {
		if v == "" {
			apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "%s is required", name)
			return
		}
	}
	if len(req.WebhookEvent) == 0 {
		apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "webhook_event is required")
		return
	}
	why := p.judge(req)
	status, reason := "SUCCESS", ""
	out := map[string]any{"verification_status": status}
	if why != "" {
		status, reason = "FAILURE", ": "+why
		out = map[string]any{"verification_status": status, "ipnlab_reason": why}
	}
	p.verifications.WithLabelValues(status).Inc()
	p.note(fmt.Sprintf("verify API → %s for transmission %s%s", status, req.TransmissionID, reason), why != "")
	var event struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(req.WebhookEvent, &event)
	p.recordVerify(event.ID, req.TransmissionID, status+reason)
	plugin.WriteJSON(w, http.StatusOK, out)
}

// recordVerify keeps a verify API answer with the message of eventID
// whose transmission it was asked about, for History (none when no
// message of this emulator had the transmission).
func (p *Plugin) recordVerify(eventID, transmissionID, answer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.events[eventID] {
		m := p.messages[id]
		for _, t := range m.transmissions {
			if t.ID == transmissionID {
				m.verifies = append(m.verifies, fmt.Sprintf("%s at %s", answer, p.host.Clock.Now().UTC().Format(time.RFC3339)))
				return
			}
		}
	}
}

// judge says why a verification fails ("" when it succeeds): the
// signature is checked over the webhook_event bytes as posted, as
// PayPal's is; when it fails, what differs from what was sent says why.
func (p *Plugin) judge(req verifyRequest) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.signers, func(s *signer) bool { return s.CertURL() == req.CertURL })
	if req.AuthAlgo != AuthAlgo {
		return fmt.Sprintf("auth_algo %q: the transmission was signed with %s (its PAYPAL-AUTH-ALGO header)", req.AuthAlgo, AuthAlgo)
	}
	if i < 0 {
		return fmt.Sprintf("cert_url %q is no certificate of PayPal's (its PAYPAL-CERT-URL header names one)", req.CertURL)
	}
	known := slices.ContainsFunc(p.webhooks, func(w Webhook) bool { return w.ID == req.WebhookID })
	var event struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(req.WebhookEvent, &event)
	if req.WebhookID == MockWebhookID {
		return "webhook_id WEBHOOK_ID: a mock event of the webhooks simulator, which the verify API does not verify (a listener configured for production must refuse it)"
	}
	if !known {
		why := fmt.Sprintf("webhook_id %q is no webhook of this app", req.WebhookID)
		if req.WebhookID == event.ID {
			why += ": it is the event's id; the signature is over the id of the webhook (subscription) that received the event"
		}
		return why
	}
	if p.signers[i].verify(SignedString(req.TransmissionID, req.TransmissionTime, req.WebhookID, req.WebhookEvent), req.TransmissionSig) {
		return ""
	}
	// Why not: find the transmission, then what was sent.
	var t *transmission
	var s *sent
	var msgID string
	for _, id := range p.events[event.ID] {
		m := p.messages[id]
		for j := range m.transmissions {
			if m.transmissions[j].ID == req.TransmissionID {
				t, s, msgID = &m.transmissions[j], m, id
			}
		}
	}
	switch {
	case t == nil:
		return fmt.Sprintf("transmission_id %q: no transmission of event %q had it", req.TransmissionID, event.ID)
	case req.WebhookID != s.WebhookID:
		return fmt.Sprintf("webhook_id %q: transmission %s went to webhook %s", req.WebhookID, t.ID, s.WebhookID)
	case req.TransmissionTime != t.Time:
		return fmt.Sprintf("transmission_time %q: transmission %s was sent at %s", req.TransmissionTime, t.ID, t.Time)
	case req.TransmissionSig != t.Sig:
		return fmt.Sprintf("transmission_sig: not the signature transmission %s carried", t.ID)
	}
	body, _ := p.host.Engine.Body(msgID)
	return "webhook_event: " + differs(body, req.WebhookEvent)
}

// differs says where posted differs from sent, byte-aware: the first
// byte, and the member it is in when both parse.
func differs(sent, posted []byte) string {
	n := 0
	for n < len(sent) && n < len(posted) && sent[n] == posted[n] {
		n++
	}
	excerpt := func(b []byte) string {
		lo, hi := max(n-20, 0), min(n+20, len(b))
		return string(b[lo:hi])
	}
	what := fmt.Sprintf("not the bytes that were sent (%d bytes sent, %d posted): they differ from byte %d, sent …%s… posted …%s…", len(sent), len(posted), n, excerpt(sent), excerpt(posted))
	var a, b any
	if json.Unmarshal(sent, &a) == nil && json.Unmarshal(posted, &b) == nil {
		if path := firstDiff("", a, b); path != "" {
			what += "; the first member that differs is " + path
		} else {
			what += "; the same JSON written differently (spacing, key order, escapes or number form): the signature is over the bytes, so post the body as it came"
		}
	}
	return what
}

// firstDiff is the path of the first value that differs ("" when none).
func firstDiff(path string, a, b any) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return orRoot(path)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if d := firstDiff(path+"."+k, x[k], y[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return orRoot(path)
		}
		for i := range x {
			if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		return orRoot(path)
	}
	return ""
}

func orRoot(path string) string {
	if path == "" {
		return "the whole event"
	}
	return strings.TrimPrefix(path, ".")
}
