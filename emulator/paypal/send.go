package paypal

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/internal/suggest"
)

// Sending: messages generated or given whole, their copies and faults,
// lifecycles whose later steps are planned on the clock.

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
func (pl *Plugin) SendScheduled(payload json.RawMessage) error {
	var plan paypalPlan
	if err := json.Unmarshal(payload, &plan); err != nil {
		return fmt.Errorf("planned PayPal send: %w", err)
	}
	_, err := pl.send(Notification{Body: plan.Body, Kind: plan.Kind, NotifyURL: plan.NotifyURL}, plan.Seed)
	return err
}

// Send creates and delivers a PayPal notification. Everything that
// belongs to the message (its body, its fault, its copies' target) is
// checked before its first byte leaves: a refused request sends nothing,
// and the fault is in force before the first delivery starts.
func (pl *Plugin) Send(req api.SendRequest) (api.MessageView, error) {
	if req.Copies < 0 || req.Copies > 1000 {
		return api.MessageView{}, plugin.BadRequest("copies %d: want 1 to 1000", req.Copies)
	}
	body, kind, seed, err := pl.build(req)
	if err != nil {
		return api.MessageView{}, err
	}
	var fault *Fault
	if req.Fault != nil {
		f, err := faultOf(*req.Fault)
		if err != nil {
			return api.MessageView{}, plugin.BadRequest("fault: %v", err)
		}
		fault = &f
	}
	// Copies race: their first deliveries reach the listener together.
	var burst *delivery.Burst
	if req.Copies > 1 {
		burst = delivery.NewBurst(req.Copies)
	}
	m, err := pl.send(Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL, Fault: fault, Burst: burst}, seed)
	if err != nil {
		return api.MessageView{}, err
	}
	// The copies go to the target the first one was accepted for: only a
	// failing journal can stop them now.
	var copies []string
	for i := 1; i < req.Copies; i++ {
		c, err := pl.send(Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL, Burst: burst}, seed)
		if err != nil {
			for range req.Copies - i {
				burst.Leave() // this copy and those after it never come
			}
			return api.MessageView{}, fmt.Errorf("copy %d of %d (after %s and %d copies were sent): %w", i+1, req.Copies, m.ID, len(copies), err)
		}
		copies = append(copies, c.ID)
	}
	// On a manual clock the first delivery finishes before we answer, so
	// the caller sees its outcome; a real clock does not wait.
	pl.host.WaitIdle()
	view, _ := pl.host.View(m.ID)
	view.Copies = copies
	return view, nil
}

// Dispatch creates one PayPal notification and hands it to delivery
// without waiting for the first attempt or building its view, for tools
// that send many (ipnlab load). Copies and faults do not apply. It returns
// the message id.
func (pl *Plugin) Dispatch(req api.SendRequest) (string, error) {
	if req.Copies > 1 || req.Fault != nil {
		return "", plugin.BadRequest("dispatch sends one message: copies and fault do not apply")
	}
	body, kind, seed, err := pl.build(req)
	if err != nil {
		return "", err
	}
	m, err := pl.send(Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL}, seed)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// Template builds a message as Dispatch would, without sending it: the
// exact bytes, its kind and seed. A tool that sends many (ipnlab load)
// builds a few and sends stamped copies (generate.Stamper) with
// DispatchBody.
func (pl *Plugin) Template(req api.SendRequest) (body []byte, kind string, seed uint64, err error) {
	return pl.build(req)
}

