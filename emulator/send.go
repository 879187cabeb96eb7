package emulator

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/internal/shell"
	"github.com/ipnlab/ipnlab/internal/suggest"
)

// SendPayPal creates and delivers a PayPal notification. Everything that
// belongs to the message (its body, its fault, its copies' target) is
// checked before its first byte leaves: a refused request sends nothing,
// and the fault is in force before the first delivery starts.
func (e *Emulator) SendPayPal(req SendRequest) (MessageView, error) {
	if req.Copies < 0 || req.Copies > 1000 {
		return MessageView{}, badRequest("copies %d: want 1 to 1000", req.Copies)
	}
	body, kind, seed, err := e.buildPayPal(req)
	if err != nil {
		return MessageView{}, err
	}
	var fault *paypal.Fault
	if req.Fault != nil {
		f, err := faultOf(*req.Fault)
		if err != nil {
			return MessageView{}, badRequest("fault: %v", err)
		}
		fault = &f
	}
	// Copies race: their first deliveries reach the listener together.
	var burst *delivery.Burst
	if req.Copies > 1 {
		burst = delivery.NewBurst(req.Copies)
	}
	m, err := e.send(paypal.Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL, Fault: fault, Burst: burst}, seed)
	if err != nil {
		return MessageView{}, err
	}
	// The copies go to the target the first one was accepted for: only a
	// failing journal can stop them now.
	var copies []string
	for i := 1; i < req.Copies; i++ {
		c, err := e.send(paypal.Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL, Burst: burst}, seed)
		if err != nil {
			for range req.Copies - i {
				burst.Leave() // this copy and those after it never come
			}
			return MessageView{}, fmt.Errorf("copy %d of %d (after %s and %d copies were sent): %w", i+1, req.Copies, m.ID, len(copies), err)
		}
		copies = append(copies, c.ID)
	}
	// On a manual clock the first delivery finishes before we answer, so
	// the caller sees its outcome; a real clock does not wait.
	e.WaitIdle()
	view, _ := e.View(m.ID)
	view.Copies = copies
	return view, nil
}

// Dispatch creates one PayPal notification and hands it to delivery
// without waiting for the first attempt or building its view, for tools
// that send many (ipnlab load). Copies and faults do not apply. It returns
// the message id.
func (e *Emulator) Dispatch(req SendRequest) (string, error) {
	if req.Copies > 1 || req.Fault != nil {
		return "", badRequest("dispatch sends one message: copies and fault do not apply")
	}
	body, kind, seed, err := e.buildPayPal(req)
	if err != nil {
		return "", err
	}
	m, err := e.send(paypal.Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL}, seed)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// Template builds a message as Dispatch would, without sending it: the
// exact bytes, its kind and seed. A tool that sends many (ipnlab load)
// builds a few and sends stamped copies (generate.Stamper) with
// DispatchBody.
func (e *Emulator) Template(req SendRequest) (body []byte, kind string, seed uint64, err error) {
	return e.buildPayPal(req)
}

