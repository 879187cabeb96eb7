// Package orders gets orders from the shop under test, so that the
// harness can pay them. Most shops (WooCommerce, Magento, django-paypal's
// own example) create an order first and expect the IPN to name it in
// invoice, custom or item_number, with its exact amount and currency. A
// team gives the harness a source: a command, an HTTP endpoint, or a SQL
// query over its database; each is asked for an order of an amount and a
// currency and answers with the order's reference, amount, currency and
// the field that must name it.
package orders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipnlab/ipnlab/generate"
)

// Fields a PayPal message names an order in.
var Fields = []string{"invoice", "custom", "item_number"}

// Request is the order the harness asks for.
type Request struct {
	Amount   generate.Money
	Currency string
}

// Order is one order of the shop, as its source answers.
type Order struct {
	// Ref is the order's reference, as the message names it.
	Ref string
	// Amount and Currency are what the order costs.
	Amount   generate.Money
	Currency string
	// Field is where the message names it: invoice, custom or item_number.
	Field string
}

// Source gives orders to pay.
type Source interface {
	// New returns an order of the shop, unpaid, for req (a source may
	// answer another amount: the harness pays what the order costs).
	New(ctx context.Context, req Request) (Order, error)
	// String names the source for messages (no secrets).
	String() string
}

// ErrSource wraps every error a source gives: a harness error, not a
// verdict on the shop.
var ErrSource = errors.New("order source")

// answer is an order as a source writes it: amounts as text or numbers.
type answer struct {
	Ref      any    `json:"ref"`
	Amount   any    `json:"amount"`
	Currency string `json:"currency"`
	Field    string `json:"field"`
}

// Parse checks an order as a source gives it (the columns of a SQL
// source: ref, amount, currency and, optionally, field).
func Parse(ref, amount, currency, field string) (Order, error) {
	return answer{Ref: ref, Amount: amount, Currency: currency, Field: field}.order()
}

// order checks an answer and turns it into an Order.
func (a answer) order() (Order, error) {
	var o Order
	switch ref := a.Ref.(type) {
	case string:
		o.Ref = ref
	case float64:
		o.Ref = strings.TrimSuffix(fmt.Sprintf("%.0f", ref), ".0")
	}
	if strings.TrimSpace(o.Ref) == "" {
		return Order{}, errors.New("no ref: want the order's reference, as the message must name it")
	}
	amount, err := generate.ParseMoney(strings.TrimSpace(fmt.Sprint(a.Amount)))
	if a.Amount == nil || err != nil || amount <= 0 {
		return Order{}, fmt.Errorf("amount %v: want a positive amount such as \"25.00\"", a.Amount)
	}
	o.Amount = amount
	o.Currency = strings.ToUpper(strings.TrimSpace(a.Currency))
	if len(o.Currency) != 3 {
		return Order{}, fmt.Errorf("currency %q: want a three-letter code such as USD", a.Currency)
	}
	o.Field = strings.TrimSpace(a.Field)
	if o.Field == "" {
		o.Field = "invoice"
	}
	if !slices.Contains(Fields, o.Field) {
		return Order{}, fmt.Errorf("field %q: want %s", a.Field, strings.Join(Fields, ", "))
	}
	return o, nil
}

func sourceErr(src Source, err error) error {
	return fmt.Errorf("%w %s: %w", ErrSource, src, err)
}
