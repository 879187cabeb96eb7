package paypalrest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// The rest of PayPal's webhooks management API: event types, a webhook's
// patch, the events sent and their resend, and the simulator.

// MockWebhookID is what the webhooks simulator signs its mock events
// for: no subscription has it, so a listener configured for production
// cannot verify them.
const MockWebhookID = "WEBHOOK_ID"

func eventTypeList(types []EventType) []map[string]string {
	out := make([]map[string]string, 0, len(types))
	for _, t := range types {
		d := "every event type"
		if k, ok := lookupKind(t.Name); ok {
			d = k.Description
		}
		out = append(out, map[string]string{"name": t.Name, "description": d, "status": "ENABLED"})
	}
	return out
}

// eventTypes is GET /v1/notifications/webhooks-event-types: every type
// this provider sends.
func (p *Plugin) eventTypes(w http.ResponseWriter, _ *http.Request) {
	types := make([]EventType, len(kinds))
	for i, k := range kinds {
		types[i] = EventType{Name: k.Type}
	}
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"event_types": eventTypeList(types)})
}

// webhook finds a webhook by id, answering 404 when there is none.
func (p *Plugin) webhook(w http.ResponseWriter, id string) (Webhook, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.IndexFunc(p.webhooks, func(wh Webhook) bool { return wh.ID == id }); i >= 0 {
		return p.webhooks[i], true
	}
	apiFailure(w, http.StatusNotFound, "INVALID_RESOURCE_ID", "no webhook %q", id)
	return Webhook{}, false
}

func (p *Plugin) webhookEventTypes(w http.ResponseWriter, r *http.Request) {
	if wh, ok := p.webhook(w, r.PathValue("id")); ok {
		plugin.WriteJSON(w, http.StatusOK, map[string]any{"event_types": eventTypeList(wh.EventTypes)})
	}
}

// patchWebhook applies a JSON Patch of replace operations on /url and
// /event_types, as PayPal's PATCH takes.
func (p *Plugin) patchWebhook(w http.ResponseWriter, r *http.Request) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if !readBody(w, r, &ops) {
		return
	}
	wh, ok := p.webhook(w, r.PathValue("id"))
	if !ok {
		return
	}
	for i, op := range ops {
		var err error
		switch {
		case op.Op != "replace":
			err = fmt.Errorf("op %q: only replace is supported", op.Op)
		case op.Path == "/url":
			err = json.Unmarshal(op.Value, &wh.URL)
		case op.Path == "/event_types":
			err = json.Unmarshal(op.Value, &wh.EventTypes)
		default:
			err = fmt.Errorf("path %q: want /url or /event_types", op.Path)
		}
		if err != nil {
			apiFailure(w, http.StatusBadRequest, "INVALID_REQUEST", "patch[%d]: %v", i, err)
			return
		}
	}
	if err := p.replaceWebhook(wh); err != nil {
		apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "%v", err)
		return
	}
	plugin.WriteJSON(w, http.StatusOK, wh)
}

// replaceWebhook checks a changed webhook as a new one is checked, then
// keeps it.
func (p *Plugin) replaceWebhook(wh Webhook) error {
	if err := checkWebhook(wh.URL, wh.EventTypes); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.ContainsFunc(p.webhooks, func(o Webhook) bool { return o.URL == wh.URL && o.ID != wh.ID }) {
		return fmt.Errorf("WEBHOOK_URL_ALREADY_EXISTS: a webhook has the URL %s already", wh.URL)
	}
	if err := p.journalWebhook(wh, false); err != nil {
		return err
	}
	i := slices.IndexFunc(p.webhooks, func(o Webhook) bool { return o.ID == wh.ID })
	if i < 0 {
		return fmt.Errorf("no webhook %q", wh.ID)
	}
	p.webhooks[i] = wh
	return nil
}

// eventView is an event as the events API shows it: the event, its
// status and its transmissions.
func (p *Plugin) eventView(id string) (map[string]any, bool) {
	p.mu.Lock()
	msgs := append([]string(nil), p.events[id]...)
	p.mu.Unlock()
	if len(msgs) == 0 {
		return nil, false
	}
	body, ok := p.host.Engine.Body(msgs[0])
	var event map[string]any
	if !ok || json.Unmarshal(body, &event) != nil {
		return nil, false
	}
	status := "SUCCESS"
	var transmissions []map[string]any
	for _, m := range msgs {
		rec, ok := p.host.Engine.Get(m)
		if !ok {
			continue
		}
		t := map[string]any{"webhook_url": rec.URL, "status": "PENDING"}
		if rec.AckedAt != nil {
			t["status"] = "SUCCESS"
		} else {
			status = "PENDING"
		}
		if n := len(rec.Attempts); n > 0 {
			t["http_status"], t["timestamp"] = rec.Attempts[n-1].StatusCode, rec.Attempts[n-1].Start
		}
		transmissions = append(transmissions, t)
	}
	event["status"], event["transmissions"] = status, transmissions
	return event, true
}

func (p *Plugin) getEvent(w http.ResponseWriter, r *http.Request) {
	ev, ok := p.eventView(r.PathValue("id"))
	if !ok {
		apiFailure(w, http.StatusNotFound, "INVALID_RESOURCE_ID", "no event %q", r.PathValue("id"))
		return
	}
	plugin.WriteJSON(w, http.StatusOK, ev)
}

