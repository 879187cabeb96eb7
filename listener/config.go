package listener

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/yamlstrict"
)

// Config configures a Listener. Load reads it from YAML; every field is
// checked by Validate at start, with a message naming the field.
type Config struct {
	// VerifyURL is where PayPal postbacks go:
	// https://ipnpb.paypal.com/cgi-bin/webscr live, the emulator's
	// http://127.0.0.1:8700/cgi-bin/webscr in the lab.
	VerifyURL string `yaml:"verify_url"`
	// ReceiverEmails and ReceiverIDs identify the merchant: a message for
	// anyone else is acked and ignored.
	ReceiverEmails []string `yaml:"receiver_emails"`
	ReceiverIDs    []string `yaml:"receiver_ids"`
	// Currencies accepted for credit (default USD, EUR, GBP, CAD, AUD).
	Currencies []string `yaml:"currencies"`
	// DeductFees credits the net (gross - fee) instead of the gross.
	DeductFees bool `yaml:"deduct_fees"`
	// Customers match payers by email.
	Customers []Customer `yaml:"customers"`
	// UnknownPayers: "hold" (default: no credit, logged) or "create" (a
	// customer is made for the payer's email).
	UnknownPayers string `yaml:"unknown_payers"`
	// DB is the SQLite database path (default ipnlab-listener.db).
	DB string `yaml:"db"`
	// Workers process the inbox concurrently (default 4).
	Workers int          `yaml:"workers"`
	Verify  VerifyConfig `yaml:"verify"`
	PayDo   PayDoConfig  `yaml:"paydo"`
	// PayPalREST configures PayPal REST webhooks (PayPalRESTPath); without
	// a webhook_id the endpoint refuses them.
	PayPalREST PayPalRESTConfig `yaml:"paypal_rest"`
	// Mutant names one deliberate bug of the gallery (listener/mutants),
	// to prove that the conformance suite catches it: flawed.New builds
	// it by decorating this listener at one of its seams. The listener
	// itself carries no bug and refuses a configuration that names one.
	Mutant string       `yaml:"mutant"`
	Logger *slog.Logger `yaml:"-"`
	Client *http.Client `yaml:"-"`
	// WrapVerifier, if set, decorates the listener's postback verifier
	// (a Postback to VerifyURL with Verify's settings): to record or
	// fault postbacks in a team's own specs; the mutant gallery's
	// verification bugs are decorations (package listener/flawed).
	WrapVerifier func(Verifier) Verifier `yaml:"-"`
	// WrapWebhookVerifier, if set, decorates the verifier of PayPal REST
	// webhooks (a SelfVerifier or an APIVerifier, as PayPalREST.Verify
	// says), as WrapVerifier does the postback.
	WrapWebhookVerifier func(WebhookVerifier) WebhookVerifier `yaml:"-"`
	// WrapHandler, if set, decorates the listener's HTTP handler (its
	// endpoints, /healthz and the probe): middleware of a team's own; the
	// gallery's ack bugs are decorations (package listener/flawed).
	WrapHandler func(http.Handler) http.Handler `yaml:"-"`
	// WrapRules, if set, decorates the business rules (what a verified
	// notification does to the ledger): a team's own policy around the
	// reference one; the gallery's rule bugs are decorations.
	WrapRules func(Rules) Rules `yaml:"-"`
	// WrapStore, if set, decorates the store the listener keeps its state
	// in (instrumentation, faults); the gallery's ledger bugs (no unique
	// key, no transaction) are decorations.
	WrapStore func(store.Store) store.Store `yaml:"-"`
	now       func() time.Time
}

// Customer is an account that payments top up.
type Customer struct {
	ID    string `yaml:"id"`
	Email string `yaml:"email"`
}

// VerifyConfig tunes the PayPal postback.
type VerifyConfig struct {
	Timeout    time.Duration `yaml:"timeout"`     // per postback (default 30s)
	Attempts   int           `yaml:"attempts"`    // before giving up (default 8)
	Backoff    time.Duration `yaml:"backoff"`     // first wait, doubling (default 1s)
	MaxBackoff time.Duration `yaml:"max_backoff"` // longest wait (default 1m)
	UserAgent  string        `yaml:"user_agent"`
}

