// Package sdk_test runs real verifiers of PayPal REST webhooks against
// ipnlab's events: PayPal's own SDK code, with only what ipnlab ca env
// prints, through the intercepting proxy.
package sdk_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/plutov/paypal/v4"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

// nodeModules is where make test installs the npm packages these specs
// run (the Makefile's npm target).
var nodeModules, _ = filepath.Abs("../../build/npm/node_modules")

// need skips the spec when the machine lacks what it runs; in CI it fails.
func need(what, why string) {
	GinkgoHelper()
	testenv.Missing("CI needs "+what+": "+why, "no "+what+" on this machine: "+why)
}

// event is one delivery as the listener got it.
type event struct {
	header http.Header
	body   []byte
}

// lab is an emulator standing in for PayPal's hosts through its proxy,
// with the REST provider, a webhook subscribed by an integration as on
// PayPal, and the events it got.
type lab struct {
	ca      *intercept.CA
	api     *httptest.Server
	emu     *emulator.Emulator
	client  *http.Client // through the proxy, trusting the CA
	webhook string
	mu      sync.Mutex
	got     []event
}

func newLab() *lab {
	l := &lab{}
	var err error
	l.ca, err = intercept.LoadOrCreate(GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	l.emu, err = emulator.New(emulator.Config{Clock: clock.NewManual(time.Now().UTC()), Intercept: l.ca, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Providers: []emulator.Factory{paypalrest.Factory(paypalrest.Settings{CA: l.ca})}})
	Expect(err).NotTo(HaveOccurred())
	l.api = httptest.NewServer(l.emu)
	lst := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		l.mu.Lock()
		l.got = append(l.got, event{r.Header.Clone(), body})
		l.mu.Unlock()
	}))
	DeferCleanup(func() { lst.Close(); l.api.Close(); l.emu.Close() })
	proxy, err := url.Parse(l.api.URL)
	Expect(err).NotTo(HaveOccurred())
	l.client = l.ca.Client(proxy)

	req, err := http.NewRequest("POST", "https://api.sandbox.paypal.com/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	Expect(err).NotTo(HaveOccurred())
	req.SetBasicAuth(paypalrest.DefaultClientID, paypalrest.DefaultSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := l.client.Do(req)
	Expect(err).NotTo(HaveOccurred())
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	Expect(json.NewDecoder(resp.Body).Decode(&tok)).To(Succeed())
	resp.Body.Close()
	hook, _ := json.Marshal(map[string]any{"url": lst.URL + "/webhooks", "event_types": []any{map[string]string{"name": "*"}}})
	req, err = http.NewRequest("POST", "https://api.sandbox.paypal.com/v1/notifications/webhooks", bytes.NewReader(hook))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = l.client.Do(req)
	Expect(err).NotTo(HaveOccurred())
	var wh struct {
		ID string `json:"id"`
	}
	Expect(json.NewDecoder(resp.Body).Decode(&wh)).To(Succeed())
	resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusCreated))
	l.webhook = wh.ID
	return l
}

// send asks for one event of each kind and returns what the listener got.
func (l *lab) send(kinds ...string) []event {
	GinkgoHelper()
	for _, kind := range kinds {
		_, err := l.emu.Notify(paypalrest.Provider, emulator.NotifyRequest{Kind: kind})
		Expect(err).NotTo(HaveOccurred())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	Expect(l.got).To(HaveLen(len(kinds)))
	return append([]event(nil), l.got...)
}

// oneByteMore is body with one byte more in its resource_type.
func oneByteMore(body []byte) []byte {
	GinkgoHelper()
	changed := bytes.Replace(body, []byte(`"resource_type":"`), []byte(`"resource_type":"x`), 1)
	Expect(changed).NotTo(Equal(body))
	return changed
}

var kinds = []string{"PAYMENT.CAPTURE.COMPLETED", "CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.REFUNDED"}

var _ = Describe("A Go listener that verifies REST webhook events itself, as PayPal's SDKs do", func() {
	It("fetches the certificate at PAYPAL-CERT-URL through the proxy, checks its chain and name and the signature over the raw body: it takes events as delivered and refuses a one-byte change", func() {
		l := newLab()
		// The roots SSL_CERT_FILE gives a Go process under ipnlab ca env.
		bundle, err := os.ReadFile(l.ca.BundlePath())
		Expect(err).NotTo(HaveOccurred())
		roots := x509.NewCertPool()
		Expect(roots.AppendCertsFromPEM(bundle)).To(BeTrue())
		selfVerify := func(ev event, body []byte) error {
			u, err := url.Parse(ev.header.Get("Paypal-Cert-Url"))
			if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.Hostname(), ".paypal.com") {
				return fmt.Errorf("cert URL %q is not PayPal's", ev.header.Get("Paypal-Cert-Url"))
			}
			resp, err := l.client.Get(u.String())
			if err != nil {
				return err
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var chain []*x509.Certificate
			for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
				c, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					return err
				}
				chain = append(chain, c)
			}
			if len(chain) == 0 {
				return fmt.Errorf("no certificate at %s", u)
			}
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "messageverificationcerts.paypal.com",
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			sig, err := base64.StdEncoding.DecodeString(ev.header.Get("Paypal-Transmission-Sig"))
			if err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(paypalrest.SignedString(ev.header.Get("Paypal-Transmission-Id"), ev.header.Get("Paypal-Transmission-Time"), l.webhook, body)))
			return rsa.VerifyPKCS1v15(chain[0].PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig)
		}
		for _, ev := range l.send(kinds...) {
			Expect(selfVerify(ev, ev.body)).To(Succeed(), string(ev.body))
			Expect(selfVerify(ev, oneByteMore(ev.body))).To(MatchError(rsa.ErrVerification), "one byte more")
		}
	})
})

