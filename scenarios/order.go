package scenarios

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/orders"
	"github.com/ipnlab/ipnlab/probe"
)

// Orders: a shop that keeps orders expects every payment to name one (in
// invoice, custom or item_number) with its exact amount and currency. The
// run's order source (Env.Orders) gives them; a send names a new one, an
// earlier send's (paid twice), or one the shop does not have, and pays it
// exactly, short, or in the wrong currency.

// How a payment pays its order.
const (
	PayExact         = "exact"
	PayShort         = "short"
	PayWrongCurrency = "wrong_currency"
)

// OrderReader is a probe that reads a shop's orders (GET
// /probe/v1/orders/{ref}, or a SQL probe map's orders query).
type OrderReader interface {
	// Order is what the shop did with an order, or probe.ErrNoOrder.
	Order(ctx context.Context, ref string) (probe.Order, error)
}

// moneyIn are the kinds of payment a shop applies to an order: with an
// order source, each names a new order unless its step says otherwise.
var moneyIn = []string{"web_accept", "cart", "express_checkout", "send_money", "virtual_terminal", "subscr_payment", "recurring_payment", "pro_hosted"}

// paysOrder says which order a PayPal send names: its own order field,
// or, with an order source, a new one for a generated money-in payment.
func (r *runner) paysOrder(s *Send) string {
	switch {
	case s.Order != "":
		return s.Order
	case r.env.Orders == nil || s.From != "" || s.Raw != "":
		return ""
	}
	kind := s.Kind
	if kind == "" {
		kind = "web_accept"
	}
	if !slices.Contains(moneyIn, kind) {
		return ""
	}
	return "new"
}

// applyOrder gets the order a send names and pins params to it: the
// field that names it, and the amount and currency it is paid with.
func (r *runner) applyOrder(ctx context.Context, s *Send, params map[string]any) (*orders.Order, error) {
	which := r.paysOrder(s)
	if which == "" {
		return nil, nil
	}
	var o orders.Order
	switch which {
	case "new", "unknown":
		got, err := r.newOrder(ctx, params)
		if err != nil {
			return nil, err
		}
		o = got
		if which == "unknown" {
			o.Ref = unknownRef(o.Ref)
		}
	default:
		prev, ok := r.orders[which]
		if !ok {
			return nil, fmt.Errorf("line %d: order %s: that send named no order", s.Line(), which)
		}
		o = prev
	}
	params[o.Field] = o.Ref
	params["gross"], params["currency"] = o.Amount.String(), o.Currency
	switch s.Pay {
	case PayShort:
		short := o.Amount - 100
		if o.Amount <= 100 {
			short = o.Amount / 2
		}
		params["gross"] = short.String()
	case PayWrongCurrency:
		params["currency"] = otherCurrency(o.Currency)
	}
	return &o, nil
}

// newOrder asks the run's order source for an order of params' amount
// and currency (25.00 USD when they give none).
func (r *runner) newOrder(ctx context.Context, params map[string]any) (orders.Order, error) {
	if r.env.Orders == nil {
		return orders.Order{}, &skip{msg: "needs an order source (--orders): the shop's orders to pay"}
	}
	req := orders.Request{Amount: 2500, Currency: "USD"}
	if g, ok := params["gross"].(string); ok && g != "" {
		m, err := generate.ParseMoney(g)
		if err != nil {
			return orders.Order{}, err
		}
		req.Amount = m
	}
	if c, ok := params["currency"].(string); ok && c != "" {
		req.Currency = c
	}
	o, err := r.env.Orders.New(ctx, req)
	if err != nil {
		return orders.Order{}, err
	}
	r.logf("  order %s: %s %s, named in %s (from %s)", o.Ref, o.Amount, o.Currency, o.Field, r.env.Orders)
	return o, nil
}

// unknownRef is a reference no order of the shop has, of the same shape
// as ref (all digits stay digits, so a shop that reads a number still
// reads one).
func unknownRef(ref string) string {
	if ref != "" && strings.Trim(ref, "0123456789") == "" {
		return "9" + strings.Repeat("0", 9) + ref
	}
	return "ipnlab-unknown-" + ref
}

// otherCurrency is a currency that is not cur.
func otherCurrency(cur string) string {
	if cur == "USD" {
		return "EUR"
	}
	return "USD"
}

// expectOrder judges an order once the listener has finished with the
// scenario's messages.
func (r *runner) expectOrder(ctx context.Context, e *Expect) error {
	or, ok := r.env.Probe.(OrderReader)
	if !ok || !slices.Contains(KnowsOf(r.env.Probe), probe.Orders) {
		return &skip{msg: "needs a probe that reads the shop's orders (a map's orders query, or GET /probe/v1/orders/{ref})"}
	}
	o, ok := r.orders[e.Order]
	if !ok {
		return fmt.Errorf("line %d: order %s: that send named no order", e.Line(), e.Order)
	}
	if err := r.settle(ctx); err != nil {
		return err
	}
	got, err := or.Order(ctx, o.Ref)
	if err != nil && !errors.Is(err, probe.ErrNoOrder) {
		return err
	}
	received := got.Received[o.Currency]
	if received == "" {
		received = "0.00"
	}
	ev := []string{fmt.Sprintf("order %s (%s %s, named in %s): paid=%v, received %s %s", o.Ref, o.Amount, o.Currency, o.Field, got.Paid, received, o.Currency)}
	for _, c := range slices.Sorted(maps.Keys(got.Received)) {
		if c != o.Currency {
			ev = append(ev, fmt.Sprintf("received %s %s too", got.Received[c], c))
		}
	}
	if errors.Is(err, probe.ErrNoOrder) {
		ev = append(ev, "the probe has no order "+o.Ref)
	}
	if e.Paid != nil && got.Paid != *e.Paid {
		if *e.Paid {
			return fail(ev, "order %s is not marked paid", o.Ref)
		}
		return fail(ev, "order %s is marked paid, and must not be", o.Ref)
	}
	if e.Received != "" {
		want, _ := generate.ParseMoney(e.Received) // checked when loaded
		have, perr := generate.ParseMoney(received)
		if perr != nil {
			return fail(ev, "order %s: the probe's received %q is not an amount", o.Ref, received)
		}
		if have != want {
			return fail(ev, "order %s received %s %s, want %s", o.Ref, have, o.Currency, want)
		}
	}
	return nil
}
