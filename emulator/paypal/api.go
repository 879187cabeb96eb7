package paypal

import (
	"fmt"
	"math"
	"net/http"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/generate"
)

// PayPal's control API: notifications, lifecycles, the IPN profile,
// verifier faults, postbacks and previews.

func (pl *Plugin) postNotification(w http.ResponseWriter, r *http.Request) error {
	var req api.SendRequest
	if err := plugin.ReadJSON(w, r, &req); err != nil {
		return err
	}
	view, err := pl.Send(req)
	if err != nil {
		return err
	}
	plugin.WriteJSON(w, http.StatusCreated, view)
	return nil
}

func (pl *Plugin) getProfile(w http.ResponseWriter, r *http.Request) error {
	plugin.WriteJSON(w, http.StatusOK, pl.svc.Profile())
	return nil
}

func (pl *Plugin) putProfile(w http.ResponseWriter, r *http.Request) error {
	var p Profile
	if err := plugin.ReadJSON(w, r, &p); err != nil {
		return err
	}
	if err := pl.svc.SetProfile(p); err != nil {
		return plugin.Refused(err)
	}
	pl.host.Publish(events.Profile, pl.host.Clock.Now(), Provider, "", p)
	pl.host.WaitIdle()
	plugin.WriteJSON(w, http.StatusOK, pl.svc.Profile())
	return nil
}

func (pl *Plugin) getFault(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id != "" {
		if _, ok := pl.svc.Message(id); !ok {
			return fmt.Errorf("message %s: %w", id, ErrNotFound)
		}
	}
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"fault": pl.svc.Fault(id)})
	return nil
}

func (pl *Plugin) putFault(w http.ResponseWriter, r *http.Request) error {
	var fr api.FaultRequest
	if err := plugin.ReadJSON(w, r, &fr); err != nil {
		return err
	}
	f, err := faultOf(fr)
	if err != nil {
		return plugin.BadRequest("%v", err)
	}
	id := r.PathValue("id")
	if err := pl.svc.SetFault(id, &f); err != nil {
		return err
	}
	plugin.WriteJSON(w, http.StatusOK, map[string]any{"fault": f})
	return nil
}

func (pl *Plugin) deleteFault(w http.ResponseWriter, r *http.Request) error {
	if err := pl.svc.SetFault(r.PathValue("id"), nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (pl *Plugin) postLifecycle(w http.ResponseWriter, r *http.Request) error {
	var req api.LifecycleRequest
	if err := plugin.ReadJSON(w, r, &req); err != nil {
		return err
	}
	plan, err := pl.SendLifecycle(req)
	if err != nil {
		return err
	}
	plugin.WriteJSON(w, http.StatusCreated, plan)
	return nil
}

// Preview generates the message a SendRequest would send, without
// sending it.
func (pl *Plugin) Preview(req api.SendRequest) (api.Preview, error) {
	if req.Raw != "" || req.RawBase64 != "" || len(req.Fields) > 0 {
		return api.Preview{}, plugin.BadRequest("a preview generates a message: raw bodies and whole field lists are already what they are")
	}
	msg, seed, err := pl.generate(req)
	if err != nil {
		return api.Preview{}, err
	}
	cs, err := msg.Charset()
	if err != nil {
		return api.Preview{}, plugin.BadRequest("%v", err)
	}
	p := api.Preview{Provider: "paypal", Kind: msg.Kind, Seed: api.Seed(seed), Charset: cs.Label(), Fields: make([]api.TextField, len(msg.Fields))}
	for i, fd := range msg.Fields {
		p.Fields[i] = api.TextField(fd)
	}
	return p, nil
}

// wholeMessage encodes a field list as generated messages are encoded: in
// the charset its charset field names (windows-1252 when it names none).
func wholeMessage(kind string, fields []api.TextField) ([]byte, error) {
	text := make(form.Form, len(fields))
	for i, fd := range fields {
		if fd.Name == "" {
			return nil, plugin.BadRequest("fields[%d]: a field name is empty", i)
		}
		text[i] = form.Field(fd)
	}
	body, err := generate.Message{Kind: kind, Fields: text}.Body()
	if err != nil {
		return nil, plugin.BadRequest("fields: %v", err)
	}
	return body, nil
}

func (pl *Plugin) previewPayPal(w http.ResponseWriter, r *http.Request) error {
	q, err := plugin.Query(r, "charset", "flavour", "seed")
	if err != nil {
		return err
	}
	seed, err := plugin.ParseSeed(q.Get("seed"))
	if err != nil {
		return err
	}
	p, err := pl.Preview(api.SendRequest{Kind: r.PathValue("kind"), Charset: q.Get("charset"), Flavour: q.Get("flavour"), Seed: api.Seed(seed)})
	if err != nil {
		return err
	}
	plugin.WriteJSON(w, http.StatusOK, p)
	return nil
}

// listPostbacks pages through the postbacks, oldest first: ?limit= (100 by
// default, at most 1000) and ?after= the "next" of the previous page.
func (pl *Plugin) listPostbacks(w http.ResponseWriter, r *http.Request) error {
	q, err := plugin.Query(r, "message_id", "unknown", "limit", "after")
	if err != nil {
		return err
	}
	id := q.Get("message_id")
	unknown := false
	switch q.Get("unknown") {
	case "", "false":
	case "true":
		unknown = true
	default:
		return plugin.BadRequest("unknown %q: want true or false", q.Get("unknown"))
	}
	if unknown && id != "" {
		return plugin.BadRequest("give message_id or unknown=true, not both: a postback of a message is not unknown")
	}
	if id != "" {
		if _, ok := pl.svc.Message(id); !ok {
			return fmt.Errorf("message %s: %w", id, ErrNotFound)
		}
	}
	limit, err := plugin.ParseInt("limit", q.Get("limit"), 100, 1, 1000)
	if err != nil {
		return err
	}
	after, err := plugin.ParseInt("after", q.Get("after"), 0, 0, math.MaxInt32)
	if err != nil {
		return err
	}
	page, next := pl.svc.PostbacksPage(id, unknown, after, limit)
	out := map[string]any{"postbacks": page}
	if next > 0 {
		out["next"] = next
	}
	plugin.WriteJSON(w, http.StatusOK, out)
	return nil
}