// PayDoConfig configures PayDo handling.
type PayDoConfig struct {
	// AllowedSources are the IPs or CIDRs PayDo posts from (default PayDo's
	// documented 52.49.204.201 and 54.229.170.212).
	AllowedSources []string `yaml:"allowed_sources"`
	// TrustedProxies may set X-Forwarded-For; from anyone else it is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// LookupURL is PayDo's transaction lookup; the transaction id is
	// appended (default: the verify URL's host + /paydo/v1/transactions/).
	LookupURL string `yaml:"lookup_url"`
	// LookupToken is the project's API token the lookup sends as
	// Authorization: Bearer (PayDo answers 401 without it; default
	// DefaultPayDoLookupToken, the emulator's default project's).
	LookupToken string `yaml:"lookup_token"`
	// TransferAccount is the ledger account outgoing transfers are
	// recorded against (default "paydo-transfers").
	TransferAccount string `yaml:"transfer_account"`
}

// PayPalRESTConfig configures PayPal REST webhooks.
type PayPalRESTConfig struct {
	// WebhookID is the id of the webhook (subscription) PayPal sends to
	// this listener: every signature is over it.
	WebhookID string `yaml:"webhook_id"`
	// Verify is how signatures are checked: self (default: with PayPal's
	// certificate) or api (PayPal's verify API).
	Verify string `yaml:"verify"`
	// APIURL is PayPal's REST API: the verify API, OAuth and the
	// certificates are asked there (default https://api-m.paypal.com; in
	// the lab, the emulator's address).
	APIURL string `yaml:"api_url"`
	// ClientID and Secret are the app's credentials for the verify API.
	ClientID string `yaml:"client_id"`
	Secret   string `yaml:"secret"`
	// CertHosts are the hosts a PAYPAL-CERT-URL may name (default
	// PayPal's API hosts, DefaultCertHosts).
	CertHosts []string `yaml:"cert_hosts"`
	// CertRoots is a PEM file of the roots PayPal's signing certificate
	// must chain to (default: the system's; in the lab, ipnlab's CA).
	CertRoots string `yaml:"cert_roots"`
}

// Ways of checking a PayPal REST webhook's signature.
const (
	VerifySelf = "self"
	VerifyAPI  = "api"
)

// DefaultPayDoLookupToken is the token of the emulator's default PayDo
// project (ipnlab's sandbox value; set yours with paydo.lookup_token).
const DefaultPayDoLookupToken = "ipnlab-paydo-token"

// DefaultPayDoSources are the addresses PayDo documents for its IPNs.
var DefaultPayDoSources = []string{"52.49.204.201", "54.229.170.212"}

