// Package paypalrest is a fake PayPal that sends REST webhooks, the
// notifications integrations on PayPal's REST APIs receive instead of IPN:
// JSON events, signed on every delivery attempt (SHA256withRSA over
// transmission id, time, webhook id and the CRC32 of the raw body), sent to
// each webhook subscription whose event types match, retried until a 2xx,
// and checked by PayPal's verify API, which says why a signature fails.
//
// It is a provider of the emulator like any plug-in (package plugin):
// Factory makes it for one emulator. What no source states (the retry
// intervals, the certificate's host and name) is ipnlab's choice, labelled
// where it is made.
package paypalrest

import (
	"cmp"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// Provider is the name its messages carry.
const Provider = "paypalrest"

// MaxWebhooks is how many webhook URLs an app may have (PayPal's limit).
const MaxWebhooks = 10

// Schedule is how an unacknowledged event is retried: PayPal says "up to
// 25 times over 3 days" and publishes no intervals; these are ipnlab's
// (2 min, growing by half, at most 5 h apart: 25 attempts in 68 h).
var Schedule = delivery.Backoff{Initial: 2 * time.Minute, Factor: 1.5, Max: 5 * time.Hour, MaxRetries: 24, Window: 72 * time.Hour}

// Settings configure the fake REST PayPal.
type Settings struct {
	// ClientID and Secret are the app's credentials for the OAuth token
	// (default DefaultClientID and DefaultSecret).
	ClientID, Secret string
	// Live sends events as the live API's (api.paypal.com links); the
	// default is the sandbox's.
	Live bool
	// CA, if set, issues the signing certificates (ipnlab's local CA, the
	// one --intercept uses): a verifier that trusts it checks the chain.
	// Without it they are self-signed.
	CA *intercept.CA
	// WebhookIDs, by URL, are the ids webhooks get when they are made for
	// that URL: a listener configured with its webhook id (a conformance
	// run's) is subscribed under it. Other webhooks get a drawn id.
	WebhookIDs map[string]string
}

// The default app's credentials: ipnlab's own values, for listeners to
// configure.
const (
	DefaultClientID = "ipnlab-client-id"
	DefaultSecret   = "ipnlab-client-secret"
)

// Journal record kinds.
const (
	kindSigner  = "paypalrest.signer"
	kindWebhook = "paypalrest.webhook"
	kindMessage = "paypalrest.message"
	kindApp     = "paypalrest.app"
)

// Webhook is a subscription: where events of its types go, signed for its
// id.
type Webhook struct {
	ID         string      `json:"id"`
	URL        string      `json:"url"`
	EventTypes []EventType `json:"event_types"`
}

// EventType is one event type a webhook takes ("*": all).
type EventType struct {
	Name string `json:"name"`
}

// takes reports whether w subscribes to eventType.
func (w Webhook) takes(eventType string) bool {
	return slices.ContainsFunc(w.EventTypes, func(t EventType) bool { return t.Name == "*" || t.Name == eventType })
}

// sent is what a delivered message is: its event, and the subscription it
// went to (whose id its signatures are over).
type sent struct {
	Event     string `json:"event"`
	WebhookID string `json:"webhook_id"`
	// Mock marks an event of the webhooks simulator: signed for the
	// literal WEBHOOK_ID, sent once, never resent, never verified by the
	// API.
	Mock bool `json:"mock,omitempty"`
	// Signed, if set, is what the signatures are over instead of the
	// body delivered: a forgery.
	Signed []byte `json:"signed,omitempty"`
	// Foreign marks a forgery signed by the attacker's key.
	Foreign bool `json:"foreign,omitempty"`
	// Transmissions are the signed attempts, oldest first (in memory only:
	// a restarted emulator signs its next attempts anew), and verifies the
	// verify API's answers about them.
	transmissions []transmission
	verifies      []string
}

// transmission is one signed attempt, as its headers said.
type transmission struct {
	ID, Time, Sig, CertURL string
}

// Plugin is the fake REST PayPal plugged into one emulator.
type Plugin struct {
	host     plugin.Host
	settings Settings
	// app is the app's credentials: the settings', or in a sandbox
	// account, the account's own (see Credentials).
	app Credentials
	// verifications counts the verify API's answers, by status.
	verifications *prometheus.CounterVec

	mu       sync.Mutex
	signers  []*signer // the current one last
	webhooks []Webhook
	messages map[string]*sent // by delivery message id
	events   map[string][]string
	tokens   map[string]time.Time // OAuth tokens and when they expire
	// attacker is the key forgeries are signed with, its certificate
	// served by attackerSrv (made on first use, in memory only).
	attacker    *signer
	attackerSrv *http.Server
}

// Factory makes the fake REST PayPal for one emulator.
func Factory(s Settings) plugin.Factory {
	if s.ClientID == "" {
		s.ClientID, s.Secret = DefaultClientID, DefaultSecret
	}
	return func(h plugin.Host) (plugin.Provider, error) {
		p := &Plugin{host: h, settings: s, messages: map[string]*sent{}, events: map[string][]string{}, tokens: map[string]time.Time{},
			app: Credentials{ClientID: s.ClientID, Secret: s.Secret}}
		if h.Account != "" && s.ClientID == DefaultClientID {
			// A sandbox routes an app's OAuth calls by its client id:
			// each account's app is its own, its secret drawn (and
			// journaled by Restore).
			p.app = Credentials{ClientID: "ipnlab-" + h.Account, Secret: randomHex(16)}
		}
		p.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ipnlab_paypalrest_verifications_total", Help: "Calls to PayPal REST's verify API, by the status answered (SUCCESS, FAILURE).",
		}, []string{"status"})
		if h.Metrics != nil {
			if err := h.Metrics.Register(p.verifications); err != nil {
				return nil, fmt.Errorf("%s metrics: %w", Provider, err)
			}
		}
		return p, nil
	}
}

