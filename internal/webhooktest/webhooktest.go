// Package webhooktest is a plug-in provider for specs outside the
// emulator's own: a JSON webhook, one POST per message, retried every
// minute three times, with no postback. It uses only the emulator's
// exported API, as a third provider's package would, so that the
// console, the scenarios, the conformance suite, the sandbox and the
// replicas are shown to take a provider they have never heard of.
package webhooktest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// Kit registers the webhook provider (Factory) and keeps every provider
// it made, one per emulator, in order.
type Kit struct {
	name string
	mu   sync.Mutex
	made []*Provider
}

// New returns a kit for a webhook provider named name.
func New(name string) *Kit { return &Kit{name: name} }

// Factory makes a fresh provider for each emulator it is given to
// (emulator.Config.Providers): every sandbox account and every replica
// that becomes the leader gets its own.
func (k *Kit) Factory(h emulator.Host) (emulator.Provider, error) {
	p := &Provider{name: k.name, host: h}
	k.mu.Lock()
	k.made = append(k.made, p)
	k.mu.Unlock()
	return p, nil
}

// Made lists the providers made so far, oldest first.
func (k *Kit) Made() []*Provider {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*Provider(nil), k.made...)
}

// Latest is the provider made last (nil before any): in a spec with one
// emulator, that emulator's.
func (k *Kit) Latest() *Provider {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.made) == 0 {
		return nil
	}
	return k.made[len(k.made)-1]
}

// Provider is the webhook provider of one emulator; its Name is what New
// was given.
type Provider struct {
	name string
	host emulator.Host
}

// Name implements emulator.Provider.
func (p *Provider) Name() string { return p.name }

// Routes: POST /api/v1/NAME/notifications takes a Notify as JSON
// (kind, set, notify_url, copies) and answers the messages' views.
func (p *Provider) Routes() []emulator.Route {
	return []emulator.Route{{Method: "POST", Pattern: "/api/v1/" + p.name + "/notifications", Handler: emulator.APIHandler(p.postNotification)}}
}

func (p *Provider) postNotification(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Kind      string         `json:"kind"`
		Set       map[string]any `json:"set"`
		NotifyURL string         `json:"notify_url"`
		Copies    int            `json:"copies"`
	}
	if err := emulator.ReadJSON(w, r, &req); err != nil {
		return err
	}
	views, err := p.Notify(emulator.Notify{Kind: req.Kind, Set: req.Set, NotifyURL: req.NotifyURL, Copies: req.Copies})
	if err != nil {
		return err
	}
	emulator.WriteJSON(w, http.StatusCreated, map[string]any{"messages": views})
	return nil
}

// Restore: it journals nothing of its own; the engine keeps its messages,
// their kind with them.
func (p *Provider) Restore() (emulator.RestoredCounts, error) { return nil, nil }

// ClientFor: the emulator's client.
func (p *Provider) ClientFor(string) (*http.Client, error) { return nil, nil }

// Describe shows the body and the event kind, as a fact of its own. Both
// come from the delivery record, so a message restored by another
// instance (after a restart or a failover) is shown the same.
func (p *Provider) Describe(id string, v *emulator.MessageView) {
	m, ok := p.host.Engine.Get(id)
	if !ok {
		return
	}
	body, _ := p.host.Engine.Body(id)
	v.Body, v.Charset = string(body), "UTF-8"
	v.Details = append(v.Details, emulator.Detail{Label: "Event", Value: m.Kind})
}

// Resend sends the same bytes again.
func (p *Provider) Resend(id string, r emulator.ResendRequest) error {
	_, err := p.host.Engine.Resend(id, r.URL)
	return err
}

// Forget: nothing is kept beside the engine's record.
func (p *Provider) Forget([]string) {}

// Notify sends n.Copies (at least one) webhooks of kind n.Kind with n.Set
// as their data (emulator.Sender: the scenarios' send step).
func (p *Provider) Notify(n emulator.Notify) ([]emulator.MessageView, error) {
	if n.Kind == "" {
		return nil, emulator.BadRequest("kind is required")
	}
	if n.Copies < 0 || n.Copies > 100 {
		return nil, emulator.BadRequest("copies %d: want 1 to 100", n.Copies)
	}
	// A random id: a provider made after a restart or a failover knows
	// nothing of the ids its predecessor gave, and a counter would start
	// again at one.
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	event := "WH" + hex.EncodeToString(raw[:])
	body, err := json.Marshal(map[string]any{"id": event, "type": n.Kind, "data": n.Set})
	if err != nil {
		return nil, emulator.BadRequest("set: %v", err)
	}
	var views []emulator.MessageView
	for i := range max(n.Copies, 1) {
		id := event
		if i > 0 {
			id = fmt.Sprintf("%s-%d", event, i+1)
		}
		if _, err := p.host.Engine.Submit(delivery.Submission{ID: id, Provider: p.name, Kind: n.Kind, URL: n.NotifyURL, Body: body,
			Header:   http.Header{"Content-Type": {"application/json"}},
			Schedule: delivery.Backoff{Initial: time.Minute, Factor: 1, Max: time.Minute, MaxRetries: 3}}); err != nil {
			return nil, emulator.BadRequest("%s %s: %v", p.name, id, err)
		}
		v, _ := p.host.View(id)
		views = append(views, v)
	}
	return views, nil
}

// Inbox is a listener that acknowledges every request with 200 and keeps
// the bodies, in order. Close it when done.
type Inbox struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

// NewInbox starts an inbox on loopback.
func NewInbox() *Inbox {
	in := &Inbox{}
	in.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		in.mu.Lock()
		in.bodies = append(in.bodies, string(body))
		in.mu.Unlock()
	}))
	return in
}

// Bodies are the bodies received so far.
func (in *Inbox) Bodies() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.bodies...)
}
