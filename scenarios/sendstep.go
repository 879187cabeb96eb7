package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
)

// sendStep is what a provider's send step takes (checked when a scenario
// loads) and how it sends. PayPal and PayDo have options of their own
// (charset, lifecycles, orders and bursts; follow-ups, source address);
// any other provider is asked through emulator.Sender with kind, set,
// copies and seed.
type sendStep interface {
	check(l *loader, n *yaml.Node, s *Send) error
	// send sends, then records what it sent (runner.recordSent).
	send(ctx context.Context, r *runner, s *Send, params, set map[string]any) error
	// takes says whether the step takes an option beyond the shared ones.
	takes(option string) bool
	// currency is the currency an expectation about its money means when
	// it names none ("" when the provider has no default).
	currency() string
}

// Options a send step may take beyond kind, set, copies, seed and as.
const (
	orderOption  = "order"
	burstsOption = "bursts"
)

// builtinSteps are the built-in providers' send steps, in the order
// scenarios list the providers.
var builtinSteps = []struct {
	provider string
	step     sendStep
}{{paypal.Provider, paypalSend{}}, {paydo.Provider, paydoSend{}}}

// builtinProviders names the built-in providers, PayPal first.
func builtinProviders() []string {
	names := make([]string, len(builtinSteps))
	for i, b := range builtinSteps {
		names[i] = b.provider
	}
	return names
}

// sendStepOf is provider's send step: a built-in's own, else the
// emulator.Sender one.
func sendStepOf(provider string) sendStep {
	for _, b := range builtinSteps {
		if b.provider == provider {
			return b.step
		}
	}
	return senderSend{}
}

type paypalSend struct{}

func (paypalSend) takes(option string) bool { return option == orderOption || option == burstsOption }
func (paypalSend) currency() string         { return "USD" }

func (paypalSend) check(l *loader, n *yaml.Node, s *Send) error {
	if s.Kind != "" {
		if _, ok := generate.LookupKind(s.Kind); !ok {
			return l.at(n, "kind %q: want one of %s", s.Kind, strings.Join(generate.KindNames(), ", "))
		}
	}
	if len(s.Then) > 0 || s.Interval != "" || s.Source != "" || s.ForwardedFor != "" {
		return l.at(n, "then, interval, source and forwarded_for are PayDo's")
	}
	if err := checkParams[emulator.Params](l, n, s.Params); err != nil {
		return err
	}
	kind := s.Kind
	if kind == "" && s.From == "" && s.Raw == "" {
		kind = "web_accept"
	}
	if err := checkValues(kind, s.Params); err != nil {
		return l.at(n, "params.%v", err)
	}
	return nil
}

func (paypalSend) send(ctx context.Context, r *runner, s *Send, params, set map[string]any) error {
	req := emulator.SendRequest{Kind: s.Kind, Unset: s.Unset, Charset: s.Charset, Flavour: s.Flavour, Copies: s.Copies,
		Raw: s.Raw, NotifyURL: r.env.Targets[paypal.Provider]}
	if s.From != "" {
		alias, name, _ := strings.Cut(s.From, ".")
		for _, g := range r.generated[alias] {
			if g.Name == name {
				body, err := g.Message.Body()
				if err != nil {
					return err
				}
				req.Raw, req.Kind = string(body), ""
			}
		}
	} else if s.Raw == "" {
		req.Seed, req.Neutral = api.Seed(r.seed(s.Seed)), r.sc.Values != ValuesRealistic
		if _, ok := params["payer_email"]; !ok {
			params["payer_email"] = r.env.PayerEmail
		}
		o, err := r.applyOrder(ctx, s, params)
		if err != nil {
			return err
		}
		if o != nil && s.As != "" {
			r.orders[s.As] = *o
		}
		if err := decodeInto(params, &req.Params); err != nil {
			return fmt.Errorf("line %d: params: %w", s.Line(), err)
		}
		names := make([]string, 0, len(set))
		for k := range set {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			req.Set = append(req.Set, struct{ Name, Value string }{k, fmt.Sprint(set[k])})
		}
	}
	if s.Bursts > 1 {
		return r.sendBursts(ctx, s, req, params)
	}
	if s.Fault != nil {
		req.Fault = &emulator.FaultRequest{Kind: s.Fault.Kind, Count: s.Fault.Count}
		d, err := r.delay(s.Fault)
		if err != nil {
			return fmt.Errorf("line %d: %w", s.Line(), err)
		}
		if d > 0 {
			req.Fault.Delay = d.String()
		}
	}
	v, err := r.env.Emulator.SendPayPal(req)
	if err != nil {
		return fmt.Errorf("line %d: %w", s.Line(), err)
	}
	what := s.Kind
	if s.From != "" {
		what = s.From
	}
	r.logf("  line %d: send paypal %s -> %s txn_id=%s %s", s.Line(), what, v.ID, v.TxnID, v.Status)
	return r.recordSent(ctx, s, v)
}

