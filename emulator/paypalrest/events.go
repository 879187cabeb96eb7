package paypalrest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/ipnlab/ipnlab/orderedjson"
)

// An event kind: what PayPal's event of that type carries, as its
// published OpenAPI documents shape the resource.
type kind struct {
	Type         string // event_type
	ResourceType string
	Description  string
	// Status is the resource's status, Summary PayPal's sentence
	// ("Payment completed for $ 5.00 USD").
	Status, Summary string
	// Reason is the capture's status_details.reason ("" for none).
	Reason string
}

// kinds are the events this provider sends.
var kinds = []kind{
	{"PAYMENT.CAPTURE.COMPLETED", "capture", "a capture completed: the money is the merchant's", "COMPLETED", "Payment completed for %s", ""},
	{"PAYMENT.CAPTURE.PENDING", "capture", "a capture pending (an eCheck, a review): nothing to fulfil yet", "PENDING", "Payment pending for %s", "PENDING_REVIEW"},
	{"PAYMENT.CAPTURE.DENIED", "capture", "a pending capture denied: it never completes", "DECLINED", "Payment denied for %s", ""},
	{"PAYMENT.CAPTURE.REFUNDED", "refund", "a capture refunded by the merchant (the resource is the refund)", "COMPLETED", "A %s capture payment was refunded", ""},
	{"PAYMENT.CAPTURE.REVERSED", "capture", "a capture reversed by PayPal (a chargeback): the money goes back", "REVERSED", "A %s capture payment was reversed", "CHARGEBACK"},
	{"CHECKOUT.ORDER.APPROVED", "checkout-order", "an order the buyer approved: not paid until it is captured", "APPROVED", "An order has been approved by buyer", ""},
	{"PAYMENT.AUTHORIZATION.CREATED", "authorization", "an authorization: money held, not paid until captured", "CREATED", "Payment authorization created for %s", ""},
	{"PAYMENT.AUTHORIZATION.VOIDED", "authorization", "an authorization voided: it will never be captured", "VOIDED", "A payment authorization was voided", ""},
	{"PAYMENT.SALE.COMPLETED", "sale", "a sale (v1 payments, a subscription's payment) completed: the money is the merchant's", "completed", "Payment completed for %s", ""},
	{"PAYMENT.SALE.REFUNDED", "refund", "a sale refunded (the resource is the v1 refund, its sale in sale_id)", "completed", "A %s sale payment was refunded", ""},
	{"PAYMENT.SALE.REVERSED", "sale", "a sale reversed by PayPal (a chargeback)", "reversed", "A %s sale payment was reversed", ""},
	{"CUSTOMER.DISPUTE.CREATED", "dispute", "a buyer opened a dispute (an inquiry) about a capture", "OPEN", "A new dispute opened with Case # %s", "INQUIRY"},
	{"CUSTOMER.DISPUTE.UPDATED", "dispute", "a dispute escalated to a chargeback", "UNDER_REVIEW", "A dispute was updated with Case # %s", "CHARGEBACK"},
	{"CUSTOMER.DISPUTE.RESOLVED", "dispute", "a dispute resolved, in the buyer's favour (the merchant loses the amount) or, with outcome RESOLVED_SELLER_FAVOUR, the merchant's", "RESOLVED", "A dispute was resolved with case # %s", "CHARGEBACK"},
	{"BILLING.SUBSCRIPTION.CREATED", "subscription", "a subscription created, waiting for the buyer's approval", "APPROVAL_PENDING", "Subscription created", ""},
	{"BILLING.SUBSCRIPTION.ACTIVATED", "subscription", "a subscription activated: its payments come as PAYMENT.SALE.COMPLETED", "ACTIVE", "Subscription activated", ""},
	{"BILLING.SUBSCRIPTION.PAYMENT.FAILED", "subscription", "a subscription's payment failed: nothing was paid", "ACTIVE", "Subscription payment failed", ""},
	{"BILLING.SUBSCRIPTION.SUSPENDED", "subscription", "a subscription suspended (failed payments)", "SUSPENDED", "Subscription suspended", ""},
	{"BILLING.SUBSCRIPTION.CANCELLED", "subscription", "a subscription cancelled", "CANCELLED", "Subscription cancelled", ""},
}

// KindNames lists the event types this provider sends.
func KindNames() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.Type
	}
	return out
}

func lookupKind(eventType string) (kind, bool) {
	i := slices.IndexFunc(kinds, func(k kind) bool { return k.Type == eventType })
	if i < 0 {
		return kind{}, false
	}
	return kinds[i], true
}

