package listener

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Verification of PayPal REST webhooks: a signature over the transmission
// id, its time, the webhook id of the listener's subscription and the
// CRC32 of the raw body, checked here (SelfVerifier) or by PayPal's
// verify API (APIVerifier).

// WebhookVerifier says whether a PayPal REST webhook is genuine, given
// its headers and the body exactly as it came: nil when it is, an error
// wrapping ErrNotGenuine when it is not (the event is not acted on), any
// other error when verification could not be done (the listener tries
// again later). Config.WrapWebhookVerifier decorates the listener's.
type WebhookVerifier interface {
	VerifyWebhook(ctx context.Context, header http.Header, body []byte) error
}

// ErrNotGenuine is wrapped by a verification that was done and failed.
var ErrNotGenuine = errors.New("not a genuine PayPal webhook")

// The transmission headers PayPal signs its webhooks with.
const (
	HeaderTransmissionID   = "Paypal-Transmission-Id"
	HeaderTransmissionTime = "Paypal-Transmission-Time"
	HeaderTransmissionSig  = "Paypal-Transmission-Sig"
	HeaderCertURL          = "Paypal-Cert-Url"
	HeaderAuthAlgo         = "Paypal-Auth-Algo"
)

// Transmission is a webhook's signature headers.
type Transmission struct {
	ID, Time, Sig, CertURL, AuthAlgo string
}

// TransmissionOf reads the signature headers, naming the first missing.
func TransmissionOf(h http.Header) (Transmission, error) {
	t := Transmission{ID: h.Get(HeaderTransmissionID), Time: h.Get(HeaderTransmissionTime), Sig: h.Get(HeaderTransmissionSig),
		CertURL: h.Get(HeaderCertURL), AuthAlgo: h.Get(HeaderAuthAlgo)}
	for _, f := range []struct{ name, v string }{{HeaderTransmissionID, t.ID}, {HeaderTransmissionTime, t.Time},
		{HeaderTransmissionSig, t.Sig}, {HeaderCertURL, t.CertURL}, {HeaderAuthAlgo, t.AuthAlgo}} {
		if f.v == "" {
			return t, fmt.Errorf("no %s header: PayPal signs every webhook", f.name)
		}
	}
	return t, nil
}

// SignedString is what PayPal signs: transmission id, time, webhook id
// and the CRC32 of the raw body as an unsigned decimal.
func SignedString(t Transmission, webhookID string, body []byte) string {
	return t.ID + "|" + t.Time + "|" + webhookID + "|" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)
}

// authAlgos are the PAYPAL-AUTH-ALGO values a signature is checked with:
// the algorithm comes from the header, never hard-coded.
var authAlgos = map[string]crypto.Hash{
	"SHA256withRSA": crypto.SHA256, "SHA384withRSA": crypto.SHA384, "SHA512withRSA": crypto.SHA512,
}

// DefaultCertHosts are the hosts a PAYPAL-CERT-URL may name: PayPal's
// REST API hosts, live and sandbox.
var DefaultCertHosts = []string{"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"}

// SelfVerifier checks signatures itself with PayPal's certificate,
// fetched once per cert URL: only from a cert URL on one of CertHosts
// (anything else is a forgery's, or a request forgery's), from APIURL's
// host (the same path), and only a certificate for a paypal.com name
// that chains to Roots.
type SelfVerifier struct {
	WebhookID string
	// APIURL is PayPal's API the certificate is fetched from: the cert
	// URL's path on this base (https://api-m.paypal.com, or the
	// emulator's address in the lab).
	APIURL    string
	CertHosts []string
	// Roots the certificate must chain to (nil: the system's).
	Roots   *x509.CertPool
	Client  *http.Client
	Timeout time.Duration

	mu    sync.Mutex
	certs map[string]*x509.Certificate // by cert URL
}