// DispatchBody hands exact bytes to delivery, as Dispatch does once it
// has built them, and returns the message id.
func (pl *Plugin) DispatchBody(body []byte, kind, notifyURL string, seed uint64) (string, error) {
	m, err := pl.send(Notification{Body: body, Kind: kind, NotifyURL: notifyURL}, seed)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// send hands exact bytes to the fake PayPal. It does not wait, so clock
// callbacks can call it.
func (pl *Plugin) send(n Notification, seed uint64) (*Message, error) {
	n.Seed = seed
	m, _, err := pl.svc.Send(n)
	if err != nil {
		if errors.Is(err, form.ErrMalformed) || errors.Is(err, form.ErrUnknownCharset) || errors.Is(err, ErrBadFault) ||
			errors.Is(err, delivery.ErrBadURL) || errors.Is(err, ErrNoTarget) {
			return nil, fmt.Errorf("%w: %w", plugin.ErrBadRequest, err)
		}
		return nil, err
	}
	return m, nil
}

// generates says whether the request asks for anything only a generated
// message can have.
func generates(req api.SendRequest) bool {
	return len(req.Set) > 0 || len(req.Unset) > 0 || req.Charset != "" || req.Seed != 0 || req.Neutral || req.Flavour != "" || req.Params != (api.Params{})
}

// build turns a request into the exact bytes to send.
func (pl *Plugin) build(req api.SendRequest) (body []byte, kind string, seed uint64, err error) {
	switch {
	case req.Raw != "" && req.RawBase64 != "":
		return nil, "", 0, plugin.BadRequest("give raw or raw_base64, not both")
	case req.Raw != "" || req.RawBase64 != "":
		if req.Kind != "" || len(req.Fields) > 0 || generates(req) {
			return nil, "", 0, plugin.BadRequest("a raw body is sent byte for byte: kind, fields, params, set, unset, charset, flavour and seed do not apply")
		}
		body = []byte(req.Raw)
		if req.RawBase64 != "" {
			if body, err = base64.StdEncoding.DecodeString(req.RawBase64); err != nil {
				return nil, "", 0, plugin.BadRequest("raw_base64: %v", err)
			}
		}
		if _, err := form.Parse(body); err != nil {
			return nil, "", 0, plugin.BadRequest("raw body: %v", err)
		}
		return body, "", 0, nil
	case len(req.Fields) > 0:
		if generates(req) {
			return nil, "", 0, plugin.BadRequest("fields are the whole message: params, set, unset, charset, flavour and seed do not apply (the charset field names the encoding)")
		}
		if req.Kind != "" {
			if _, ok := generate.LookupKind(req.Kind); !ok {
				return nil, "", 0, plugin.BadRequest("unknown kind %q%s: want one of %v", req.Kind, suggest.Hint(req.Kind, generate.KindNames()), generate.KindNames())
			}
		}
		body, err := wholeMessage(req.Kind, req.Fields)
		return body, req.Kind, 0, err
	}
	msg, seed, err := pl.generate(req)
	if err != nil {
		return nil, "", 0, err
	}
	raw, err := msg.Encode()
	if err != nil {
		return nil, "", 0, plugin.BadRequest("%v", err)
	}
	return raw.Encode(), req.Kind, seed, nil
}

// generate makes the message a request asks for, from its kind.
func (pl *Plugin) generate(req api.SendRequest) (generate.Message, uint64, error) {
	if req.Kind == "" {
		req.Kind = "web_accept"
	}
	if _, ok := generate.LookupKind(req.Kind); !ok {
		return generate.Message{}, 0, plugin.BadRequest("unknown kind %q%s: want one of %v (or a raw body)", req.Kind, suggest.Hint(req.Kind, generate.KindNames()), generate.KindNames())
	}
	p, err := FixtureParams(req.Params)
	if err != nil {
		return generate.Message{}, 0, err
	}
	if err := p.CheckValues(req.Kind); err != nil {
		return generate.Message{}, 0, plugin.BadRequest("params.%v", err)
	}
	gen, seed, err := pl.generator(uint64(req.Seed), req.Charset, req.Flavour, req.Neutral, req.Params.PayerEmail, &p)
	if err != nil {
		return generate.Message{}, 0, err
	}
	msg, err := gen.Message(req.Kind, p)
	if err != nil {
		return generate.Message{}, 0, plugin.BadRequest("%v", err)
	}
	for _, name := range req.Unset {
		if _, ok := msg.Fields.Get(name); !ok {
			return generate.Message{}, 0, plugin.BadRequest("unset %q: the %s message has no such field", name, req.Kind)
		}
		msg.Fields = msg.Fields.Del(name)
	}
	for _, fd := range req.Set {
		if fd.Name == "" {
			return generate.Message{}, 0, plugin.BadRequest("set: a field name is empty")
		}
		msg.Fields = msg.Fields.Set(fd.Name, fd.Value)
	}
	return msg, seed, nil
}

// generator returns a fixtures generator for one request: its own seed
// (derived from the emulator's unless given), the profile's receiver, the
// clock's time, and the payer's email pinned into p if asked.
func (pl *Plugin) generator(seed uint64, charset, flavour string, neutral bool, payerEmail string, p *generate.Params) (*generate.Generator, uint64, error) {
	if seed == 0 {
		seed = pl.host.DrawSeed()
	}
	prof := pl.svc.Profile()
	gen, err := generate.New(seed, generate.Options{
		Charset: charset, Sandbox: !pl.settings.Live, Flavour: generate.Flavour(flavour), Neutral: neutral,
		Receiver: generate.Receiver{Email: prof.ReceiverEmail, ID: prof.ReceiverID},
		Start:    pl.host.Clock.Now(),
	})
	if err != nil {
		return nil, 0, plugin.BadRequest("%v", err)
	}
	if payerEmail != "" {
		payer := gen.Person()
		payer.Email = payerEmail
		p.Payer = &payer
	}
	return gen, seed, nil
}

// Live reports whether generated messages leave out test_ipn=1, as
// production messages do.
func (pl *Plugin) Live() bool { return pl.settings.Live }

// FixtureParams checks the params and converts them for the fixtures
// package.
func FixtureParams(p api.Params) (generate.Params, error) {
	out := generate.Params{
		Currency: p.Currency, Status: p.Status, PendingReason: p.PendingReason, ReasonCode: p.ReasonCode,
		Items: p.Items, Filters: p.Filters, CaseType: p.CaseType, TxnID: p.TxnID, ParentTxnID: p.ParentTxnID,
		SubscrID: p.SubscrID, ProfileID: p.ProfileID, Custom: p.Custom, Invoice: p.Invoice, ItemNumber: p.ItemNumber,
	}
	if p.Items < 0 || p.Items > 500 {
		return out, plugin.BadRequest("params.items %d: want 1 to 500", p.Items)
	}
	if p.Filters < 0 || p.Filters > 5 {
		return out, plugin.BadRequest("params.filters %d: want 1 to 5", p.Filters)
	}
	if err := out.CheckValues(""); err != nil {
		return out, plugin.BadRequest("params.%v", err)
	}
	if p.Gross != "" {
		g, err := generate.ParseMoney(p.Gross)
		if err != nil {
			return out, plugin.BadRequest("params.gross: %v", err)
		}
		out.Gross = g
	}
	return out, nil
}

// faultOf is the verifier fault r asks for.
func faultOf(r api.FaultRequest) (Fault, error) {
	f := Fault{Kind: FaultKind(r.Kind), Count: r.Count}
	if r.Delay != "" {
		d, err := time.ParseDuration(r.Delay)
		if err != nil {
			return f, fmt.Errorf("delay %q: %v", r.Delay, err)
		}
		f.Delay = d
	}
	return f, f.Validate()
}

// SendLifecycle generates every step first (so a bad request sends
// nothing), then schedules each on the clock. The first step goes at once;
// on a manual clock the answer comes after its first delivery.
func (pl *Plugin) SendLifecycle(req api.LifecycleRequest) (api.LifecyclePlan, error) {
	p, err := FixtureParams(req.Params)
	if err != nil {
		return api.LifecyclePlan{}, err
	}
	if req.Name == "" {
		return api.LifecyclePlan{}, plugin.BadRequest("name is required: one of %v", generate.LifecycleNames())
	}
	gen, seed, err := pl.generator(uint64(req.Seed), req.Charset, "", req.Neutral, req.Params.PayerEmail, &p)
	if err != nil {
		return api.LifecyclePlan{}, err
	}
	steps, err := gen.Lifecycle(req.Name, p)
	if err != nil {
		return api.LifecyclePlan{}, plugin.BadRequest("%v", err)
	}
	plan := api.LifecyclePlan{Lifecycle: req.Name, Seed: api.Seed(seed)}
	bodies := make([][]byte, len(steps))
	at := pl.host.Clock.Now()
	for i, st := range steps {
		if bodies[i], err = st.Message.Body(); err != nil {
			return api.LifecyclePlan{}, plugin.BadRequest("step %s: %v", st.Name, err)
		}
		at = at.Add(st.After)
		plan.Steps = append(plan.Steps, api.PlannedStep{Name: st.Name, Kind: st.Message.Kind, TxnID: st.Message.Fields.Value("txn_id"), At: at})
	}
	first, err := pl.send(Notification{Body: bodies[0], Kind: steps[0].Message.Kind, NotifyURL: req.NotifyURL}, seed)
	if err != nil {
		return api.LifecyclePlan{}, err
	}
	plan.Steps[0].MessageID = first.ID
	// The later steps are journaled before the answer: a restart sends
	// them at their time, as it resends retries.
	for i := 1; i < len(steps); i++ {
		payload, err := json.Marshal(paypalPlan{Body: bodies[i], Kind: steps[i].Message.Kind, NotifyURL: req.NotifyURL, Seed: seed})
		if err == nil {
			err = pl.host.Schedule(plugin.Planned{Provider: Provider, At: plan.Steps[i].At, Label: fmt.Sprintf("lifecycle %s step %s", req.Name, steps[i].Name),
				Payload: payload})
		}
		if err != nil {
			return plan, err
		}
	}
	pl.host.WaitIdle()
	return plan, nil
}