// listEvents is GET /v1/notifications/webhooks-events: newest first,
// page_size at most 300, event_type to filter.
func (p *Plugin) listEvents(w http.ResponseWriter, r *http.Request) {
	size, err := plugin.ParseInt("page_size", r.URL.Query().Get("page_size"), 10, 1, 300)
	if err != nil {
		apiFailure(w, http.StatusBadRequest, "INVALID_REQUEST", "%s", plugin.MessageOf(err))
		return
	}
	p.mu.Lock()
	ids := make([]string, 0, len(p.events))
	for id := range p.events {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	var events []map[string]any
	for _, id := range ids {
		if ev, ok := p.eventView(id); ok && (r.URL.Query().Get("event_type") == "" || ev["event_type"] == r.URL.Query().Get("event_type")) {
			events = append(events, ev)
		}
	}
	slices.SortFunc(events, func(a, b map[string]any) int {
		return strings.Compare(fmt.Sprint(b["create_time"]), fmt.Sprint(a["create_time"]))
	})
	if len(events) > size {
		events = events[:size]
	}
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"events": events, "count": len(events)})
}

// resendEvent is POST /v1/notifications/webhooks-events/{id}/resend:
// each of the event's deliveries again, or those to webhook_ids.
func (p *Plugin) resendEvent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		WebhookIDs []string `json:"webhook_ids"`
	}
	if r.ContentLength != 0 && !readBody(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	p.mu.Lock()
	var targets []string
	mock := false
	for _, m := range p.events[id] {
		s := p.messages[m]
		mock = mock || s.Mock
		if len(req.WebhookIDs) == 0 || slices.Contains(req.WebhookIDs, s.WebhookID) {
			targets = append(targets, m)
		}
	}
	p.mu.Unlock()
	switch {
	case mock:
		apiFailure(w, http.StatusBadRequest, "INVALID_REQUEST", "event %s is a mock event of the webhooks simulator: it cannot be resent", id)
		return
	case len(targets) == 0:
		apiFailure(w, http.StatusNotFound, "INVALID_RESOURCE_ID", "no delivery of event %q to those webhooks", id)
		return
	}
	for _, m := range targets {
		if _, err := p.host.Engine.Resend(m, ""); err != nil {
			apiFailure(w, http.StatusInternalServerError, "INTERNAL_SERVICE_ERROR", "resend %s: %v", m, err)
			return
		}
	}
	p.host.WaitIdle()
	ev, _ := p.eventView(id)
	plugin.WriteJSON(w, http.StatusAccepted, ev)
}

// noRetry is the simulator's schedule: one delivery, never retried.
type noRetry struct{}

func (noRetry) Next(int) (time.Duration, bool) { return 0, false }

// simulateEvent is POST /v1/notifications/simulate-event: one mock event
// of event_type to url, or to webhook_id's URL, signed for WEBHOOK_ID,
// sent once. PayPal's simulator cannot reach localhost; this one can.
func (p *Plugin) simulateEvent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		WebhookID       string `json:"webhook_id"`
		URL             string `json:"url"`
		EventType       string `json:"event_type"`
		ResourceVersion string `json:"resource_version"`
	}
	if !readBody(w, r, &req) {
		return
	}
	target := req.URL
	if req.WebhookID != "" {
		wh, ok := p.webhook(w, req.WebhookID)
		if !ok {
			return
		}
		target = wh.URL
	}
	if target == "" {
		apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "give url or webhook_id")
		return
	}
	ev, err := generateEvent(p.host.DrawSeed(), req.EventType, p.host.Clock.Now(), p.settings.Live, eventParams{})
	if err != nil {
		apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "%v", err)
		return
	}
	if _, err := p.submit(ev, Webhook{ID: MockWebhookID, URL: target}, true); err != nil {
		apiFailure(w, http.StatusBadRequest, "VALIDATION_ERROR", "%v", err)
		return
	}
	p.host.WaitIdle()
	var out map[string]any
	_ = json.Unmarshal(ev.Body, &out)
	plugin.WriteJSON(w, http.StatusAccepted, out)
}

// submit hands one delivery of ev to the engine: to wh, signed for its id
// (a mock: once, for WEBHOOK_ID). It returns the message id.
func (p *Plugin) submit(ev Event, wh Webhook, mock bool) (string, error) {
	s := &sent{Event: ev.ID, WebhookID: wh.ID, Mock: mock, Signed: ev.Signed, Foreign: ev.Foreign}
	raw, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	// A message per delivery: the event's id, then ~2, ~3... for its
	// other deliveries (another webhook, or the same seed sent again: the
	// same event, as PayPal's duplicates are).
	p.mu.Lock()
	id := ev.ID
	for n := 2; p.messages[id] != nil; n++ {
		id = ev.ID + "~" + strconv.Itoa(n)
	}
	p.messages[id] = s
	p.events[ev.ID] = append(p.events[ev.ID], id)
	p.mu.Unlock()
	sub := delivery.Submission{ID: id, Provider: Provider, Kind: ev.Type, TxnID: ev.Resource, URL: wh.URL, Body: ev.Body,
		Header: http.Header{"Content-Type": {"application/json"}, "User-Agent": {"PayPal/AUHD-214.0-58843530"}}, Schedule: Schedule, Ack: delivery.Any2xx}
	if mock {
		sub.Schedule = noRetry{}
	}
	if p.host.Journal != nil {
		sub.Records = []journal.Entry{{Kind: kindMessage, Key: id, Value: raw}}
	}
	if _, err := p.host.Engine.Submit(sub); err != nil {
		p.Forget([]string{id})
		return "", fmt.Errorf("deliver %s to webhook %s: %w", ev.ID, wh.ID, err)
	}
	return id, nil
}