// Event is one generated webhook event: its id, type and the exact bytes
// every subscription gets.
type Event struct {
	ID       string
	Type     string
	Resource string // the resource's id
	Body     []byte
	// Signed, if set, is what its signatures are over instead of Body: a
	// forgery (SendRequest.Tamper).
	Signed []byte
	// Foreign events are signed by the attacker's key (SendRequest.Tamper).
	Foreign bool
}

// eventParams pins values of one event; zero values are drawn.
type eventParams struct {
	Amount   string // "10.00"
	Currency string
	CustomID string
	Parent   string // a refund's or reversal's capture
	// ResourceID pins the resource's id (drawn when empty).
	ResourceID string
	// Quirks escapes what JSON may escape: non-ASCII text in the summary,
	// slashes in the links.
	Quirks bool
	// Outcome is a resolved dispute's outcome_code (default
	// RESOLVED_BUYER_FAVOUR: the merchant loses the amount).
	Outcome string
	// Subscription is the subscription a sale pays (its
	// billing_agreement_id; "" for none).
	Subscription string
}

// ids draws PayPal-looking ids from a seeded source.
type ids struct{ r *rand.Rand }

const idChars = "0123456789ABCDEFGHJKLMNPRSTUVWXY"

func (g ids) upper(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(idChars[g.r.IntN(len(idChars))])
	}
	return b.String()
}

// event is WH-<17>-<17>, a capture or refund 17 upper-case characters.
func (g ids) event() string { return "WH-" + g.upper(17) + "-" + g.upper(17) }