// DispatchBody hands exact bytes to delivery, as Dispatch does once it
// has built them, and returns the message id.
func (e *Emulator) DispatchBody(body []byte, kind, notifyURL string, seed uint64) (string, error) {
	m, err := e.send(paypal.Notification{Body: body, Kind: kind, NotifyURL: notifyURL}, seed)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// send hands exact bytes to the fake PayPal. It does not wait, so clock
// callbacks can call it.
func (e *Emulator) send(n paypal.Notification, seed uint64) (*paypal.Message, error) {
	n.Seed = seed
	m, _, err := e.paypal.Send(n)
	if err != nil {
		if errors.Is(err, form.ErrMalformed) || errors.Is(err, form.ErrUnknownCharset) || errors.Is(err, paypal.ErrBadFault) ||
			errors.Is(err, delivery.ErrBadURL) || errors.Is(err, paypal.ErrNoTarget) {
			return nil, fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return nil, err
	}
	return m, nil
}

// generates says whether the request asks for anything only a generated
// message can have.
func generates(req SendRequest) bool {
	return len(req.Set) > 0 || len(req.Unset) > 0 || req.Charset != "" || req.Seed != 0 || req.Neutral || req.Flavour != "" || req.Params != (Params{})
}

// buildPayPal turns a request into the exact bytes to send.
func (e *Emulator) buildPayPal(req SendRequest) (body []byte, kind string, seed uint64, err error) {
	switch {
	case req.Raw != "" && req.RawBase64 != "":
		return nil, "", 0, badRequest("give raw or raw_base64, not both")
	case req.Raw != "" || req.RawBase64 != "":
		if req.Kind != "" || len(req.Fields) > 0 || generates(req) {
			return nil, "", 0, badRequest("a raw body is sent byte for byte: kind, fields, params, set, unset, charset, flavour and seed do not apply")
		}
		body = []byte(req.Raw)
		if req.RawBase64 != "" {
			if body, err = base64.StdEncoding.DecodeString(req.RawBase64); err != nil {
				return nil, "", 0, badRequest("raw_base64: %v", err)
			}
		}
		if _, err := form.Parse(body); err != nil {
			return nil, "", 0, badRequest("raw body: %v", err)
		}
		return body, "", 0, nil
	case len(req.Fields) > 0:
		if generates(req) {
			return nil, "", 0, badRequest("fields are the whole message: params, set, unset, charset, flavour and seed do not apply (the charset field names the encoding)")
		}
		if req.Kind != "" {
			if _, ok := generate.LookupKind(req.Kind); !ok {
				return nil, "", 0, badRequest("unknown kind %q%s: want one of %v", req.Kind, suggest.Hint(req.Kind, generate.KindNames()), generate.KindNames())
			}
		}
		body, err := wholeMessage(req.Kind, req.Fields)
		return body, req.Kind, 0, err
	}
	msg, seed, err := e.generatePayPal(req)
	if err != nil {
		return nil, "", 0, err
	}
	raw, err := msg.Encode()
	if err != nil {
		return nil, "", 0, badRequest("%v", err)
	}
	return raw.Encode(), req.Kind, seed, nil
}

// generatePayPal makes the message a request asks for, from its kind.
func (e *Emulator) generatePayPal(req SendRequest) (generate.Message, uint64, error) {
	if req.Kind == "" {
		req.Kind = "web_accept"
	}
	if _, ok := generate.LookupKind(req.Kind); !ok {
		return generate.Message{}, 0, badRequest("unknown kind %q%s: want one of %v (or a raw body)", req.Kind, suggest.Hint(req.Kind, generate.KindNames()), generate.KindNames())
	}
	p, err := FixtureParams(req.Params)
	if err != nil {
		return generate.Message{}, 0, err
	}
	if err := p.CheckValues(req.Kind); err != nil {
		return generate.Message{}, 0, badRequest("params.%v", err)
	}
	gen, seed, err := e.generator(uint64(req.Seed), req.Charset, req.Flavour, req.Neutral, req.Params.PayerEmail, &p)
	if err != nil {
		return generate.Message{}, 0, err
	}
	msg, err := gen.Message(req.Kind, p)
	if err != nil {
		return generate.Message{}, 0, badRequest("%v", err)
	}
	for _, name := range req.Unset {
		if _, ok := msg.Fields.Get(name); !ok {
			return generate.Message{}, 0, badRequest("unset %q: the %s message has no such field", name, req.Kind)
		}
		msg.Fields = msg.Fields.Del(name)
	}
	for _, fd := range req.Set {
		if fd.Name == "" {
			return generate.Message{}, 0, badRequest("set: a field name is empty")
		}
		msg.Fields = msg.Fields.Set(fd.Name, fd.Value)
	}
	return msg, seed, nil
}

// generator returns a fixtures generator for one request: its own seed
// (derived from the emulator's unless given), the profile's receiver, the
// clock's time, and the payer's email pinned into p if asked.
func (e *Emulator) generator(seed uint64, charset, flavour string, neutral bool, payerEmail string, p *generate.Params) (*generate.Generator, uint64, error) {
	if seed == 0 {
		seed = e.drawSeed()
	}
	prof := e.paypal.Profile()
	gen, err := generate.New(seed, generate.Options{
		Charset: charset, Sandbox: !e.cfg.PayPal.Live, Flavour: generate.Flavour(flavour), Neutral: neutral,
		Receiver: generate.Receiver{Email: prof.ReceiverEmail, ID: prof.ReceiverID},
		Start:    e.clock.Now(),
	})
	if err != nil {
		return nil, 0, badRequest("%v", err)
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
func (e *Emulator) Live() bool { return e.cfg.PayPal.Live }

// FixtureParams checks the params and converts them for the fixtures
// package.
func FixtureParams(p Params) (generate.Params, error) {
	out := generate.Params{
		Currency: p.Currency, Status: p.Status, PendingReason: p.PendingReason, ReasonCode: p.ReasonCode,
		Items: p.Items, Filters: p.Filters, CaseType: p.CaseType, TxnID: p.TxnID, ParentTxnID: p.ParentTxnID,
		SubscrID: p.SubscrID, ProfileID: p.ProfileID, Custom: p.Custom, Invoice: p.Invoice, ItemNumber: p.ItemNumber,
	}
	if p.Items < 0 || p.Items > 500 {
		return out, badRequest("params.items %d: want 1 to 500", p.Items)
	}
	if p.Filters < 0 || p.Filters > 5 {
		return out, badRequest("params.filters %d: want 1 to 5", p.Filters)
	}
	if err := out.CheckValues(""); err != nil {
		return out, badRequest("params.%v", err)
	}
	if p.Gross != "" {
		g, err := generate.ParseMoney(p.Gross)
		if err != nil {
			return out, badRequest("params.gross: %v", err)
		}
		out.Gross = g
	}
	return out, nil
}

// drawSeed derives the next message's seed from the emulator's.
func (e *Emulator) drawSeed() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	e.saveSeedLocked()
	return subSeed(e.cfg.Seed, e.seq)
}

// subSeed derives message n's seed from the emulator's (splitmix64), so a
// run with the same seed and the same requests makes the same messages.
func subSeed(seed, n uint64) uint64 {
	z := seed + n*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31) | 1
}

// View returns a message with its fields, attempts and postbacks.
func (e *Emulator) View(id string) (MessageView, bool) {
	rec, ok := e.engine.Get(id)
	if !ok {
		return MessageView{}, false
	}
	v := MessageView{Summary: e.summarize(rec), Attempts: rec.Attempts, Fields: []FieldView{}, Postbacks: []api.Postback{}}
	if p, err := e.providerOf(rec); err == nil {
		p.Describe(id, &v)
	}
	v.Remake = remake(v)
	return v, true
}

// remake is the command that makes message v again from its seed: its
// kind, time, charset and receiver. Each value is quoted: a receiver
// email is whatever the sender set, and users paste the line into a
// shell.
func remake(v MessageView) string {
	if v.Seed == 0 {
		return ""
	}
	args := []string{"fixtures", "show", v.Kind, "--raw", "--seed", strconv.FormatUint(uint64(v.Seed), 10),
		"--at", v.Created.UTC().Format(time.RFC3339)}
	if v.Charset != "" {
		args = append(args, "--charset", v.Charset)
	}
	if !v.Sandbox {
		args = append(args, "--live")
	}
	for _, name := range []string{"receiver_email", "receiver_id"} {
		if i := slices.IndexFunc(v.Fields, func(f FieldView) bool { return f.Name == name }); i >= 0 && v.Fields[i].Value != "" {
			args = append(args, "--"+strings.ReplaceAll(name, "_", "-"), v.Fields[i].Value)
		}
	}
	return shell.Command("ipnlab", args...)
}

// faultOf is the verifier fault r asks for.
func faultOf(r FaultRequest) (paypal.Fault, error) {
	f := paypal.Fault{Kind: paypal.FaultKind(r.Kind), Count: r.Count}
	if r.Delay != "" {
		d, err := time.ParseDuration(r.Delay)
		if err != nil {
			return f, fmt.Errorf("delay %q: %v", r.Delay, err)
		}
		f.Delay = d
	}
	return f, f.Validate()
}

// decodeJSON reads exactly one JSON value into v, refusing unknown fields
// and trailing data.
func decodeJSON(r io.Reader, v any) error { return plugin.DecodeJSON(r, v) }
