package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/fixtures"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// Fields is an ordered list of name/value overrides. In JSON it is an
// object whose key order is kept ({"custom": "x", "invoice": "7"}).
type Fields form.Form

// UnmarshalJSON reads an object, keeping key order (orderedjson: a
// duplicate key is refused, not quietly overridden); values must be
// strings.
func (f *Fields) UnmarshalJSON(b []byte) error {
	obj, err := orderedjson.Parse(b)
	if err != nil {
		return fmt.Errorf(`want an object of field names to string values, e.g. {"custom": "x"}: %w`, err)
	}
	if len(obj) > form.MaxFields {
		return fmt.Errorf("more than %d fields: not an IPN", form.MaxFields)
	}
	out := make(Fields, 0, len(obj))
	for _, m := range obj {
		v, ok := m.Value.(string)
		if !ok {
			return fmt.Errorf("field %q: value must be a string (IPN values are text), got %v", m.Key, m.Value)
		}
		out = append(out, form.Field{Name: m.Key, Value: v})
	}
	*f = out
	return nil
}

// MarshalJSON writes the fields as an object, in order.
func (f Fields) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, fd := range f {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(fd.Name)
		v, _ := json.Marshal(fd.Value)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Params pins generated values (see fixtures.Params). Amounts are strings
// with two decimals.
type Params struct {
	Gross         string `json:"gross,omitempty"`
	Currency      string `json:"currency,omitempty"`
	Status        string `json:"status,omitempty"`
	PendingReason string `json:"pending_reason,omitempty"`
	ReasonCode    string `json:"reason_code,omitempty"`
	Items         int    `json:"items,omitempty"`
	Filters       int    `json:"filters,omitempty"`
	CaseType      string `json:"case_type,omitempty"`
	TxnID         string `json:"txn_id,omitempty"`
	ParentTxnID   string `json:"parent_txn_id,omitempty"`
	SubscrID      string `json:"subscr_id,omitempty"`
	ProfileID     string `json:"profile_id,omitempty"`
	Custom        string `json:"custom,omitempty"`
	Invoice       string `json:"invoice,omitempty"`
	ItemNumber    string `json:"item_number,omitempty"`
	PayerEmail    string `json:"payer_email,omitempty"`
}

// SendRequest asks for one PayPal notification: generated from a kind, or
// replayed byte for byte from Raw/RawBase64.
type SendRequest struct {
	Kind    string   `json:"kind,omitempty"`
	Params  Params   `json:"params,omitempty"`
	Set     Fields   `json:"set,omitempty"`
	Unset   []string `json:"unset,omitempty"`
	Charset string   `json:"charset,omitempty"`
	Flavour string   `json:"flavour,omitempty"`
	Seed    uint64   `json:"seed,omitempty"`
	// Neutral draws values no listener bug but the one under test trips
	// on (see fixtures.Options.Neutral); set and params are kept as given.
	Neutral   bool   `json:"neutral,omitempty"`
	NotifyURL string `json:"notify_url,omitempty"`
	Raw       string `json:"raw,omitempty"`
	RawBase64 string `json:"raw_base64,omitempty"`
	// Fields is the whole message as text, in order (as a preview gives
	// it, then edited), encoded in the charset its charset field names.
	// Kind may label it; nothing is generated.
	Fields []TextField   `json:"fields,omitempty"`
	Fault  *FaultRequest `json:"fault,omitempty"`
	// Copies sends that many identical messages (the same bytes, separate
	// History rows), delivered concurrently: a duplicate storm.
	Copies int `json:"copies,omitempty"`
}

// FieldView is one field of a message: its text and its exact bytes.
type FieldView struct {
	Name  string `json:"name"`
	Value string `json:"value"` // decoded in the message's charset
	Raw   string `json:"raw"`   // percent-encoded bytes as sent
}

// MessageView is a message as the API shows it.
type MessageView struct {
	Summary
	Charset   string                  `json:"charset"`
	Sandbox   bool                    `json:"sandbox"`
	Seed      uint64                  `json:"seed,omitempty"`
	Fields    []FieldView             `json:"fields"`
	Body      string                  `json:"body"`
	Attempts  []delivery.Attempt      `json:"attempts"`
	Postbacks []paypal.PostbackRecord `json:"postbacks"`
	// Copies lists the ids of the identical copies sent with it.
	Copies []string `json:"copies,omitempty"`
}

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
		f, err := req.Fault.fault()
		if err != nil {
			return MessageView{}, badRequest("fault: %v", err)
		}
		fault = &f
	}
	m, err := e.send(paypal.Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL, Fault: fault}, seed)
	if err != nil {
		return MessageView{}, err
	}
	// The copies go to the target the first one was accepted for: only a
	// failing journal can stop them now.
	var copies []string
	for i := 1; i < req.Copies; i++ {
		c, err := e.send(paypal.Notification{Body: body, Kind: kind, NotifyURL: req.NotifyURL}, seed)
		if err != nil {
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

// send hands exact bytes to the fake PayPal. It does not wait, so clock
// callbacks can call it.
func (e *Emulator) send(n paypal.Notification, seed uint64) (*paypal.Message, error) {
	m, _, err := e.paypal.Send(n)
	if err != nil {
		if errors.Is(err, form.ErrMalformed) || errors.Is(err, form.ErrUnknownCharset) || errors.Is(err, paypal.ErrBadFault) ||
			errors.Is(err, delivery.ErrBadURL) || errors.Is(err, paypal.ErrNoTarget) {
			return nil, fmt.Errorf("%w: %w", errBadRequest, err)
		}
		return nil, err
	}
	if seed != 0 {
		e.mu.Lock()
		e.seeds[m.ID] = seed
		e.mu.Unlock()
		e.saveMessageSeed(m.ID, seed)
	}
	return m, nil
}

// generates says whether the request asks for anything only a generated
// message can have.
func (req SendRequest) generates() bool {
	return len(req.Set) > 0 || len(req.Unset) > 0 || req.Charset != "" || req.Seed != 0 || req.Neutral || req.Flavour != "" || req.Params != (Params{})
}

// buildPayPal turns a request into the exact bytes to send.
func (e *Emulator) buildPayPal(req SendRequest) (body []byte, kind string, seed uint64, err error) {
	switch {
	case req.Raw != "" && req.RawBase64 != "":
		return nil, "", 0, badRequest("give raw or raw_base64, not both")
	case req.Raw != "" || req.RawBase64 != "":
		if req.Kind != "" || len(req.Fields) > 0 || req.generates() {
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
		if req.generates() {
			return nil, "", 0, badRequest("fields are the whole message: params, set, unset, charset, flavour and seed do not apply (the charset field names the encoding)")
		}
		if req.Kind != "" {
			if _, ok := fixtures.LookupKind(req.Kind); !ok {
				return nil, "", 0, badRequest("unknown kind %q: want one of %v", req.Kind, fixtures.KindNames())
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
func (e *Emulator) generatePayPal(req SendRequest) (fixtures.Message, uint64, error) {
	if req.Kind == "" {
		req.Kind = "web_accept"
	}
	if _, ok := fixtures.LookupKind(req.Kind); !ok {
		return fixtures.Message{}, 0, badRequest("unknown kind %q: want one of %v (or a raw body)", req.Kind, fixtures.KindNames())
	}
	p, err := req.Params.Fixture()
	if err != nil {
		return fixtures.Message{}, 0, err
	}
	gen, seed, err := e.generator(req.Seed, req.Charset, req.Flavour, req.Neutral, req.Params.PayerEmail, &p)
	if err != nil {
		return fixtures.Message{}, 0, err
	}
	msg, err := gen.Message(req.Kind, p)
	if err != nil {
		return fixtures.Message{}, 0, badRequest("%v", err)
	}
	for _, name := range req.Unset {
		if _, ok := msg.Fields.Get(name); !ok {
			return fixtures.Message{}, 0, badRequest("unset %q: the %s message has no such field", name, req.Kind)
		}
		msg.Fields = msg.Fields.Del(name)
	}
	for _, fd := range req.Set {
		if fd.Name == "" {
			return fixtures.Message{}, 0, badRequest("set: a field name is empty")
		}
		msg.Fields = msg.Fields.Set(fd.Name, fd.Value)
	}
	return msg, seed, nil
}

// generator returns a fixtures generator for one request: its own seed
// (derived from the emulator's unless given), the profile's receiver, the
// clock's time, and the payer's email pinned into p if asked.
func (e *Emulator) generator(seed uint64, charset, flavour string, neutral bool, payerEmail string, p *fixtures.Params) (*fixtures.Generator, uint64, error) {
	if seed == 0 {
		seed = e.drawSeed()
	}
	prof := e.paypal.Profile()
	gen, err := fixtures.New(seed, fixtures.Options{
		Charset: charset, Sandbox: !e.cfg.Live, Flavour: fixtures.Flavour(flavour), Neutral: neutral,
		Receiver: fixtures.Receiver{Email: prof.ReceiverEmail, ID: prof.ReceiverID},
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
func (e *Emulator) Live() bool { return e.cfg.Live }

// Fixture checks the params and converts them for the fixtures package.
func (p Params) Fixture() (fixtures.Params, error) {
	out := fixtures.Params{
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
	if p.Gross != "" {
		g, err := fixtures.ParseMoney(p.Gross)
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
	v := MessageView{Summary: Summarize(rec), Attempts: rec.Attempts, Fields: []FieldView{}, Postbacks: []paypal.PostbackRecord{}}
	if p, err := e.providerOf(rec); err == nil {
		p.Describe(id, &v)
	}
	e.mu.Lock()
	v.Seed = e.seeds[id]
	e.mu.Unlock()
	return v, true
}

// FaultRequest is a verifier fault as the API takes it.
type FaultRequest struct {
	Kind  string `json:"kind"`
	Delay string `json:"delay,omitempty"` // for slow, e.g. "2s"
	Count int    `json:"count,omitempty"`
}

func (r FaultRequest) fault() (paypal.Fault, error) {
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
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("empty body: want a JSON object")
		}
		return badRequest("invalid JSON: %v", err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON: data after the first value")
	}
	return nil
}
