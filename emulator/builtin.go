package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/generate"
)

// The built-in providers. Their services are built by New from Config
// (PayPal's profile and verify mode, PayDo's source address and schedule),
// so Start has nothing left to do; everything else goes through the same
// Provider seam as a plug-in's.

// apiRoute is a control API route served by h.
func apiRoute(method, pattern string, h func(http.ResponseWriter, *http.Request) error) Route {
	return Route{Method: method, Pattern: pattern, Handler: APIHandler(h)}
}

type paypalProvider struct{ e *Emulator }

func (paypalProvider) Name() string  { return paypal.Provider }
func (paypalProvider) Title() string { return "PayPal" }

func (p paypalProvider) Routes() []Route {
	e := p.e
	return []Route{
		// The verifier takes every method so that a wrong one is recorded.
		{Pattern: "/cgi-bin/webscr", Handler: e.paypal, Public: true},
		apiRoute("POST", "/api/v1/paypal/notifications", e.postNotification),
		apiRoute("POST", "/api/v1/paypal/lifecycles", e.postLifecycle),
		apiRoute("GET", "/api/v1/paypal/profile", e.getProfile),
		apiRoute("PUT", "/api/v1/paypal/profile", e.putProfile),
		apiRoute("GET", "/api/v1/paypal/fault", e.getFault),
		apiRoute("PUT", "/api/v1/paypal/fault", e.putFault),
		apiRoute("DELETE", "/api/v1/paypal/fault", e.deleteFault),
		apiRoute("GET", "/api/v1/messages/{id}/fault", e.getFault),
		apiRoute("PUT", "/api/v1/messages/{id}/fault", e.putFault),
		apiRoute("DELETE", "/api/v1/messages/{id}/fault", e.deleteFault),
		apiRoute("GET", "/api/v1/postbacks", e.listPostbacks),
		apiRoute("GET", "/api/v1/fixtures/paypal/{kind}", e.previewPayPal),
	}
}

func (paypalProvider) OpenAPI() []byte { return openapiPayPal }

// DefaultEndpoint: the profile's notify_url.
func (p paypalProvider) DefaultEndpoint() string { return p.e.paypal.Profile().NotifyURL }

func (p paypalProvider) Restore() (RestoredCounts, error) {
	n, postbacks, err := p.e.paypal.Restore()
	return nonZero(RestoredCounts{"messages": n, "postbacks": postbacks}), err
}

func (paypalProvider) ClientFor(string) (*http.Client, error) { return nil, nil }

func (p paypalProvider) Describe(id string, v *MessageView) {
	m, ok := p.e.paypal.Message(id)
	if !ok {
		return
	}
	v.Charset, v.Sandbox, v.Body, v.Seed = m.Charset.Label(), m.Sandbox, string(m.Body), api.Seed(m.Seed)
	for _, fd := range m.Fields {
		v.Fields = append(v.Fields, FieldView{Name: m.Charset.Decode(fd.Name), Value: m.Charset.Decode(fd.Value), Raw: form.Escape(fd.Value)})
	}
	v.Postbacks = paypal.Wire(p.e.paypal.Postbacks(id))
}

// Resend: PayPal's carry resend=true, to the URL asked, the first one, or
// the profile's.
func (p paypalProvider) Resend(id string, req ResendRequest) error {
	_, err := p.e.paypal.Resend(id, req.URL, req.UseProfileURL)
	return err
}

func (p paypalProvider) Forget(ids []string) { p.e.paypal.Forget(ids) }

// paypalPlan is what PayPal plans a later send with (a lifecycle's later
// steps): the exact bytes. Its JSON names are those the journal kept at
// the top level of a planned send before providers planned their own.
type paypalPlan struct {
	Body      []byte `json:"body"`
	Kind      string `json:"kind,omitempty"`
	NotifyURL string `json:"notify_url,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
}

// SendScheduled sends a planned lifecycle step.
func (p paypalProvider) SendScheduled(payload json.RawMessage) error {
	var plan paypalPlan
	if err := json.Unmarshal(payload, &plan); err != nil {
		return fmt.Errorf("planned PayPal send: %w", err)
	}
	_, err := p.e.send(paypal.Notification{Body: plan.Body, Kind: plan.Kind, NotifyURL: plan.NotifyURL}, plan.Seed)
	return err
}

// Confirmations: a PayPal listener posts every message back.
func (p paypalProvider) Confirmations(id string) int { return len(p.e.paypal.Postbacks(id)) }

// Notify: a generated message of a fixtures kind, n.Set giving fields
// their text (sorted by name: a new field is appended in that order).
func (p paypalProvider) Notify(n Notify) ([]MessageView, error) {
	req := SendRequest{Kind: n.Kind, NotifyURL: n.NotifyURL, Seed: api.Seed(n.Seed), Copies: n.Copies}
	for _, name := range slices.Sorted(maps.Keys(n.Set)) {
		text, ok := n.Set[name].(string)
		if !ok {
			return nil, badRequest("set.%s: PayPal's fields are text, not %T", name, n.Set[name])
		}
		req.Set = append(req.Set, struct{ Name, Value string }{name, text})
	}
	v, err := p.e.SendPayPal(req)
	if err != nil {
		return nil, err
	}
	views := []MessageView{v}
	for _, id := range v.Copies {
		if c, ok := p.e.View(id); ok && id != v.ID {
			views = append(views, c)
		}
	}
	return views, nil
}

func (paypalProvider) Kinds() []ProviderKind { return providerKinds(generate.Kinds()) }

// providerKinds lists fixtures kinds as a provider's.
func providerKinds(ks []generate.Kind) []ProviderKind {
	out := make([]ProviderKind, len(ks))
	for i, k := range ks {
		out[i] = ProviderKind{Name: k.Name, Description: k.Description}
	}
	return out
}

func (p paypalProvider) Responsive(d time.Duration) bool { return p.e.paypal.Responsive(d) }

// nonZero is c without its zero counts, nil when nothing is left.
func nonZero(c RestoredCounts) RestoredCounts {
	maps.DeleteFunc(c, func(_ string, n int) bool { return n == 0 })
	if len(c) == 0 {
		return nil
	}
	return c
}