// VerifyWebhook checks the signature over body.
func (v *SelfVerifier) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	t, err := TransmissionOf(h)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotGenuine, err)
	}
	hash, ok := authAlgos[t.AuthAlgo]
	if !ok {
		return fmt.Errorf("%w: %s %q is no algorithm PayPal signs with", ErrNotGenuine, HeaderAuthAlgo, t.AuthAlgo)
	}
	cert, err := v.Certificate(ctx, t.CertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: the certificate at %s holds no RSA key", ErrNotGenuine, t.CertURL)
	}
	sig, err := base64.StdEncoding.DecodeString(t.Sig)
	if err != nil {
		return fmt.Errorf("%w: %s is not base64", ErrNotGenuine, HeaderTransmissionSig)
	}
	hh := hash.New()
	hh.Write([]byte(SignedString(t, v.WebhookID, body)))
	if err := rsa.VerifyPKCS1v15(pub, hash, hh.Sum(nil), sig); err != nil {
		return fmt.Errorf("%w: the signature does not verify for webhook %s over the body as received", ErrNotGenuine, v.WebhookID)
	}
	return nil
}

// Certificate is the checked certificate at certURL, fetched once: an
// error wrapping ErrNotGenuine when the URL or the certificate is not
// PayPal's, another when it could not be fetched.
func (v *SelfVerifier) Certificate(ctx context.Context, certURL string) (*x509.Certificate, error) {
	u, err := url.Parse(certURL)
	if err != nil || u.Scheme != "https" || !slices.Contains(v.CertHosts, strings.ToLower(u.Hostname())) || u.Port() != "" {
		return nil, fmt.Errorf("%w: %s %q is not on PayPal's API hosts (%s): it is not fetched", ErrNotGenuine, HeaderCertURL, certURL, strings.Join(v.CertHosts, ", "))
	}
	v.mu.Lock()
	c, ok := v.certs[certURL]
	v.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err = v.fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.certs == nil {
		v.certs = map[string]*x509.Certificate{}
	}
	v.certs[certURL] = c
	v.mu.Unlock()
	return c, nil
}

// fetch gets the certificate at u's path from APIURL and checks it.
func (v *SelfVerifier) fetch(ctx context.Context, u *url.URL) (*x509.Certificate, error) {
	if v.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.Timeout)
		defer cancel()
	}
	from := strings.TrimSuffix(v.APIURL, "/") + u.EscapedPath()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", from, err)
	}
	resp, err := v.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", from, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", from, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: PayPal has no certificate at %s", ErrNotGenuine, from)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("certificate %s: HTTP %d", from, resp.StatusCode)
	}
	var chain []*x509.Certificate
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			chain = append(chain, c)
		}
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no certificate in the answer of %s", ErrNotGenuine, from)
	}
	leaf, inter := chain[0], x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.Roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: the certificate at %s: %v", ErrNotGenuine, from, err)
	}
	if !paypalName(leaf) {
		return nil, fmt.Errorf("%w: the certificate at %s is not for a paypal.com name (%s)", ErrNotGenuine, from, leaf.Subject.CommonName)
	}
	return leaf, nil
}

// paypalName reports whether c names a host under paypal.com.
func paypalName(c *x509.Certificate) bool {
	for _, n := range append(slices.Clone(c.DNSNames), c.Subject.CommonName) {
		if strings.HasSuffix(strings.ToLower(n), ".paypal.com") {
			return true
		}
	}
	return false
}

// APIVerifier asks PayPal's verify API (POST
// /v1/notifications/verify-webhook-signature) with an OAuth token of the
// app's credentials, posting the event as the raw bytes received.
type APIVerifier struct {
	WebhookID        string
	APIURL           string
	ClientID, Secret string
	Client           *http.Client
	Timeout          time.Duration

	mu      sync.Mutex
	token   string
	expires time.Time
}

