// Package webhookchecks is the conformance suite's PW- checks: PayPal
// REST webhooks, judged by sending signed events from the emulator's
// paypalrest provider (a plug-in like any other) to the listener's
// webhook endpoint. Importing it registers them (conformance.Register);
// Configure adds the provider and the endpoint to a run.
package webhookchecks

import (
	"embed"
	"fmt"
	"strings"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

//go:embed scenarios/*.yaml
var files embed.FS

// check is one PW- check: its sentence, where the sentence comes from,
// and its scenario's file.
type check struct {
	id, requirement, source, scenario string
	level                             conformance.Level
	labels                            []string
	// exclusive: it rotates the signing key, which every later event of
	// the session names (conformance.Check.Exclusive).
	exclusive bool
}

// The sources the sentences rest on (../shared/protocol.md, "PayPal REST
// webhooks").
const (
	srcDelivery = "PayPal, Webhooks: delivery is retried until a 2xx, up to 25 times over 3 days"
	srcVerify   = "PayPal, Verify webhook signatures: the CRC32 of the raw event body, the transmission id and time and the webhook id, signed with SHA256withRSA"
	srcSim      = "PayPal, Webhooks simulator: mock events are signed for WEBHOOK_ID and cannot be verified by the API"
	srcEvents   = "PayPal, Webhook event names: PAYMENT.CAPTURE.*, PAYMENT.SALE.* (subscriptions' payments) and CHECKOUT.ORDER.APPROVED, and the Orders v2 flow (approve, then capture)"
	srcDisputes = "PayPal, Disputes API (customer_disputes_v1: dispute_outcome.outcome_code, disputed_transactions) and the CUSTOMER.DISPUTE.* events"
)

var checks = []check{
	{"PW-ACK-UNHANDLED-TYPE", "A webhook listener MUST answer an event of a type it does not act on with a 2xx, or PayPal retries it for three days.", srcDelivery,
		"webhook-ack-unhandled-type", conformance.Protocol, []string{"ack"}, false},
	{"PW-CREDIT-ONCE", "A webhook listener MUST credit a verified PAYMENT.CAPTURE.COMPLETED exactly once, for its amount.", srcEvents,
		"webhook-credit-once", conformance.Business, []string{"ledger"}, false},
	{"PW-DUPLICATE", "A webhook listener MUST credit a capture once when its event is delivered several times.", srcDelivery,
		"webhook-duplicate", conformance.Business, []string{"ledger", "duplicate"}, false},
	{"PW-PENDING", "A webhook listener MUST NOT credit PAYMENT.CAPTURE.PENDING, and MUST credit the capture once when it completes.", srcEvents,
		"webhook-pending", conformance.Business, []string{"ledger", "pending"}, false},
	{"PW-ORDER-APPROVED", "A webhook listener MUST NOT fulfil CHECKOUT.ORDER.APPROVED: an approved order is not paid until it is captured.", srcEvents,
		"webhook-order-approved", conformance.Business, []string{"ledger", "pending"}, false},
	{"PW-REFUND", "A webhook listener MUST debit PAYMENT.CAPTURE.REFUNDED from the capture its \"up\" link names.", srcEvents,
		"webhook-refund", conformance.Business, []string{"ledger", "refund"}, false},
	{"PW-OUT-OF-ORDER-REFUND", "A webhook listener MUST apply a refund delivered before its capture's COMPLETED once the capture completes: the capture ends with nothing credited.", srcDelivery,
		"webhook-out-of-order-refund", conformance.Business, []string{"ledger", "refund", "order"}, false},
	{"PW-REVERSAL", "A webhook listener MUST debit PAYMENT.CAPTURE.REVERSED (a chargeback) from the capture it credited.", srcEvents,
		"webhook-reversal", conformance.Business, []string{"ledger", "chargeback"}, false},
	{"PW-FORGED-BODY", "A webhook listener MUST NOT act on an event whose signature does not verify over the body received (an amount changed after signing).", srcVerify,
		"webhook-forged-body", conformance.Business, []string{"ledger", "verification"}, false},
	{"PW-VERIFY-RAW-BYTES", "A webhook listener MUST verify the signature over the raw bytes received: an event whose JSON escapes slashes and accents MUST verify and be credited.", srcVerify,
		"webhook-verify-raw-bytes", conformance.Business, []string{"ledger", "verification"}, false},
	{"PW-CERT-HOST", "A webhook listener MUST NOT fetch or trust a certificate from a PAYPAL-CERT-URL that is not on PayPal's API hosts: an event signed with anyone else's key is a forgery.", srcVerify,
		"webhook-cert-host", conformance.Business, []string{"ledger", "verification"}, false},
	{"PW-CERT-ROTATION", "A webhook listener MUST verify with the certificate each event names: after PayPal rotates its key, events name a new one.", srcVerify,
		"webhook-cert-rotation", conformance.Business, []string{"ledger", "verification"}, true},
	{"PW-CERT-OUTAGE", "A webhook listener MUST get an event verified when PayPal's certificate cannot be fetched for a moment: by its own retry, or by answering non-2xx so that PayPal resends.", srcDelivery,
		"webhook-cert-outage", conformance.Business, []string{"ledger", "verification", "outage"}, true},
	{"PW-SUBSCRIPTION-PAYMENT", "A webhook listener MUST credit a subscription's payment, a v1 sale (PAYMENT.SALE.COMPLETED), once, and MUST debit its refund.", srcEvents,
		"webhook-subscription-payment", conformance.Business, []string{"ledger", "subscription"}, false},
	{"PW-DISPUTE-LOST", "A webhook listener MUST debit the disputed capture when a dispute is resolved in the buyer's favour.", srcDisputes,
		"webhook-dispute-lost", conformance.Business, []string{"ledger", "dispute"}, false},
	{"PW-DISPUTE-WON", "A webhook listener MUST NOT debit anything for a dispute resolved in the merchant's favour.", srcDisputes,
		"webhook-dispute-won", conformance.Business, []string{"ledger", "dispute"}, false},
	{"PW-DISPUTE-AND-REVERSAL", "A webhook listener MUST debit a chargeback once when PayPal reports it both as the capture's reversal and as a lost dispute.", srcDisputes,
		"webhook-dispute-and-reversal", conformance.Business, []string{"ledger", "dispute", "chargeback"}, false},
	{"PW-MOCK-NOT-ACTED-ON", "A webhook listener configured for its webhook MUST NOT act on a mock event of the webhooks simulator (signed for WEBHOOK_ID).", srcSim,
		"webhook-mock", conformance.Business, []string{"ledger", "verification"}, false},
}

// Checks are the PW- checks as registered.
func Checks() []conformance.Check {
	out := make([]conformance.Check, len(checks))
	for i, c := range checks {
		raw, err := files.ReadFile("scenarios/" + c.scenario + ".yaml")
		if err != nil {
			panic("webhookchecks: " + err.Error())
		}
		sc, err := scenarios.ParseFor("webhookchecks/"+c.scenario+".yaml", raw, []string{paypalrest.Provider})
		if err != nil {
			panic("webhookchecks: " + err.Error())
		}
		out[i] = conformance.Check{ID: c.id, Requirement: c.requirement, Level: c.level, Provider: paypalrest.Provider,
			Labels: c.labels, Scenario: c.scenario, Steps: sc, Exclusive: c.exclusive}
	}
	return out
}

// Source is where a PW- check's sentence comes from ("" for no PW- check).
func Source(id string) string {
	for _, c := range checks {
		if c.id == id {
			return c.source
		}
	}
	return ""
}

func init() {
	conformance.EndpointSetting(paypalrest.Provider, "--webhook-listener")
	conformance.OnSession(setup)
	for _, c := range Checks() {
		if _, err := conformance.Register(c); err != nil {
			panic("webhookchecks: " + err.Error())
		}
	}
}

// setup applies Config.WebhookListener and WebhookID to a session,
// signing with ipnlab's CA (the one `ipnlab ca` prints), unless Configure
// did already.
func setup(cfg *conformance.Config) error {
	if cfg.WebhookListener == "" || cfg.Listeners[paypalrest.Provider] != "" {
		return nil
	}
	dir, err := intercept.DefaultDir()
	if err != nil {
		return fmt.Errorf("webhook_listener: the CA that signs the events: %w", err)
	}
	ca, err := intercept.LoadOrCreate(dir)
	if err != nil {
		return fmt.Errorf("webhook_listener: the CA that signs the events: %w", err)
	}
	return Configure(cfg, cfg.WebhookListener, cfg.WebhookID, ca)
}

// Configure makes a run send PayPal REST webhooks to listenerURL,
// subscribed under webhookID (the id the listener verifies with), the
// signing certificates issued by ca when it is given (the listener's
// cert_roots), self-signed otherwise.
func Configure(cfg *conformance.Config, listenerURL, webhookID string, ca *intercept.CA) error {
	if listenerURL == "" {
		return nil
	}
	if webhookID == "" || strings.ContainsAny(webhookID, " \t\n") {
		return fmt.Errorf("paypalrest: the webhook id the listener verifies with is required, without spaces (got %q)", webhookID)
	}
	cfg.Providers = append(cfg.Providers, paypalrest.Factory(paypalrest.Settings{CA: ca, Live: cfg.Live,
		WebhookIDs: map[string]string{listenerURL: webhookID}}))
	if cfg.Listeners == nil {
		cfg.Listeners = map[string]string{}
	}
	cfg.Listeners[paypalrest.Provider] = listenerURL
	cfg.WebhookListener, cfg.WebhookID = listenerURL, webhookID
	return nil
}
