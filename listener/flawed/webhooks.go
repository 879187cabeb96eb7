package flawed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// The PayPal REST webhook bugs: decorations of the listener's
// WebhookVerifier, its handler and its rules.

// webhookVerifiers are the verification bugs of REST webhooks.
var webhookVerifiers = map[mutants.Name]func(listener.WebhookVerifier) listener.WebhookVerifier{
	mutants.WebhookUnverified:   func(listener.WebhookVerifier) listener.WebhookVerifier { return trustingWebhooks{} },
	mutants.WebhookReserialized: func(v listener.WebhookVerifier) listener.WebhookVerifier { return reserializing{v} },
	mutants.WebhookAcceptMock:   func(v listener.WebhookVerifier) listener.WebhookVerifier { return acceptingMock{v} },
}

// webhookRules are the business-rule bugs of REST webhooks.
var webhookRules = map[mutants.Name]func(*env, listener.Rules) listener.Rules{
	mutants.WebhookCreditPending: decorate(func(d *listener.Delivery, next listener.Rules) error {
		if e := d.Webhook; e != nil && e.EventType == "PAYMENT.CAPTURE.PENDING" {
			e.EventType, e.Resource.Status = "PAYMENT.CAPTURE.COMPLETED", "COMPLETED"
		}
		return next.Apply(d)
	}),
	mutants.WebhookFulfilOrder: decorate(func(d *listener.Delivery, next listener.Rules) error {
		if e := d.Webhook; e != nil && e.EventType == "CHECKOUT.ORDER.APPROVED" && len(e.Resource.PurchaseUnits) > 0 {
			// The order taken for its capture.
			pu := e.Resource.PurchaseUnits[0]
			e.EventType, e.ResourceType, e.Resource.Status = "PAYMENT.CAPTURE.COMPLETED", "capture", "COMPLETED"
			e.Resource.Amount, e.Resource.CustomID = pu.Amount, pu.CustomID
		}
		return next.Apply(d)
	}),
	mutants.WebhookIgnoreRefunds: ignoringEvent("PAYMENT.CAPTURE.REFUNDED", nil),
	mutants.WebhookIgnoreReverse: ignoringEvent("PAYMENT.CAPTURE.REVERSED", nil),
	mutants.WebhookDropEarly: ignoringEvent("PAYMENT.CAPTURE.REFUNDED", func(d *listener.Delivery) (bool, error) {
		credited, err := d.Tx.HasEntry(listener.PayPalREST, d.Webhook.Parent(), "COMPLETED")
		return !credited, err
	}),
}

// ignoringEvent logs and ignores the events of eventType (those when
// says, if set); the rest goes to the reference rules.
func ignoringEvent(eventType string, when func(*listener.Delivery) (bool, error)) func(*env, listener.Rules) listener.Rules {
	return decorate(func(d *listener.Delivery, next listener.Rules) error {
		if e := d.Webhook; e == nil || e.EventType != eventType {
			return next.Apply(d)
		}
		if when != nil {
			ignore, err := when(d)
			if err != nil {
				return err
			}
			if !ignore {
				return next.Apply(d)
			}
		}
		return d.Log(d.Txn, d.Kind, d.Status, "ignored", eventType+": not handled")
	})
}

// trustingWebhooks takes every webhook for genuine.
type trustingWebhooks struct{}

func (trustingWebhooks) VerifyWebhook(context.Context, http.Header, []byte) error { return nil }

// reserializing verifies the event parsed and written again, keys in
// their order (JSON.parse then JSON.stringify): escapes come out written
// otherwise, and the CRC32 is not the sent body's.
type reserializing struct{ inner listener.WebhookVerifier }

func (r reserializing) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	if o, err := orderedjson.Parse(body); err == nil {
		if again, err := o.MarshalJSON(); err == nil {
			body = again
		}
	}
	return r.inner.VerifyWebhook(ctx, h, body)
}

// acceptingMock tries the simulator's WEBHOOK_ID when its own webhook id
// fails: a "test mode" left on.
type acceptingMock struct{ inner listener.WebhookVerifier }

func (a acceptingMock) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	err := a.inner.VerifyWebhook(ctx, h, body)
	self, ok := a.inner.(*listener.SelfVerifier)
	if !errors.Is(err, listener.ErrNotGenuine) || !ok {
		return err
	}
	mock := &listener.SelfVerifier{WebhookID: "WEBHOOK_ID", APIURL: self.APIURL, CertHosts: self.CertHosts, Roots: self.Roots, Client: self.Client, Timeout: self.Timeout}
	if mockErr := mock.VerifyWebhook(ctx, h, body); mockErr == nil {
		return nil
	}
	return err
}

// handledWebhooks are the event types the reference rules act on.
var handledWebhooks = map[string]bool{
	"PAYMENT.CAPTURE.COMPLETED": true, "PAYMENT.CAPTURE.PENDING": true, "PAYMENT.CAPTURE.DENIED": true,
	"PAYMENT.CAPTURE.REFUNDED": true, "PAYMENT.CAPTURE.REVERSED": true,
}

// rejectUnknownWebhooks answers 400 to a webhook of a type the rules do
// not act on.
func rejectUnknownWebhooks(_ *env, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != listener.PayPalRESTPath || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, listener.MaxBody+1))
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		var e struct {
			EventType string `json:"event_type"`
		}
		if o, perr := orderedjson.Parse(body); err == nil && perr == nil {
			if t, ok := o.Get("event_type"); ok {
				e.EventType, _ = t.(string)
			}
			if !handledWebhooks[e.EventType] {
				http.Error(w, fmt.Sprintf("unhandled event type %q", e.EventType), http.StatusBadRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
