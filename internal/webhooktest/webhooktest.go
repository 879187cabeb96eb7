// Package webhooktest is a plug-in provider for specs outside the
// emulator's own: a JSON webhook, one POST per message, retried every
// minute three times, with no postback. It uses only the emulator's
// exported API, as a third provider's package would, so that the
// console, the scenarios and the conformance suite are shown to take a
// provider they have never heard of.
package webhooktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// Provider is the webhook provider; its Name is what New was given.
type Provider struct {
	name string
	host emulator.Host
	mu   sync.Mutex
	seq  int
	kind map[string]string // message id -> event kind
}

// New returns the factory that registers a webhook provider named name
// (emulator.Config.Providers), and the provider it makes.
func New(name string) (emulator.Factory, *Provider) {
	p := &Provider{name: name, kind: map[string]string{}}
	return func(h emulator.Host) (emulator.Provider, error) {
		p.host = h
		return p, nil
	}, p
}

// Name implements emulator.Provider.
func (p *Provider) Name() string { return p.name }

// Routes: it is sent from Go and from scenarios only.
func (p *Provider) Routes() []emulator.Route { return nil }

// Restore: it journals nothing of its own.
func (p *Provider) Restore() (emulator.RestoredCounts, error) { return nil, nil }

// ClientFor: the emulator's client.
func (p *Provider) ClientFor(string) (*http.Client, error) { return nil, nil }

// Describe shows the body and the event kind, as a fact of its own.
func (p *Provider) Describe(id string, v *emulator.MessageView) {
	body, _ := p.host.Engine.Body(id)
	p.mu.Lock()
	kind := p.kind[id]
	p.mu.Unlock()
	v.Body, v.Charset = string(body), "UTF-8"
	v.Details = append(v.Details, emulator.Detail{Label: "Event", Value: kind})
}

// Resend sends the same bytes again.
func (p *Provider) Resend(id string, r emulator.ResendRequest) error {
	_, err := p.host.Engine.Resend(id, r.URL)
	return err
}

// Forget implements emulator.Provider.
func (p *Provider) Forget(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		delete(p.kind, id)
	}
}

// Notify sends one webhook of kind n.Kind with n.Set as its data
// (emulator.Sender: the scenarios' send step).
func (p *Provider) Notify(n emulator.Notify) ([]emulator.MessageView, error) {
	if n.Kind == "" {
		return nil, emulator.BadRequest("kind is required")
	}
	p.mu.Lock()
	p.seq++
	id := fmt.Sprintf("WH%04d", p.seq)
	p.kind[id] = n.Kind
	p.mu.Unlock()
	body, err := json.Marshal(map[string]any{"id": id, "type": n.Kind, "data": n.Set})
	if err != nil {
		return nil, err
	}
	if _, err := p.host.Engine.Submit(delivery.Submission{ID: id, Provider: p.name, Kind: n.Kind, URL: n.NotifyURL, Body: body,
		Header:   http.Header{"Content-Type": {"application/json"}},
		Schedule: delivery.Backoff{Initial: time.Minute, Factor: 1, Max: time.Minute, MaxRetries: 3}}); err != nil {
		return nil, emulator.BadRequest("%s %s: %v", p.name, id, err)
	}
	v, _ := p.host.View(id)
	return []emulator.MessageView{v}, nil
}