type paydoSend struct{}

func (paydoSend) takes(string) bool { return false }
func (paydoSend) currency() string  { return "EUR" }

func (paydoSend) check(l *loader, n *yaml.Node, s *Send) error {
	if s.Kind == "" {
		return l.at(n, "kind is required for PayDo: transfer or checkout")
	}
	if err := l.oneOf(n, "kind", s.Kind, []string{generate.PayDoTransfer, generate.PayDoCheckout}); err != nil {
		return err
	}
	if s.From != "" || s.Raw != "" || len(s.Unset) > 0 || s.Charset != "" || s.Flavour != "" {
		return l.at(n, "from, raw, unset, charset and flavour are PayPal's")
	}
	return checkParams[emulator.PayDoParams](l, n, s.Params)
}

func (paydoSend) send(ctx context.Context, r *runner, s *Send, params, set map[string]any) error {
	req := emulator.PayDoRequest{Kind: s.Kind, Then: s.Then, Interval: s.Interval, Copies: s.Copies, Seed: api.Seed(r.seed(s.Seed)),
		NotifyURL: r.env.Targets[paydo.Provider], Source: s.Source, ForwardedFor: s.ForwardedFor}
	if req.Source == "stranger" {
		req.Source = r.env.StrangerSource
	}
	if req.ForwardedFor == paydo.Provider { // PayDo's own configured address
		req.ForwardedFor = r.env.PayDoSource
	}
	if _, ok := params["metadata"]; !ok && s.Kind == generate.PayDoCheckout {
		params["metadata"] = map[string]any{"customer": r.env.PayerEmail}
	}
	if err := decodeInto(params, &req.Params); err != nil {
		return fmt.Errorf("line %d: params: %w", s.Line(), err)
	}
	if len(set) > 0 {
		var err error
		if req.Set, err = json.Marshal(set); err != nil {
			return err
		}
	}
	views, err := r.env.Emulator.SendPayDo(req)
	if err != nil {
		return fmt.Errorf("line %d: %w", s.Line(), err)
	}
	v := views[0]
	r.logf("  line %d: send paydo %s -> %d message(s), transaction %s, %s", s.Line(), s.Kind, len(views), v.TxnID, v.Status)
	return r.recordSent(ctx, s, v)
}

// senderSend sends through any other provider's emulator.Sender.
type senderSend struct{}

func (senderSend) takes(string) bool { return false }
func (senderSend) currency() string  { return "" }

func (senderSend) check(l *loader, n *yaml.Node, s *Send) error {
	if s.From != "" || s.Raw != "" || len(s.Unset) > 0 || s.Charset != "" || s.Flavour != "" || len(s.Params) > 0 ||
		len(s.Then) > 0 || s.Interval != "" || s.Source != "" || s.ForwardedFor != "" || s.Fault != nil {
		return l.at(n, "provider %s takes kind, set, copies, seed and as; the rest is PayPal's or PayDo's", s.Provider)
	}
	return nil
}

func (senderSend) send(ctx context.Context, r *runner, s *Send, _, set map[string]any) error {
	v, err := r.notify(s, set)
	if err != nil {
		return fmt.Errorf("line %d: %w", s.Line(), err)
	}
	r.logf("  line %d: send %s %s -> %s %s", s.Line(), s.Provider, s.Kind, v.ID, v.Status)
	return r.recordSent(ctx, s, v)
}
