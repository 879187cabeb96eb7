package listener_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store"
)

const restWebhookID = "WH-LISTENER-SPEC"

// restRig is an emulator with the REST provider, and a reference
// listener whose PayPal API is the emulator, seen through gate (which
// may fail what it is asked).
type restRig struct {
	*rig
	rest *paypalrest.Plugin
	// failing is how many more API requests the gate answers 503.
	failing atomic.Int32
	gate    *httptest.Server
}

func newRESTRig(mutate ...func(*listener.Config)) *restRig {
	ca, err := intercept.LoadOrCreate(GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	r := &restRig{rig: &rig{}}
	r.lsrv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.lst.Handler().ServeHTTP(w, req) }))
	r.lsrv.Start()
	r.emu, err = emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 7, Logger: quiet(),
		Providers: []emulator.Factory{paypalrest.Factory(paypalrest.Settings{CA: ca, WebhookIDs: map[string]string{r.restURL(): restWebhookID}})}})
	Expect(err).NotTo(HaveOccurred())
	p, _ := r.emu.Provider(paypalrest.Provider)
	r.rest = p.(*paypalrest.Plugin)
	r.api = httptest.NewServer(r.emu)
	target, _ := url.Parse(r.api.URL)
	r.gate = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.failing.Add(-1) >= 0 {
			http.Error(w, "<html>503 Service Unavailable</html>", http.StatusServiceUnavailable)
			return
		}
		req.URL.Scheme, req.URL.Host, req.RequestURI = target.Scheme, target.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	r.cfg = baseConfig(r.api.URL+"/cgi-bin/webscr", filepath.Join(GinkgoT().TempDir(), "listener.db"))
	r.cfg.PayPalREST = listener.PayPalRESTConfig{WebhookID: restWebhookID, APIURL: r.gate.URL, CertRoots: ca.CertPath(),
		ClientID: paypalrest.DefaultClientID, Secret: paypalrest.DefaultSecret}
	for _, m := range mutate {
		m(&r.cfg)
	}
	r.lst, err = listener.New(r.cfg)
	Expect(err).NotTo(HaveOccurred())
	Expect(r.lst.Start(context.Background())).To(Succeed())
	DeferCleanup(func() {
		r.lsrv.Close()
		Expect(r.lst.Close()).To(Succeed())
		r.emu.Close()
		r.api.Close()
		r.gate.Close()
	})
	return r
}

func (r *restRig) restURL() string { return r.lsrv.URL + listener.PayPalRESTPath }

// send sends an event to the listener and waits until it is processed.
func (r *restRig) send(req paypalrest.SendRequest) string {
	if req.NotifyURL == "" {
		req.NotifyURL = r.restURL()
	}
	if req.Currency == "" {
		req.Currency, req.Amount, req.CustomID = "USD", "25.00", customerEmail
	}
	views, err := r.rest.Send(req)
	Expect(err).NotTo(HaveOccurred())
	r.idle()
	return views[0].TxnID
}

// lastLog is the detail of the newest log line of txn.
func (r *restRig) lastLog(txn string) string {
	lines, err := r.lst.Store().Log(ctxBG(), txn, 10)
	Expect(err).NotTo(HaveOccurred())
	Expect(lines).NotTo(BeEmpty(), "nothing logged for %s", txn)
	l := lines[len(lines)-1]
	return l.Action + ": " + l.Detail
}

// delivered is the first delivery the listener stored, as it came.
func (r *restRig) delivered() (http.Header, []byte) {
	it, err := r.lst.Store().Inbox(ctxBG(), 1)
	Expect(err).NotTo(HaveOccurred())
	return http.Header(it.Headers).Clone(), it.Body
}

// replay posts a (changed) delivery to the listener and waits.
func (r *restRig) replay(h http.Header, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, r.restURL(), strings.NewReader(string(body)))
	Expect(err).NotTo(HaveOccurred())
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	r.idle()
	return resp.StatusCode
}