// VerifyWebhook asks the API; a 401 gets a new token once.
func (v *APIVerifier) VerifyWebhook(ctx context.Context, h http.Header, body []byte) error {
	t, err := TransmissionOf(h)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotGenuine, err)
	}
	if !json.Valid(body) {
		return fmt.Errorf("%w: the body is not JSON", ErrNotGenuine)
	}
	if v.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.Timeout)
		defer cancel()
	}
	// The event goes as the bytes received: re-serializing it changes
	// what the signature is over.
	var req bytes.Buffer
	fmt.Fprintf(&req, `{"auth_algo":%q,"cert_url":%q,"transmission_id":%q,"transmission_sig":%q,"transmission_time":%q,"webhook_id":%q,"webhook_event":`,
		t.AuthAlgo, t.CertURL, t.ID, t.Sig, t.Time, v.WebhookID)
	req.Write(body)
	req.WriteByte('}')
	for attempt := 0; ; attempt++ {
		tok, err := v.accessToken(ctx)
		if err != nil {
			return err
		}
		status, answer, err := v.post(ctx, "/v1/notifications/verify-webhook-signature", "Bearer "+tok, "application/json", req.Bytes())
		if err != nil {
			return fmt.Errorf("verify API: %w", err)
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			v.mu.Lock()
			v.token = ""
			v.mu.Unlock()
			continue
		}
		if status != http.StatusOK {
			return fmt.Errorf("verify API: HTTP %d %.200s", status, answer)
		}
		var out struct {
			Status string `json:"verification_status"`
			Reason string `json:"ipnlab_reason"`
		}
		if err := json.Unmarshal(answer, &out); err != nil {
			return fmt.Errorf("verify API: unreadable answer %.200q", answer)
		}
		switch out.Status {
		case "SUCCESS":
			return nil
		case "FAILURE":
			if out.Reason != "" {
				return fmt.Errorf("%w: the verify API answered FAILURE (%s)", ErrNotGenuine, out.Reason)
			}
			return fmt.Errorf("%w: the verify API answered FAILURE", ErrNotGenuine)
		}
		return fmt.Errorf("verify API: verification_status %q", out.Status)
	}
}

// accessToken is a client-credentials token, kept until a minute before
// it expires.
func (v *APIVerifier) accessToken(ctx context.Context) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.token != "" && time.Now().Before(v.expires) {
		return v.token, nil
	}
	basic := base64.StdEncoding.EncodeToString([]byte(v.ClientID + ":" + v.Secret))
	status, answer, err := v.post(ctx, "/v1/oauth2/token", "Basic "+basic, "application/x-www-form-urlencoded", []byte("grant_type=client_credentials"))
	if err != nil {
		return "", fmt.Errorf("OAuth token: %w", err)
	}
	var out struct {
		Token     string `json:"access_token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if status != http.StatusOK || json.Unmarshal(answer, &out) != nil || out.Token == "" {
		return "", fmt.Errorf("OAuth token: HTTP %d %.200s", status, answer)
	}
	v.token, v.expires = out.Token, time.Now().Add(time.Duration(max(out.ExpiresIn-60, 0))*time.Second)
	return v.token, nil
}

func (v *APIVerifier) post(ctx context.Context, path, auth, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(v.APIURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", contentType)
	resp, err := v.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, answer, err
}

// newWebhookVerifier is the verifier Config.PayPalREST says, decorated
// by Config.WrapWebhookVerifier.
func (l *Listener) newWebhookVerifier() (WebhookVerifier, error) {
	c := l.cfg.PayPalREST
	var v WebhookVerifier
	if c.Verify == VerifyAPI {
		v = &APIVerifier{WebhookID: c.WebhookID, APIURL: c.APIURL, ClientID: c.ClientID, Secret: c.Secret, Client: l.client, Timeout: l.cfg.Verify.Timeout}
	} else {
		self := &SelfVerifier{WebhookID: c.WebhookID, APIURL: c.APIURL, CertHosts: c.CertHosts, Client: l.client, Timeout: l.cfg.Verify.Timeout}
		if c.CertRoots != "" {
			roots, err := loadRoots(c.CertRoots)
			if err != nil {
				return nil, fmt.Errorf("listener config: paypal_rest.cert_roots: %w", err)
			}
			self.Roots = roots
		}
		v = self
	}
	if l.cfg.WrapWebhookVerifier != nil {
		if v = l.cfg.WrapWebhookVerifier(v); v == nil {
			return nil, errors.New("listener config: WrapWebhookVerifier returned no verifier")
		}
	}
	return v, nil
}