// Load reads a YAML config file, refusing unknown fields.
func Load(path string) (Config, error) {
	var c Config
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if err := yamlstrict.Decode(raw, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// WithDefaults returns c with every unset setting at its default, as New
// uses it.
func (c Config) WithDefaults() Config {
	if len(c.Currencies) == 0 {
		c.Currencies = []string{"USD", "EUR", "GBP", "CAD", "AUD"}
	}
	if c.UnknownPayers == "" {
		c.UnknownPayers = "hold"
	}
	if c.DB == "" {
		c.DB = "ipnlab-listener.db"
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.Verify.Timeout == 0 {
		c.Verify.Timeout = 30 * time.Second
	}
	if c.Verify.Attempts == 0 {
		c.Verify.Attempts = 8
	}
	if c.Verify.Backoff == 0 {
		c.Verify.Backoff = time.Second
	}
	if c.Verify.MaxBackoff == 0 {
		c.Verify.MaxBackoff = time.Minute
	}
	if c.Verify.UserAgent == "" {
		c.Verify.UserAgent = "ipnlab-reference-listener/1.0"
	}
	if len(c.PayDo.AllowedSources) == 0 {
		c.PayDo.AllowedSources = DefaultPayDoSources
	}
	if c.PayDo.TransferAccount == "" {
		c.PayDo.TransferAccount = "paydo-transfers"
	}
	if c.PayDo.LookupToken == "" {
		c.PayDo.LookupToken = DefaultPayDoLookupToken
	}
	if c.PayDo.LookupURL == "" && c.VerifyURL != "" {
		if u, err := url.Parse(c.VerifyURL); err == nil && u.Host != "" {
			c.PayDo.LookupURL = u.Scheme + "://" + u.Host + "/paydo/v1/transactions/"
		}
	}
	if c.PayPalREST.Verify == "" {
		c.PayPalREST.Verify = VerifySelf
	}
	if c.PayPalREST.APIURL == "" {
		c.PayPalREST.APIURL = "https://api-m.paypal.com"
	}
	if len(c.PayPalREST.CertHosts) == 0 {
		c.PayPalREST.CertHosts = DefaultCertHosts
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Validate reports every problem with the config, one per line.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	checkURL := func(name, raw string, required bool) {
		if raw == "" {
			if required {
				bad("%s is required", name)
			}
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s %q: want an absolute http(s) URL", name, raw)
		}
	}
	checkURL("verify_url", c.VerifyURL, true)
	checkURL("paydo.lookup_url", c.PayDo.LookupURL, false)
	checkURL("paypal_rest.api_url", c.PayPalREST.APIURL, false)
	switch c.PayPalREST.Verify {
	case VerifySelf:
		if c.PayPalREST.CertRoots != "" {
			if _, err := loadRoots(c.PayPalREST.CertRoots); err != nil {
				bad("paypal_rest.cert_roots: %v", err)
			}
		}
	case VerifyAPI:
		if c.PayPalREST.WebhookID != "" && (c.PayPalREST.ClientID == "" || c.PayPalREST.Secret == "") {
			bad("paypal_rest: verify api needs client_id and secret (the app's credentials)")
		}
	default:
		bad("paypal_rest.verify %q: want %s or %s", c.PayPalREST.Verify, VerifySelf, VerifyAPI)
	}
	if len(c.ReceiverEmails) == 0 && len(c.ReceiverIDs) == 0 {
		bad("receiver_emails or receiver_ids: give at least one, or every message would be ignored as someone else's")
	}
	for _, e := range c.ReceiverEmails {
		if !strings.Contains(e, "@") {
			bad("receiver_emails: %q is not an email address", e)
		}
	}
	for _, cur := range c.Currencies {
		if len(cur) != 3 || strings.ToUpper(cur) != cur {
			bad("currencies: %q is not a three-letter ISO code in capitals", cur)
		}
	}
	seenID, seenEmail := map[string]bool{}, map[string]bool{}
	for i, cu := range c.Customers {
		switch {
		case cu.ID == "":
			bad("customers[%d]: id is required", i)
		case seenID[cu.ID]:
			bad("customers[%d]: id %q is used twice", i, cu.ID)
		}
		email := strings.ToLower(cu.Email)
		switch {
		case !strings.Contains(email, "@"):
			bad("customers[%d]: email %q is not an email address", i, cu.Email)
		case seenEmail[email]:
			bad("customers[%d]: email %q is used twice", i, cu.Email)
		}
		seenID[cu.ID], seenEmail[email] = true, true
	}
	if c.UnknownPayers != "hold" && c.UnknownPayers != "create" {
		bad("unknown_payers %q: want hold or create", c.UnknownPayers)
	}
	if c.Mutant != "" {
		bad("mutant %q: the reference listener carries no bug; flawed.New builds the gallery's mutants (package listener/flawed)", c.Mutant)
	}
	if c.Workers < 1 || c.Workers > 256 {
		bad("workers %d: want 1 to 256", c.Workers)
	}
	if c.Verify.Timeout < 0 || c.Verify.Backoff < 0 || c.Verify.MaxBackoff < c.Verify.Backoff {
		bad("verify: timeout and backoff must be positive and max_backoff at least backoff")
	}
	if c.Verify.Attempts < 1 || c.Verify.Attempts > 100 {
		bad("verify.attempts %d: want 1 to 100", c.Verify.Attempts)
	}
	for _, s := range c.PayDo.AllowedSources {
		if _, err := parsePrefix(s); err != nil {
			bad("paydo.allowed_sources: %v", err)
		}
	}
	for _, s := range c.PayDo.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			bad("paydo.trusted_proxies: %v", err)
		}
	}
	return errors.Join(errs...)
}

// loadRoots reads a PEM file of root certificates.
func loadRoots(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// parsePrefix reads an IP ("127.0.0.2") or a CIDR ("10.0.0.0/8").
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an IP or CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
