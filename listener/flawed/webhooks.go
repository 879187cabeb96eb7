package flawed

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// The PayPal REST webhook bugs: decorations of the listener's
// WebhookVerifier, its handler and its rules.

// webhookVerifiers are the verification bugs of REST webhooks.
var webhookVerifiers = map[mutants.Name]func(listener.WebhookVerifier) listener.WebhookVerifier{
	mutants.WebhookUnverified:   func(listener.WebhookVerifier) listener.WebhookVerifier { return trustingWebhooks{} },
	mutants.WebhookReserialized: func(v listener.WebhookVerifier) listener.WebhookVerifier { return reserializing{v} },
	mutants.WebhookAcceptMock:   func(v listener.WebhookVerifier) listener.WebhookVerifier { return acceptingMock{v} },
	mutants.WebhookAnyCertURL:   func(v listener.WebhookVerifier) listener.WebhookVerifier { return anyCertURL{v} },
	mutants.WebhookCertOnce:     func(v listener.WebhookVerifier) listener.WebhookVerifier { return &certOnce{inner: v} },
	mutants.WebhookImplicit2xx:  func(v listener.WebhookVerifier) listener.WebhookVerifier { return droppingErrors{v} },
	mutants.WebhookEventIDAsID:  func(v listener.WebhookVerifier) listener.WebhookVerifier { return eventIDAsWebhookID{v} },
	mutants.WebhookCRC32Hex:     func(v listener.WebhookVerifier) listener.WebhookVerifier { return crcHex{v} },
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
	mutants.WebhookIgnoreDispute: ignoringEvent("CUSTOMER.DISPUTE.RESOLVED", nil),
	mutants.WebhookIgnoreSales: decorate(func(d *listener.Delivery, next listener.Rules) error {
		if e := d.Webhook; e != nil && strings.HasPrefix(e.EventType, "PAYMENT.SALE.") {
			return d.Log(d.Txn, d.Kind, d.Status, "ignored", e.EventType+": not handled (captures only)")
		}
		return next.Apply(d)
	}),
	mutants.WebhookAnyDispute: decorate(func(d *listener.Delivery, next listener.Rules) error {
		if e := d.Webhook; e != nil && e.EventType == "CUSTOMER.DISPUTE.RESOLVED" && e.Resource.DisputeOutcome != nil {
			e.Resource.DisputeOutcome.OutcomeCode = "RESOLVED_BUYER_FAVOUR" // the outcome never read
		}
		return next.Apply(d)
	}),
	mutants.WebhookDisputeAgain:  decorate(debitDispute),
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
	if mockErr := verifierFor(self, "WEBHOOK_ID").VerifyWebhook(ctx, h, body); mockErr == nil {
		return nil
	}
	return err
}

// handledWebhooks are the event types the reference rules act on.
var handledWebhooks = map[string]bool{
	"PAYMENT.CAPTURE.COMPLETED": true, "PAYMENT.CAPTURE.PENDING": true, "PAYMENT.CAPTURE.DENIED": true,
	"PAYMENT.CAPTURE.REFUNDED": true, "PAYMENT.CAPTURE.REVERSED": true, "PAYMENT.SALE.COMPLETED": true,
	"PAYMENT.SALE.REFUNDED": true, "PAYMENT.SALE.REVERSED": true, "CUSTOMER.DISPUTE.RESOLVED": true,
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

// anyCertURL fetches the certificate a PAYPAL-CERT-URL names when the URL
// mentions paypal.com (a substring check), from that URL as given, and
// trusts what it gets: no host allowlist, no chain. A URL on PayPal's
// hosts goes to the listener's own verifier.
type anyCertURL struct{ inner listener.WebhookVerifier }

func (a anyCertURL) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	self, ok := a.inner.(*listener.SelfVerifier)
	u, err := url.Parse(h.Get(listener.HeaderCertURL))
	if !ok || err != nil || slices.Contains(self.CertHosts, u.Hostname()) || !strings.Contains(u.String(), "paypal.com") {
		return a.inner.VerifyWebhook(ctx, h, body)
	}
	t, err := listener.TransmissionOf(h)
	if err != nil {
		return fmt.Errorf("%w: %v", listener.ErrNotGenuine, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := self.Client.Do(req)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	block, _ := pem.Decode(raw)
	if block == nil {
		return fmt.Errorf("%w: no certificate at %s", listener.ErrNotGenuine, u)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%w: %v", listener.ErrNotGenuine, err)
	}
	return signedBy(cert, listener.SignedString(t, self.WebhookID, body), t.Sig)
}

// certOnce keeps the certificate of the first event it verified and
// verifies every later event with it, whatever URL the event names.
type certOnce struct {
	inner listener.WebhookVerifier
	mu    sync.Mutex
	first string
}

func (c *certOnce) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	c.mu.Lock()
	first := c.first
	c.mu.Unlock()
	if first == "" {
		err := c.inner.VerifyWebhook(ctx, h, body)
		if err == nil {
			c.mu.Lock()
			if c.first == "" {
				c.first = h.Get(listener.HeaderCertURL)
			}
			c.mu.Unlock()
		}
		return err
	}
	h = h.Clone()
	h.Set(listener.HeaderCertURL, first)
	return c.inner.VerifyWebhook(ctx, h, body)
}

// droppingErrors takes a verification that could not be done for a
// failed one: the event, acknowledged already, is dropped.
type droppingErrors struct{ inner listener.WebhookVerifier }

func (d droppingErrors) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	err := d.inner.VerifyWebhook(ctx, h, body)
	if err != nil && !errors.Is(err, listener.ErrNotGenuine) {
		return fmt.Errorf("%w: %v (dropped)", listener.ErrNotGenuine, err)
	}
	return err
}