// generateEvent makes the event of type eventType at time at, from seed,
// its host the sandbox's or the live API's. The body is byte-exact, in
// PayPal's key order, compact, with non-ASCII text as UTF-8 (a payer's
// name), an empty object and an empty array: what PHP's associative
// decode ({} becomes []) and a Go map (keys sorted) change when a
// listener re-serializes the event, and what JavaScript's JSON.parse and
// JSON.stringify keep (PayPal's Node SDK verifies that way).
func generateEvent(seed uint64, eventType string, at time.Time, live bool, p eventParams) (Event, error) {
	k, ok := lookupKind(eventType)
	if !ok {
		return Event{}, fmt.Errorf("event type %q: want one of %s", eventType, strings.Join(KindNames(), ", "))
	}
	g := ids{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	host := "https://api.sandbox.paypal.com"
	if live {
		host = "https://api.paypal.com"
	}
	if p.Currency == "" {
		p.Currency = []string{"USD", "USD", "USD", "EUR", "GBP"}[g.r.IntN(5)]
	}
	if p.Amount == "" {
		p.Amount = fmt.Sprintf("%d.%02d", 1+g.r.IntN(300), g.r.IntN(100))
	}
	if p.CustomID == "" {
		p.CustomID = "order-" + strings.ToLower(g.upper(8))
	}
	gross, err := cents(p.Amount)
	if err != nil {
		return Event{}, err
	}
	fee := gross*349/10000 + 49
	if fee > gross {
		fee = gross
	}
	created := at.Add(-time.Duration(5+g.r.IntN(20)) * time.Second).UTC()
	stamp := created.Format(time.RFC3339)
	money := func(c int64) orderedjson.Object {
		return orderedjson.Object{{Key: "currency_code", Value: p.Currency}, {Key: "value", Value: formatCents(c)}}
	}
	id := g.upper(17)
	if p.ResourceID != "" {
		id = p.ResourceID
	}
	e := Event{ID: g.event(), Type: k.Type, Resource: id}
	var resource orderedjson.Object
	var summary string
	version := "2.0" // Payments and Orders v2; v1 for sales
	switch k.ResourceType {
	case "checkout-order":
		summary = k.Summary
		resource = orderedjson.Object{
			{Key: "id", Value: id},
			{Key: "intent", Value: "CAPTURE"},
			{Key: "status", Value: k.Status},
			{Key: "purchase_units", Value: []any{orderedjson.Object{
				{Key: "reference_id", Value: "default"},
				{Key: "amount", Value: money(gross)},
				{Key: "payee", Value: orderedjson.Object{{Key: "email_address", Value: "merchant@example.com"}}},
				{Key: "custom_id", Value: p.CustomID},
				{Key: "items", Value: []any{}},
				{Key: "description", Value: "Café order"},
			}}},
			{Key: "payer", Value: orderedjson.Object{
				{Key: "name", Value: orderedjson.Object{{Key: "given_name", Value: "Zoë"}, {Key: "surname", Value: "Ng"}}},
				{Key: "email_address", Value: "buyer-" + strings.ToLower(g.upper(6)) + "@example.com"},
				{Key: "payer_id", Value: g.upper(13)},
			}},
			{Key: "create_time", Value: stamp},
			{Key: "links", Value: []any{link(host+"/v2/checkout/orders/"+id, "self", "GET")}},
		}
	case "authorization":
		summary = k.Summary
		if strings.Contains(summary, "%s") {
			summary = fmt.Sprintf(summary, symbol(p.Currency)+" "+formatCents(gross)+" "+p.Currency)
		}
		order := g.upper(17)
		resource = orderedjson.Object{
			{Key: "id", Value: id},
			{Key: "status", Value: k.Status},
			{Key: "amount", Value: money(gross)},
			{Key: "invoice_id", Value: ""},
			{Key: "custom_id", Value: p.CustomID},
			{Key: "seller_protection", Value: orderedjson.Object{{Key: "status", Value: "ELIGIBLE"}, {Key: "dispute_categories", Value: []any{"ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"}}}},
			{Key: "supplementary_data", Value: orderedjson.Object{{Key: "related_ids", Value: orderedjson.Object{{Key: "order_id", Value: order}}}}},
			{Key: "expiration_time", Value: created.Add(29 * 24 * time.Hour).Format(time.RFC3339)},
			{Key: "create_time", Value: stamp},
			{Key: "update_time", Value: stamp},
			{Key: "links", Value: []any{
				link(host+"/v2/payments/authorizations/"+id, "self", "GET"),
				link(host+"/v2/payments/authorizations/"+id+"/capture", "capture", "POST"),
				link(host+"/v2/payments/authorizations/"+id+"/void", "void", "POST"),
				link(host+"/v2/checkout/orders/"+order, "up", "GET"),
			}},
		}
	case "sale":
		version = "1.0"
		summary = fmt.Sprintf(k.Summary, symbol(p.Currency)+" "+formatCents(gross)+" "+p.Currency)
		payment := "PAYID-" + g.upper(24)
		resource = orderedjson.Object{
			{Key: "id", Value: id},
			{Key: "state", Value: k.Status},
			{Key: "amount", Value: orderedjson.Object{{Key: "total", Value: formatCents(gross)}, {Key: "currency", Value: p.Currency},
				{Key: "details", Value: orderedjson.Object{{Key: "subtotal", Value: formatCents(gross)}}}}},
			{Key: "payment_mode", Value: "INSTANT_TRANSFER"},
			{Key: "protection_eligibility", Value: "ELIGIBLE"},
			{Key: "protection_eligibility_type", Value: "ITEM_NOT_RECEIVED_ELIGIBLE,UNAUTHORIZED_PAYMENT_ELIGIBLE"},
			{Key: "transaction_fee", Value: orderedjson.Object{{Key: "value", Value: formatCents(fee)}, {Key: "currency", Value: p.Currency}}},
		}
		if p.Subscription != "" {
			resource = append(resource, orderedjson.Member{Key: "billing_agreement_id", Value: p.Subscription})
		}
		resource = append(resource,
			orderedjson.Member{Key: "custom", Value: p.CustomID},
			orderedjson.Member{Key: "parent_payment", Value: payment},
			orderedjson.Member{Key: "create_time", Value: stamp},
			orderedjson.Member{Key: "update_time", Value: stamp},
			orderedjson.Member{Key: "links", Value: []any{
				link(host+"/v1/payments/sale/"+id, "self", "GET"),
				link(host+"/v1/payments/sale/"+id+"/refund", "refund", "POST"),
				link(host+"/v1/payments/payment/"+payment, "parent_payment", "GET"),
			}})
	case "dispute":
		id = fmt.Sprintf("PP-D-%d", 10000+g.r.IntN(90000))
		if p.ResourceID != "" {
			id = p.ResourceID
		}
		e.Resource = id
		summary = fmt.Sprintf(k.Summary, id)
		capture := p.Parent
		if capture == "" {
			capture = g.upper(17)
		}
		resource = orderedjson.Object{
			{Key: "dispute_id", Value: id},
			{Key: "create_time", Value: stamp},
			{Key: "update_time", Value: stamp},
			{Key: "disputed_transactions", Value: []any{orderedjson.Object{
				{Key: "seller_transaction_id", Value: capture},
				{Key: "create_time", Value: stamp},
				{Key: "transaction_status", Value: "COMPLETED"},
				{Key: "gross_amount", Value: money(gross)},
				{Key: "custom", Value: p.CustomID},
				{Key: "seller", Value: orderedjson.Object{{Key: "merchant_id", Value: "LABMERCHANT01"}}},
			}}},
			{Key: "reason", Value: "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"},
			{Key: "status", Value: k.Status},
			{Key: "dispute_amount", Value: money(gross)},
		}
		if k.Status == "RESOLVED" {
			outcome := p.Outcome
			if outcome == "" {
				outcome = "RESOLVED_BUYER_FAVOUR"
			}
			resource = append(resource, orderedjson.Member{Key: "dispute_outcome", Value: orderedjson.Object{{Key: "outcome_code", Value: outcome}}})
		}
		resource = append(resource,
			orderedjson.Member{Key: "dispute_life_cycle_stage", Value: k.Reason},
			orderedjson.Member{Key: "dispute_channel", Value: "INTERNAL"},
			orderedjson.Member{Key: "messages", Value: []any{}},
			orderedjson.Member{Key: "links", Value: []any{link(host+"/v1/customer/disputes/"+id, "self", "GET")}})
	case "subscription":
		id = "I-" + g.upper(12)
		if p.ResourceID != "" {
			id = p.ResourceID
		}
		e.Resource = id
		summary = k.Summary
		failed := 0
		if k.Type == "BILLING.SUBSCRIPTION.PAYMENT.FAILED" || k.Status == "SUSPENDED" {
			failed = 1
		}
		resource = orderedjson.Object{
			{Key: "id", Value: id},
			{Key: "plan_id", Value: "P-" + g.upper(24)},
			{Key: "start_time", Value: stamp},
			{Key: "quantity", Value: "1"},
			{Key: "subscriber", Value: orderedjson.Object{
				{Key: "name", Value: orderedjson.Object{{Key: "given_name", Value: "Zoë"}, {Key: "surname", Value: "Ng"}}},
				{Key: "email_address", Value: "buyer-" + strings.ToLower(g.upper(6)) + "@example.com"},
				{Key: "payer_id", Value: g.upper(13)},
			}},
			{Key: "billing_info", Value: orderedjson.Object{
				{Key: "outstanding_balance", Value: money(0)},
				{Key: "cycle_executions", Value: []any{orderedjson.Object{{Key: "tenure_type", Value: "REGULAR"}, {Key: "sequence", Value: 1},
					{Key: "cycles_completed", Value: 0}, {Key: "cycles_remaining", Value: 0}, {Key: "total_cycles", Value: 0}}}},
				{Key: "failed_payments_count", Value: failed},
			}},
			{Key: "custom_id", Value: p.CustomID},
			{Key: "plan_overridden", Value: false},
			{Key: "create_time", Value: stamp},
			{Key: "update_time", Value: stamp},
			{Key: "status", Value: k.Status},
			{Key: "status_update_time", Value: stamp},
			{Key: "links", Value: []any{link(host+"/v1/billing/subscriptions/"+id, "self", "GET")}},
		}
	case "refund":
		parent := p.Parent
		if parent == "" {
			parent = g.upper(17)
		}
		summary = fmt.Sprintf(k.Summary, strings.TrimSuffix(formatCents(gross), ".00")+" "+p.Currency)
		if k.Type == "PAYMENT.SALE.REFUNDED" {
			// A v1 refund: its sale in sale_id.
			version = "1.0"
			payment := "PAYID-" + g.upper(24)
			resource = orderedjson.Object{
				{Key: "id", Value: id},
				{Key: "state", Value: k.Status},
				{Key: "amount", Value: orderedjson.Object{{Key: "total", Value: formatCents(gross)}, {Key: "currency", Value: p.Currency}}},
				{Key: "sale_id", Value: parent},
				{Key: "parent_payment", Value: payment},
				{Key: "custom", Value: p.CustomID},
				{Key: "create_time", Value: stamp},
				{Key: "update_time", Value: stamp},
				{Key: "links", Value: []any{
					link(host+"/v1/payments/refund/"+id, "self", "GET"),
					link(host+"/v1/payments/payment/"+payment, "parent_payment", "GET"),
					link(host+"/v1/payments/sale/"+parent, "sale", "GET"),
				}},
			}
			break
		}
		resource = orderedjson.Object{
			{Key: "id", Value: id},
			{Key: "amount", Value: money(gross)},
			{Key: "seller_payable_breakdown", Value: orderedjson.Object{
				{Key: "gross_amount", Value: money(gross)},
				{Key: "paypal_fee", Value: money(0)},
				{Key: "net_amount", Value: money(gross)},
				{Key: "total_refunded_amount", Value: money(gross)},
			}},
			{Key: "invoice_id", Value: ""},
			{Key: "custom_id", Value: p.CustomID},
			{Key: "status", Value: k.Status},
			{Key: "create_time", Value: stamp},
			{Key: "update_time", Value: stamp},
			{Key: "links", Value: []any{
				link(host+"/v2/payments/refunds/"+id, "self", "GET"),
				link(host+"/v2/payments/captures/"+parent, "up", "GET"),
			}},
		}
	default: // capture
		// PayPal's summary writes whole amounts with one decimal ("$ 100.0").
		shown := formatCents(gross)
		if strings.HasSuffix(shown, ".00") {
			shown = strings.TrimSuffix(shown, "0")
		}
		summary = fmt.Sprintf(k.Summary, symbol(p.Currency)+" "+shown+" "+p.Currency)
		order := g.upper(17)
		if p.Parent != "" {
			order = p.Parent // the order it captures (approved, then captured)
		}
		resource = orderedjson.Object{
			{Key: "id", Value: id},
			{Key: "amount", Value: money(gross)},
			{Key: "final_capture", Value: true},
			{Key: "seller_protection", Value: orderedjson.Object{
				{Key: "status", Value: "ELIGIBLE"},
				{Key: "dispute_categories", Value: []any{"ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"}},
			}},
			{Key: "seller_receivable_breakdown", Value: orderedjson.Object{
				{Key: "gross_amount", Value: money(gross)},
				{Key: "paypal_fee", Value: money(fee)},
				{Key: "net_amount", Value: money(gross - fee)},
			}},
			{Key: "custom_id", Value: p.CustomID},
			{Key: "status", Value: k.Status},
		}
		if k.Reason != "" {
			resource = append(resource, orderedjson.Member{Key: "status_details", Value: orderedjson.Object{{Key: "reason", Value: k.Reason}}})
		}
		resource = append(resource,
			orderedjson.Member{Key: "supplementary_data", Value: orderedjson.Object{{Key: "related_ids", Value: orderedjson.Object{{Key: "order_id", Value: order}}}}},
			orderedjson.Member{Key: "disbursement_mode", Value: "INSTANT"},
			// Empty: PHP's json_decode($body, true) turns {} into [].
			orderedjson.Member{Key: "processor_response", Value: orderedjson.Object{}},
			orderedjson.Member{Key: "create_time", Value: stamp},
			orderedjson.Member{Key: "update_time", Value: stamp},
			orderedjson.Member{Key: "links", Value: []any{
				link(host+"/v2/payments/captures/"+id, "self", "GET"),
				link(host+"/v2/payments/captures/"+id+"/refund", "refund", "POST"),
				link(host+"/v2/checkout/orders/"+order, "up", "GET"),
			}},
		)
	}
	envelope := orderedjson.Object{
		{Key: "id", Value: e.ID},
		{Key: "create_time", Value: at.UTC().Format("2006-01-02T15:04:05.000Z")},
		{Key: "resource_type", Value: k.ResourceType},
		{Key: "event_type", Value: k.Type},
		{Key: "summary", Value: text(summary, p.Quirks)},
		{Key: "resource", Value: resource},
		{Key: "links", Value: []any{
			linkEnc(text(host+"/v1/notifications/webhooks-events/"+e.ID, p.Quirks), "self", "GET"),
			linkEnc(text(host+"/v1/notifications/webhooks-events/"+e.ID+"/resend", p.Quirks), "resend", "POST"),
		}},
		{Key: "event_version", Value: "1.0"},
		{Key: "resource_version", Value: version},
	}
	if e.Body, err = envelope.MarshalJSON(); err != nil {
		return Event{}, fmt.Errorf("event %s: %w", k.Type, err)
	}
	return e, nil
}

func link(href any, rel, method string) orderedjson.Object {
	return orderedjson.Object{{Key: "href", Value: href}, {Key: "rel", Value: rel}, {Key: "method", Value: method}}
}

func linkEnc(href any, rel, method string) orderedjson.Object {
	return append(link(href, rel, method), orderedjson.Member{Key: "encType", Value: "application/json"})
}

func symbol(currency string) string {
	switch currency {
	case "USD":
		return "$"
	case "EUR":
		return "€"
	case "GBP":
		return "£"
	}
	return currency
}

// cents reads an amount with at most two decimals.
func cents(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("amount %q: want a positive amount with at most two decimals, such as 10.00", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	var c int64
	for _, d := range whole + frac {
		c = c*10 + int64(d-'0')
		if c > 1e13 {
			return 0, fmt.Errorf("amount %q: too large", s)
		}
	}
	return c, nil
}

func formatCents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// text is s as a JSON string: plain, or with quirks every non-ASCII
// character written \uXXXX and every slash \/ (valid JSON that a parse
// and re-serialization writes otherwise).
func text(s string, quirks bool) any {
	if !quirks {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '/':
			b.WriteString(`\/`)
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return json.RawMessage(b.String())
}