var _ = Describe("PayPal REST webhooks", func() {
	It("credits a verified COMPLETED capture once, however often it is delivered", func() {
		r := newRESTRig()
		capture := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", Copies: 3})
		t := r.txn(listener.PayPalREST, capture)
		Expect(t.Effects).To(HaveLen(1))
		Expect(t.Net).To(Equal(map[string]string{"USD": "25.00"}))
		Expect(t.Status).To(Equal("COMPLETED"))
		Expect(r.balance("USD")).To(Equal("25.00"))
	})

	It("verifies the raw bytes, escapes and all", func() {
		r := newRESTRig()
		capture := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", Quirks: true})
		Expect(r.txn(listener.PayPalREST, capture).Effects).To(HaveLen(1))
	})

	It("does not act on an event changed after signing, a mock event, or one signed for another webhook, and says why", func() {
		r := newRESTRig()
		forged := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", Tamper: paypalrest.TamperBody})
		Expect(r.lastLog(forged)).To(ContainSubstring("does not verify for webhook " + restWebhookID))
		mock := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", Mock: true})
		Expect(r.lastLog(mock)).To(HavePrefix("ignored: "))
		Expect(r.balance("USD")).To(Equal("0.00"))
	})

	It("never fetches a certificate named on a foreign host, nor takes an algorithm PayPal does not sign with", func() {
		r := newRESTRig()
		capture := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		h, body := r.delivered()
		// The same event with its amount raised, and a new capture id: the
		// signature no longer matters unless the checks before it pass.
		body = []byte(strings.ReplaceAll(strings.ReplaceAll(string(body), `"25.00"`, `"99.00"`), capture, "FORGEDCAPTURE0001"))
		foreign := h.Clone()
		foreign.Set(listener.HeaderCertURL, strings.Replace(h.Get(listener.HeaderCertURL), "api.sandbox.paypal.com", "paypal.example", 1))
		Expect(r.replay(foreign, body)).To(Equal(http.StatusOK))
		algo := h.Clone()
		algo.Set(listener.HeaderAuthAlgo, "MD5withRSA")
		Expect(r.replay(algo, body)).To(Equal(http.StatusOK))
		lines, err := r.lst.Store().Log(ctxBG(), "FORGEDCAPTURE0001", 10)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(2))
		Expect(lines[0].Detail).To(ContainSubstring("is not on PayPal's API hosts"))
		Expect(lines[1].Detail).To(ContainSubstring(`"MD5withRSA" is no algorithm`))

		unsigned := h.Clone()
		unsigned.Del(listener.HeaderTransmissionSig)
		Expect(r.replay(unsigned, body)).To(Equal(http.StatusBadRequest))
		Expect(r.replay(h, body)).To(Equal(http.StatusOK))
		Expect(r.lastLog("FORGEDCAPTURE0001")).To(ContainSubstring("does not verify"))
		Expect(r.balance("USD")).To(Equal("25.00"), "only the genuine delivery")
	})

	It("retries when PayPal's certificate cannot be fetched, and survives a rotation", func() {
		r := newRESTRig()
		r.failing.Store(2)
		first := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		Expect(r.txn(listener.PayPalREST, first).Effects).To(HaveLen(1))
		Expect(r.failing.Load()).To(BeNumerically("<", 0), "the gate was asked past its failures")

		resp, err := http.Post(r.api.URL+"/api/v1/paypalrest/rotate", "application/json", nil)
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		second := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		Expect(r.txn(listener.PayPalREST, second).Effects).To(HaveLen(1))
	})

	It("asks PayPal's verify API when configured to, acting only on SUCCESS", func() {
		r := newRESTRig(func(c *listener.Config) { c.PayPalREST.Verify = listener.VerifyAPI })
		genuine := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		Expect(r.txn(listener.PayPalREST, genuine).Effects).To(HaveLen(1))
		forged := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", Tamper: paypalrest.TamperBody})
		Expect(r.lastLog(forged)).To(ContainSubstring("the verify API answered FAILURE"))
		r.failing.Store(1)
		late := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		Expect(r.txn(listener.PayPalREST, late).Effects).To(HaveLen(1), "a 503 from the API is retried")
	})

	It("holds a pending capture, and debits refunds and reversals, a refund that came first included", func() {
		r := newRESTRig()
		pending := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.PENDING"})
		Expect(r.txn(listener.PayPalREST, pending).Held).To(ContainSubstring("pending"))
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.REFUNDED", Parent: pending})
		Expect(r.txn(listener.PayPalREST, pending).Effects).To(BeEmpty())
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", ResourceID: pending})
		t := r.txn(listener.PayPalREST, pending)
		Expect(t.Effects).To(HaveLen(2))
		Expect(t.Net).To(Equal(map[string]string{"USD": "0.00"}))

		reversed := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.REVERSED", ResourceID: reversed})
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", ResourceID: reversed})
		Expect(r.txn(listener.PayPalREST, reversed).Net).To(Equal(map[string]string{"USD": "0.00"}), "a late COMPLETED takes nothing back")

		early := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.REVERSED"})
		Expect(r.txn(listener.PayPalREST, early).Held).To(ContainSubstring("reversed before it was credited"))
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", ResourceID: early, Copies: 2})
		t = r.txn(listener.PayPalREST, early)
		Expect(t.Effects).To(HaveLen(2), "a COMPLETED after its REVERSED is credited and debited, once")
		Expect(t.Net).To(Equal(map[string]string{"USD": "0.00"}))
		Expect(t.Held).To(BeEmpty())
		Expect(r.balance("USD")).To(Equal("0.00"))
	})

	It("credits a subscription's sale once and debits its refund, and debits a lost dispute once, with or without the reversal of the same chargeback", func() {
		r := newRESTRig()
		sale := r.send(paypalrest.SendRequest{EventType: "PAYMENT.SALE.COMPLETED", Subscription: "I-LISTENERSPEC1", Copies: 2})
		Expect(r.txn(listener.PayPalREST, sale).Net).To(Equal(map[string]string{"USD": "25.00"}))
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.SALE.REFUNDED", Parent: sale})
		t := r.txn(listener.PayPalREST, sale)
		Expect(t.Effects).To(HaveLen(2))
		Expect(t.Net).To(Equal(map[string]string{"USD": "0.00"}))

		won := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		r.send(paypalrest.SendRequest{EventType: "CUSTOMER.DISPUTE.CREATED", Parent: won})
		r.send(paypalrest.SendRequest{EventType: "CUSTOMER.DISPUTE.RESOLVED", Parent: won, Outcome: "RESOLVED_SELLER_FAVOUR"})
		Expect(r.txn(listener.PayPalREST, won).Net).To(Equal(map[string]string{"USD": "25.00"}), "a dispute the merchant won debits nothing")

		lost := r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED"})
		r.send(paypalrest.SendRequest{EventType: "CUSTOMER.DISPUTE.RESOLVED", Parent: lost})
		Expect(r.txn(listener.PayPalREST, lost).Effects).To(HaveLen(2))
		r.send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.REVERSED", ResourceID: lost})
		t = r.txn(listener.PayPalREST, lost)
		Expect(t.Effects).To(HaveLen(2), "the chargeback's reversal and the lost dispute debit once")
		Expect(t.Net).To(Equal(map[string]string{"USD": "0.00"}))
		Expect(r.balance("USD")).To(Equal("25.00"), "the won dispute's capture alone")
	})

	It("refuses REST webhooks when no webhook id is configured", func() {
		r := newRESTRig(func(c *listener.Config) { c.PayPalREST.WebhookID = "" })
		views, err := r.rest.Send(paypalrest.SendRequest{EventType: "PAYMENT.CAPTURE.COMPLETED", NotifyURL: r.restURL()})
		Expect(err).NotTo(HaveOccurred())
		Expect(views[0].Outcome.Summary).To(ContainSubstring("HTTP 400"))
		it, err := r.lst.Store().Inbox(ctxBG(), 1)
		Expect(err).NotTo(HaveOccurred())
		Expect(it.State).To(Equal(store.InboxRejected))
		Expect(it.Detail).To(ContainSubstring("paypal_rest.webhook_id"))
	})
})