var _ = Describe("A Go integration's verification (github.com/plutov/paypal's VerifyWebhookSignature) of ipnlab's REST webhook events", func() {
	It("takes an event as delivered (SUCCESS) and refuses it after a one-byte change (FAILURE), on PayPal's API host through the proxy", func() {
		l := newLab()
		pp, err := paypal.NewClient(paypalrest.DefaultClientID, paypalrest.DefaultSecret, paypal.APIBaseSandBox)
		Expect(err).NotTo(HaveOccurred())
		pp.Client = l.client
		verify := func(ev event, body []byte) string {
			GinkgoHelper()
			req := httptest.NewRequest("POST", "/webhooks", bytes.NewReader(body))
			req.Header = ev.header.Clone()
			res, err := pp.VerifyWebhookSignature(context.Background(), req, l.webhook)
			Expect(err).NotTo(HaveOccurred())
			return res.VerificationStatus
		}
		for _, ev := range l.send(kinds...) {
			Expect(verify(ev, ev.body)).To(Equal("SUCCESS"), string(ev.body))
			Expect(verify(ev, oneByteMore(ev.body))).To(Equal("FAILURE"), "one byte more")
		}
	})
})

var _ = Describe("PayPal's Node SDK (paypal-rest-sdk) verifying ipnlab's REST webhook events", func() {
	It("takes an event as delivered (SUCCESS) and refuses it after a one-byte change (FAILURE), calling the emulator as PayPal through the proxy", func() {
		if _, err := exec.LookPath("node"); err != nil {
			need("node", "PayPal's Node SDK runs on it")
		}
		if _, err := os.Stat(filepath.Join(nodeModules, "paypal-rest-sdk")); err != nil {
			need("npm's paypal-rest-sdk in "+nodeModules, "make test installs it with npm (make npm)")
		}
		l := newLab()
		events := l.send(kinds...)
		dir := GinkgoT().TempDir()
		verify := func(ev event, body []byte) string {
			GinkgoHelper()
			headers := map[string]string{}
			for k := range ev.header {
				headers[k] = ev.header.Get(k)
			}
			raw, err := json.Marshal(headers)
			Expect(err).NotTo(HaveOccurred())
			Expect(os.WriteFile(filepath.Join(dir, "headers.json"), raw, 0o600)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "body.json"), body, 0o600)).To(Succeed())
			script, err := filepath.Abs("testdata/verify.js")
			Expect(err).NotTo(HaveOccurred())
			cmd := exec.Command("node", script, filepath.Join(dir, "headers.json"), filepath.Join(dir, "body.json"), l.webhook)
			// Only what ipnlab ca env prints, the SDK's credentials and
			// where its module is.
			cmd.Env = append(l.ca.Env(l.api.URL, l.ca.Layout()), "PATH="+os.Getenv("PATH"), "HOME="+dir, "NODE_PATH="+nodeModules,
				"PAYPAL_CLIENT_ID="+paypalrest.DefaultClientID, "PAYPAL_CLIENT_SECRET="+paypalrest.DefaultSecret)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			Expect(err).NotTo(HaveOccurred(), stderr.String())
			return strings.TrimSpace(string(out))
		}
		for _, ev := range events {
			Expect(verify(ev, ev.body)).To(Equal("SUCCESS"), string(ev.body))
			Expect(verify(ev, oneByteMore(ev.body))).To(Equal("FAILURE"), "one byte more")
		}
	})
})