// eventIDAsWebhookID verifies with the event's own id as the webhook id.
type eventIDAsWebhookID struct{ inner listener.WebhookVerifier }

func (e eventIDAsWebhookID) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	self, ok := e.inner.(*listener.SelfVerifier)
	o, err := orderedjson.Parse(body)
	if !ok || err != nil {
		return e.inner.VerifyWebhook(ctx, h, body)
	}
	id, _ := o.Get("id")
	s, _ := id.(string)
	return verifierFor(self, s).VerifyWebhook(ctx, h, body)
}

// verifierFor is the listener's own verifier, checking signatures for
// webhookID instead of its webhook's.
func verifierFor(self *listener.SelfVerifier, webhookID string) *listener.SelfVerifier {
	return &listener.SelfVerifier{WebhookID: webhookID, APIURL: self.APIURL, CertHosts: self.CertHosts, Roots: self.Roots,
		Client: self.Client, Timeout: self.Timeout}
}

// crcHex checks the signature over a string with the body's CRC32 in
// hexadecimal.
type crcHex struct{ inner listener.WebhookVerifier }

func (c crcHex) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	self, ok := c.inner.(*listener.SelfVerifier)
	t, err := listener.TransmissionOf(h)
	if !ok || err != nil {
		return c.inner.VerifyWebhook(ctx, h, body)
	}
	cert, err := self.Certificate(ctx, t.CertURL)
	if err != nil {
		return err
	}
	return signedBy(cert, fmt.Sprintf("%s|%s|%s|%x", t.ID, t.Time, self.WebhookID, crc32.ChecksumIEEE(body)), t.Sig)
}

// signedBy checks a base64 SHA256withRSA signature of signed by cert's
// key.
func signedBy(cert *x509.Certificate, signed, sig string) error {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	raw, err := base64.StdEncoding.DecodeString(sig)
	sum := sha256.Sum256([]byte(signed))
	if !ok || err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], raw) != nil {
		return fmt.Errorf("%w: the signature does not verify", listener.ErrNotGenuine)
	}
	return nil
}

// debitDispute debits a lost dispute under its own id: a chargeback
// PayPal also reports as PAYMENT.CAPTURE.REVERSED is then debited twice.
func debitDispute(d *listener.Delivery, next listener.Rules) error {
	e := d.Webhook
	if e == nil || e.EventType != "CUSTOMER.DISPUTE.RESOLVED" || e.Resource.DisputeOutcome == nil ||
		e.Resource.DisputeOutcome.OutcomeCode != "RESOLVED_BUYER_FAVOUR" || e.Resource.DisputeAmount == nil {
		return next.Apply(d)
	}
	capture, seen, err := knownTxn(d, listener.PayPalREST, e.Parent())
	if err != nil {
		return err
	}
	amount, perr := listener.Cents(e.Resource.DisputeAmount.Value)
	if !seen || capture.Customer == "" || perr != nil {
		return next.Apply(d)
	}
	if _, err := d.Tx.AddEntry(store.Entry{Provider: listener.PayPalREST, TxnID: e.Resource.ID, Status: "LOST", Customer: capture.Customer,
		Amount: -amount, Currency: capture.Currency, ParentID: capture.TxnID, InboxID: d.Item.ID, At: d.At}); err != nil {
		return err
	}
	return d.Log(d.Txn, d.Kind, d.Status, "debited", "the lost dispute, as a debit of its own")
}