//go:embed openapi.yaml
var openapi []byte

// OpenAPI is its part of the control API's document (emulator.Documented).
func (*Plugin) OpenAPI() []byte { return openapi }

// HTTPSHosts are PayPal's REST API hosts, live and sandbox: through the
// intercepting proxy an integration's calls (OAuth, verify, the
// certificate at PAYPAL-CERT-URL, the webhooks API) reach this provider
// unchanged (emulator.Intercepted).
func (*Plugin) HTTPSHosts() []string { return intercept.APIHosts }

// Name implements plugin.Provider.
func (*Plugin) Name() string { return Provider }

// Title is how the console names it.
func (*Plugin) Title() string { return "PayPal REST webhooks" }

// Kinds are the event types it sends (plugin.Cataloged).
func (*Plugin) Kinds() []api.ProviderKind {
	out := make([]api.ProviderKind, len(kinds))
	for i, k := range kinds {
		out[i] = api.ProviderKind{Name: k.Type, Description: k.Description}
	}
	return out
}

// Routes: PayPal's own paths for what integrations call (public: they
// carry an OAuth token, not the emulator's API token), and the control
// API's send.
func (p *Plugin) Routes() []plugin.Route {
	return []plugin.Route{
		{Method: "POST", Pattern: "/v1/oauth2/token", Handler: http.HandlerFunc(p.token), Public: true},
		{Method: "POST", Pattern: "/v1/notifications/verify-webhook-signature", Handler: p.authorized(p.verifySignature), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/certs/{name}", Handler: http.HandlerFunc(p.cert), Public: true},
		{Method: "POST", Pattern: "/v1/notifications/webhooks", Handler: p.authorized(p.createWebhook), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/webhooks", Handler: p.authorized(p.listWebhooks), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/webhooks/{id}", Handler: p.authorized(p.getWebhook), Public: true},
		{Method: "DELETE", Pattern: "/v1/notifications/webhooks/{id}", Handler: p.authorized(p.deleteWebhook), Public: true},
		{Method: "PATCH", Pattern: "/v1/notifications/webhooks/{id}", Handler: p.authorized(p.patchWebhook), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/webhooks/{id}/event-types", Handler: p.authorized(p.webhookEventTypes), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/webhooks-event-types", Handler: p.authorized(p.eventTypes), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/webhooks-events", Handler: p.authorized(p.listEvents), Public: true},
		{Method: "GET", Pattern: "/v1/notifications/webhooks-events/{id}", Handler: p.authorized(p.getEvent), Public: true},
		{Method: "POST", Pattern: "/v1/notifications/webhooks-events/{id}/resend", Handler: p.authorized(p.resendEvent), Public: true},
		{Method: "POST", Pattern: "/v1/notifications/simulate-event", Handler: p.authorized(p.simulateEvent), Public: true},
		plugin.APIRoute("POST", "/api/v1/paypalrest/events", plugin.Sending(p.Send)),
		plugin.APIRoute("POST", "/api/v1/paypalrest/rotate", p.postRotate),
		plugin.APIRoute("GET", "/api/v1/paypalrest/credentials", func(w http.ResponseWriter, _ *http.Request) error {
			plugin.WriteJSON(w, http.StatusOK, p.app)
			return nil
		}),
	}
}

// Restore loads the signers, webhooks and which subscription each
// message went to.
func (p *Plugin) Restore() (plugin.RestoredCounts, error) {
	j := p.host.Journal
	if j == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	app := false
	err := errors.Join(
		j.Scan(kindApp, func(_ string, v []byte) error {
			app = true
			return json.Unmarshal(v, &p.app)
		}),
		j.Scan(kindSigner, func(_ string, v []byte) error {
			s, err := loadSigner(v)
			if err == nil {
				p.signers = append(p.signers, s)
			}
			return err
		}),
		j.Scan(kindWebhook, func(_ string, v []byte) error {
			var w Webhook
			err := json.Unmarshal(v, &w)
			p.webhooks = append(p.webhooks, w)
			return err
		}),
		j.Scan(kindMessage, func(id string, v []byte) error {
			var s sent
			err := json.Unmarshal(v, &s)
			p.messages[id] = &s
			p.events[s.Event] = append(p.events[s.Event], id)
			return err
		}),
	)
	if err == nil && !app && p.host.Account != "" {
		// The account's app, kept from its first start on.
		var raw []byte
		if raw, err = json.Marshal(p.app); err == nil {
			err = j.Write(journal.Entry{Kind: kindApp, Key: "credentials", Value: raw})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", Provider, err)
	}
	// Journal keys are scanned in key order: the current signer is the
	// one journaled last, its key the latest sequence.
	return plugin.NonZero(plugin.RestoredCounts{"messages": len(p.messages), "webhooks": len(p.webhooks), "signers": len(p.signers)}), nil
}

// Credentials are an app's, for its OAuth token.
type Credentials struct {
	ClientID string `json:"client_id"`
	Secret   string `json:"secret"`
}

// Credentials are the app's: Settings' (ipnlab's defaults), or in a
// sandbox account the account's own, drawn at its first start
// (GET /api/v1/paypalrest/credentials, with the account's API token).
func (p *Plugin) Credentials() Credentials { return p.app }

// Claims reports whether r, a call of PayPal's API with no account's API
// token, is this app's (plugin.Claimer): a token request with its client
// id, a call with one of its OAuth tokens, a fetch of one of its
// certificates.
func (p *Plugin) Claims(r *http.Request) bool {
	if name, ok := strings.CutPrefix(r.URL.Path, "/v1/notifications/certs/"); ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.ContainsFunc(p.signers, func(s *signer) bool { return s.Name == name })
	}
	if id, _, ok := r.BasicAuth(); ok {
		return r.URL.Path == "/v1/oauth2/token" && id == p.app.ClientID
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !strings.HasPrefix(r.URL.Path, "/v1/") {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, known := p.tokens[tok]
	return known
}

// ClientFor: the emulator's client.
func (*Plugin) ClientFor(string) (*http.Client, error) { return nil, nil }

// Describe: the body as sent, the event type, the subscription, and the
// last attempt's signature headers.
func (p *Plugin) Describe(id string, v *api.MessageView) {
	body, _ := p.host.Engine.Body(id)
	v.Body, v.Charset = string(body), "UTF-8"
	v.Fields = eventFields(body)
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.messages[id]
	if !ok {
		return
	}
	v.Details = append(v.Details, api.Detail{Label: "Event", Value: s.Event}, api.Detail{Label: "Webhook ID", Value: s.WebhookID})
	if n := len(s.transmissions); n > 0 {
		t := s.transmissions[n-1]
		v.Details = append(v.Details, api.Detail{Label: "Transmission", Value: t.ID + " at " + t.Time}, api.Detail{Label: "Cert URL", Value: t.CertURL},
			api.Detail{Label: "Signed", Value: fmt.Sprintf("%s over id|time|%s|crc32 of the body, %d attempt(s) each signed anew", AuthAlgo, s.WebhookID, n)})
	}
	for _, answer := range s.verifies {
		v.Details = append(v.Details, api.Detail{Label: "Verify API", Value: answer})
	}
}

// eventFields are what a scenario may refer to in an event it sent
// (${NAME.FIELD}): event_id, event_type, resource_id, status, custom_id,
// amount, currency, and parent: the capture a refund refunds or a
// dispute disputes, the sale a sale's refund refunds.
func eventFields(body []byte) []api.FieldView {
	var e struct {
		ID        string `json:"id"`
		EventType string `json:"event_type"`
		Resource  struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			CustomID string `json:"custom_id"`
			Amount   struct {
				Currency string `json:"currency_code"`
				Value    string `json:"value"`
			} `json:"amount"`
			Links []struct {
				Href string `json:"href"`
				Rel  string `json:"rel"`
			} `json:"links"`
			SaleID    string `json:"sale_id"`
			DisputeID string `json:"dispute_id"`
			Disputed  []struct {
				Capture string `json:"seller_transaction_id"`
			} `json:"disputed_transactions"`
		} `json:"resource"`
	}
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	var out []api.FieldView
	add := func(name, value string) {
		if value != "" {
			out = append(out, api.FieldView{Name: name, Value: value, Raw: value})
		}
	}
	add("event_id", e.ID)
	add("event_type", e.EventType)
	add("resource_id", cmp.Or(e.Resource.ID, e.Resource.DisputeID))
	add("status", e.Resource.Status)
	add("custom_id", e.Resource.CustomID)
	add("amount", e.Resource.Amount.Value)
	add("currency", e.Resource.Amount.Currency)
	for _, l := range e.Resource.Links {
		if l.Rel == "up" && strings.Contains(l.Href, "/captures/") {
			add("parent", l.Href[strings.LastIndex(l.Href, "/")+1:])
		}
	}
	add("parent", e.Resource.SaleID)
	if len(e.Resource.Disputed) > 0 {
		add("parent", e.Resource.Disputed[0].Capture)
	}
	return out
}

// Resend sends the same bytes again, signed anew; a simulator's mock
// event cannot be resent, as PayPal's cannot.
func (p *Plugin) Resend(id string, r api.ResendRequest) error {
	if r.UseProfileURL {
		return plugin.BadRequest("use_profile_url is IPN's: a webhook goes to its subscription's URL")
	}
	p.mu.Lock()
	s, ok := p.messages[id]
	p.mu.Unlock()
	if ok && s.Mock {
		return plugin.BadRequest("message %s is a mock event of the webhooks simulator: PayPal cannot resend those", id)
	}
	_, err := p.host.Engine.Resend(id, r.URL)
	return err
}

// Forget drops what it keeps of evicted messages.
func (p *Plugin) Forget(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gone []journal.Entry
	for _, id := range ids {
		if s, ok := p.messages[id]; ok {
			p.events[s.Event] = slices.DeleteFunc(p.events[s.Event], func(m string) bool { return m == id })
			if len(p.events[s.Event]) == 0 {
				delete(p.events, s.Event)
			}
			delete(p.messages, id)
			gone = append(gone, journal.Entry{Kind: kindMessage, Key: id, Delete: true})
		}
	}
	if p.host.Journal != nil && len(gone) > 0 {
		p.host.Report(p.host.Journal.Write(gone...))
	}
}

// Stamp signs each attempt as it leaves (plugin's Stamper): a fresh
// transmission id and time, so a listener that bounds the signature's age
// takes a retry sent hours later.
func (p *Plugin) Stamp(m delivery.Message, a delivery.Attempt, header http.Header, body []byte) (http.Header, []byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.messages[m.ID]
	if !ok {
		return nil, nil, fmt.Errorf("message %s: no subscription is known for it", m.ID)
	}
	sg, err := p.currentLocked()
	if s.Foreign {
		sg, err = p.attackerLocked()
	}
	if err != nil {
		return nil, nil, err
	}
	t := transmission{ID: uuid(), Time: a.Start.UTC().Format(time.RFC3339), CertURL: sg.CertURL()}
	signed := body
	if s.Signed != nil {
		signed = s.Signed
	}
	if t.Sig, err = sg.sign(SignedString(t.ID, t.Time, s.WebhookID, signed)); err != nil {
		return nil, nil, err
	}
	s.transmissions = append(s.transmissions, t)
	out := header.Clone()
	out.Set("Paypal-Transmission-Id", t.ID)
	out.Set("Paypal-Transmission-Time", t.Time)
	out.Set("Paypal-Transmission-Sig", t.Sig)
	out.Set("Paypal-Cert-Url", t.CertURL)
	out.Set("Paypal-Auth-Algo", AuthAlgo)
	out.Set("Paypal-Auth-Version", AuthVersion)
	out.Set("Correlation-Id", randomHex(7)[:13])
	return out, body, nil
}

// currentLocked is the signer events are signed with now, made on first
// use (a key costs a moment) and journaled.
func (p *Plugin) currentLocked() (*signer, error) {
	if n := len(p.signers); n > 0 {
		return p.signers[n-1], nil
	}
	return p.rotateLocked()
}

func (p *Plugin) rotateLocked() (*signer, error) {
	key, err := p.freshKeyLocked()
	if err != nil {
		return nil, err
	}
	s, err := newSigner(time.Now(), p.settings.CA, key)
	if err != nil {
		return nil, err
	}
	if p.host.Journal != nil {
		raw, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		// Keys in order: the restored list ends with the current one.
		key := fmt.Sprintf("%020d", time.Now().UnixNano())
		if err := p.host.Journal.Write(journal.Entry{Kind: kindSigner, Key: key, Value: raw}); err != nil {
			return nil, fmt.Errorf("journal the signing key: %w", err)
		}
	}
	p.signers = append(p.signers, s)
	return s, nil
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
