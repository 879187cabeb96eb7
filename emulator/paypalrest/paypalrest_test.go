package paypalrest_test

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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.yaml.in/yaml/v3"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/emulator/tail"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// delivery is one request a listener got.
type delivery struct {
	header http.Header
	body   []byte
}

// rig is an emulator with the REST provider plugged in, and a listener
// that verifies each delivery itself, as PayPal's SDKs do: the
// certificate fetched from its URL (on the emulator's address), the name
// on it PayPal's, the signature over the raw body, and the transmission
// no older than five minutes.
type rig struct {
	path string // the journal's, "" for none
	jnl  journal.Journal
	clk  *clock.Manual
	emu  *emulator.Emulator
	api  *httptest.Server
	lsrv *httptest.Server

	mu       sync.Mutex
	got      []delivery
	verdicts []string // "ok" or why the listener refused
	fail     int      // answer 500 to this many verified deliveries first
}

func newRig() *rig { return newRigAt("") }

// newRigAt is newRig with its emulator's journal at path ("" for none),
// so that restart can start it again from what it kept.
func newRigAt(path string) *rig {
	r := &rig{clk: clock.NewManual(t0), path: path}
	r.lsrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		why := r.verify(req.Header, body, r.webhookID(req.URL.Path))
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Clone(), body})
		r.verdicts = append(r.verdicts, why)
		fail := why == "ok" && r.fail > 0
		if fail {
			r.fail--
		}
		r.mu.Unlock()
		switch {
		case why != "ok":
			http.Error(w, why, http.StatusBadRequest)
		case fail:
			http.Error(w, "down for a moment", http.StatusInternalServerError)
		}
	}))
	r.start()
	DeferCleanup(func() { r.stop(); r.lsrv.Close() })
	return r
}

func (r *rig) start() {
	cfg := emulator.Config{Clock: r.clk, Seed: 7, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Providers: []emulator.Factory{paypalrest.Factory(paypalrest.Settings{})}}
	if r.path != "" {
		j, err := sqlitejournal.Open(r.path)
		Expect(err).NotTo(HaveOccurred())
		cfg.Journal, r.jnl = j, j
	}
	var err error
	r.emu, err = emulator.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	r.api = httptest.NewServer(r.emu)
}

func (r *rig) stop() {
	r.api.Close()
	Expect(r.emu.Shutdown(context.Background())).To(Succeed())
	if r.jnl != nil {
		Expect(r.jnl.Close()).To(Succeed())
	}
}

// restart stops the emulator and starts another on the same journal.
func (r *rig) restart() {
	r.stop()
	r.start()
}

// webhookIDs are the listener's configuration: the webhook id of each of
// its paths, as a team copies it from the dashboard.
var webhookIDs sync.Map

func (r *rig) webhookID(path string) string {
	v, _ := webhookIDs.Load(r.lsrv.URL + path)
	s, _ := v.(string)
	return s
}

// verify is a self-verifying listener's check: "ok" or why not.
func (r *rig) verify(h http.Header, body []byte, webhookID string) string {
	certURL, err := url.Parse(h.Get("Paypal-Cert-Url"))
	if err != nil || certURL.Scheme != "https" || !strings.HasSuffix(certURL.Hostname(), ".paypal.com") {
		return "cert URL on a foreign host: " + h.Get("Paypal-Cert-Url")
	}
	resp, err := http.Get(r.api.URL + certURL.Path) // the emulator stands in for PayPal's host
	if err != nil {
		return err.Error()
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "no certificate at " + certURL.String()
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err.Error()
	}
	if err := cert.VerifyHostname("messageverificationcerts.paypal.com"); err != nil {
		return err.Error()
	}
	if h.Get("Paypal-Auth-Algo") != "SHA256withRSA" {
		return "algorithm " + h.Get("Paypal-Auth-Algo")
	}
	sent, err := time.Parse(time.RFC3339, h.Get("Paypal-Transmission-Time"))
	if err != nil || r.clk.Now().Sub(sent) > 5*time.Minute || sent.Sub(r.clk.Now()) > 5*time.Minute {
		return fmt.Sprintf("transmission time %q is more than 5 minutes from now", h.Get("Paypal-Transmission-Time"))
	}
	sig, err := base64.StdEncoding.DecodeString(h.Get("Paypal-Transmission-Sig"))
	if err != nil {
		return err.Error()
	}
	signed := paypalrest.SignedString(h.Get("Paypal-Transmission-Id"), h.Get("Paypal-Transmission-Time"), webhookID, body)
	sum := sha256.Sum256([]byte(signed))
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		return "signature: " + err.Error()
	}
	return "ok"
}

func (r *rig) deliveries() ([]delivery, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...), append([]string(nil), r.verdicts...)
}

// call makes a request of the emulator; a token, if given, is sent as
// the bearer.
func (r *rig) call(method, path, token string, body any) (int, map[string]any) {
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			var err error
			raw, err = json.Marshal(body)
			Expect(err).NotTo(HaveOccurred())
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.api.URL+path, rd)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// verifyAs asks the verify API about delivery d's transmission, for
// webhookID, with event as the webhook_event; it answers 200 either way.
func (r *rig) verifyAs(tok string, d delivery, webhookID string, event []byte) {
	code, out := r.call("POST", "/v1/notifications/verify-webhook-signature", tok, map[string]any{
		"auth_algo": d.header.Get("Paypal-Auth-Algo"), "cert_url": d.header.Get("Paypal-Cert-Url"),
		"transmission_id": d.header.Get("Paypal-Transmission-Id"), "transmission_sig": d.header.Get("Paypal-Transmission-Sig"),
		"transmission_time": d.header.Get("Paypal-Transmission-Time"), "webhook_id": webhookID, "webhook_event": json.RawMessage(event)})
	Expect(code).To(Equal(http.StatusOK), fmt.Sprint(out))
}

// token gets an OAuth token with the default app's credentials.
func (r *rig) token() string {
	req, err := http.NewRequest("POST", r.api.URL+"/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	Expect(err).NotTo(HaveOccurred())
	req.SetBasicAuth(paypalrest.DefaultClientID, paypalrest.DefaultSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var out struct {
		AccessToken string `json:"access_token"`
	}
	Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return out.AccessToken
}

// subscribe creates a webhook for the listener's path and configures the
// listener with its id.
func (r *rig) subscribe(tok, path string, types ...string) string {
	var ets []map[string]string
	for _, t := range types {
		ets = append(ets, map[string]string{"name": t})
	}
	code, out := r.call("POST", "/v1/notifications/webhooks", tok, map[string]any{"url": r.lsrv.URL + path, "event_types": ets})
	Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
	id := out["id"].(string)
	webhookIDs.Store(r.lsrv.URL+path, id)
	return id
}

func (r *rig) send(eventType string, seed int) []any {
	code, out := r.call("POST", "/api/v1/paypalrest/events", "", map[string]any{"event_type": eventType, "seed": seed})
	Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
	return out["messages"].([]any)
}

var _ = Describe("PayPal REST webhooks", func() {
	It("delivers signed events a self-verifying listener accepts unchanged, and refuses after any one-byte change", func() {
		r := newRig()
		tok := r.token()
		r.subscribe(tok, "/hooks/a", "*")
		msgs := r.send("PAYMENT.CAPTURE.COMPLETED", 11)
		Expect(msgs).To(HaveLen(1))
		got, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok"}))
		Expect(msgs[0].(map[string]any)["status"]).To(Equal("Sent"), "acknowledged with 200")

		d := got[0]
		id := r.webhookID("/hooks/a")
		for i := 0; i < len(d.body); i += 37 {
			changed := bytes.Clone(d.body)
			changed[i] ^= 0x01
			Expect(r.verify(d.header, changed, id)).To(HavePrefix("signature: "), "byte %d changed", i)
		}
		Expect(r.verify(d.header, d.body, "WH-"+strings.Repeat("0", 17))).To(HavePrefix("signature: "), "signed for the webhook's id, not another")
	})

	It("writes bodies byte for byte the same for a seed, with what breaks a re-serialization in PHP or Go: {}, [], PayPal's key order", func() {
		r := newRig()
		r.subscribe(r.token(), "/hooks/b", "*")
		r.send("PAYMENT.CAPTURE.COMPLETED", 5)
		r.send("CHECKOUT.ORDER.APPROVED", 5)
		got, _ := r.deliveries()
		capture, order := string(got[0].body), string(got[1].body)
		Expect(capture).To(HavePrefix(`{"id":"WH-`))
		Expect(capture).To(ContainSubstring(`"event_version":"1.0","resource_version":"2.0"}`))
		Expect(capture).To(ContainSubstring(`"processor_response":{}`))
		Expect(order).To(ContainSubstring(`"items":[]`))
		Expect(order).To(ContainSubstring(`"given_name":"Zoë"`), "UTF-8 as sent")
		Expect(capture).To(MatchRegexp(`^\{"id":"WH-[0-9A-Z]{17}-[0-9A-Z]{17}","create_time":"[^"]+\.\d{3}Z","resource_type":"capture","event_type":"PAYMENT.CAPTURE.COMPLETED","summary":"Payment completed for `))

		again := newRig()
		again.subscribe(again.token(), "/hooks/b", "*")
		again.send("PAYMENT.CAPTURE.COMPLETED", 5)
		got2, _ := again.deliveries()
		Expect(string(got2[0].body)).To(Equal(capture), "the same seed, the same bytes")
	})

	It("signs every attempt anew: a retry an hour later passes a listener's five-minute bound", func() {
		r := newRig()
		r.subscribe(r.token(), "/hooks/c", "PAYMENT.CAPTURE.COMPLETED")
		r.fail = 1
		r.send("PAYMENT.CAPTURE.COMPLETED", 3)
		Expect(r.emu.Advance(time.Hour)).To(Succeed())
		got, verdicts := r.deliveries()
		Expect(len(got)).To(BeNumerically(">=", 2))
		Expect(verdicts).To(HaveEach("ok"), "every retry verifies, the last one an hour after the first")
		first, last := got[0].header, got[len(got)-1].header
		Expect(last.Get("Paypal-Transmission-Id")).NotTo(Equal(first.Get("Paypal-Transmission-Id")))
		Expect(last.Get("Paypal-Transmission-Time")).NotTo(Equal(first.Get("Paypal-Transmission-Time")))
	})

	It("sends an event to each webhook that takes its type, signed for that webhook's own id", func() {
		r := newRig()
		tok := r.token()
		r.subscribe(tok, "/hooks/all", "*")
		r.subscribe(tok, "/hooks/refunds", "PAYMENT.CAPTURE.REFUNDED")
		Expect(r.send("PAYMENT.CAPTURE.COMPLETED", 1)).To(HaveLen(1))
		Expect(r.send("PAYMENT.CAPTURE.REFUNDED", 2)).To(HaveLen(2))
		_, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok", "ok", "ok"}))

		code, out := r.call("GET", "/v1/notifications/webhooks", tok, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out["webhooks"]).To(HaveLen(2))
		code, out = r.call("POST", "/v1/notifications/webhooks", tok, map[string]any{"url": r.lsrv.URL + "/hooks/all", "event_types": []any{map[string]string{"name": "*"}}})
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(out["message"]).To(ContainSubstring("WEBHOOK_URL_ALREADY_EXISTS"))
		code, out = r.call("POST", "/v1/notifications/webhooks", tok, map[string]any{"url": r.lsrv.URL + "/x", "event_types": []any{map[string]string{"name": "PAYMENT.CAPTURE.COMPLETD"}}})
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(out["message"]).To(ContainSubstring(`event type "PAYMENT.CAPTURE.COMPLETD": want "*" or one of`))
		for i := range 8 {
			r.subscribe(tok, fmt.Sprintf("/hooks/n%d", i), "*")
		}
		code, out = r.call("POST", "/v1/notifications/webhooks", tok, map[string]any{"url": r.lsrv.URL + "/hooks/eleventh", "event_types": []any{map[string]string{"name": "*"}}})
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(out["message"]).To(ContainSubstring("at most 10 webhooks"))

		code, _ = r.call("GET", "/v1/notifications/webhooks", "", nil)
		Expect(code).To(Equal(http.StatusUnauthorized), "the management API wants a token")
		id := r.webhookID("/hooks/refunds")
		code, _ = r.call("DELETE", "/v1/notifications/webhooks/"+id, tok, nil)
		Expect(code).To(Equal(http.StatusNoContent))
		code, _ = r.call("GET", "/v1/notifications/webhooks/"+id, tok, nil)
		Expect(code).To(Equal(http.StatusNotFound))
	})

	Describe("the verify API", func() {
		var r *rig
		var tok string
		var d delivery
		BeforeEach(func() {
			r = newRig()
			tok = r.token()
			r.subscribe(tok, "/hooks/v", "*")
			r.send("PAYMENT.CAPTURE.COMPLETED", 9)
			got, _ := r.deliveries()
			d = got[0]
		})
		// ask posts d's headers with event as the webhook_event, changed
		// by change.
		ask := func(event []byte, change func(map[string]json.RawMessage)) (int, map[string]any) {
			req := map[string]json.RawMessage{}
			for k, h := range map[string]string{"auth_algo": "Paypal-Auth-Algo", "cert_url": "Paypal-Cert-Url", "transmission_id": "Paypal-Transmission-Id",
				"transmission_sig": "Paypal-Transmission-Sig", "transmission_time": "Paypal-Transmission-Time"} {
				req[k], _ = json.Marshal(d.header.Get(h))
			}
			req["webhook_id"], _ = json.Marshal(r.webhookID("/hooks/v"))
			req["webhook_event"] = event
			if change != nil {
				change(req)
			}
			var b bytes.Buffer
			b.WriteString("{")
			first := true
			for _, k := range []string{"auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id", "webhook_event"} {
				if !first {
					b.WriteString(",")
				}
				first = false
				fmt.Fprintf(&b, "%q:%s", k, req[k])
			}
			b.WriteString("}")
			return r.call("POST", "/v1/notifications/verify-webhook-signature", tok, b.Bytes())
		}

		It("answers SUCCESS for the event as it was delivered, and counts the answers on /metrics", func() {
			code, out := ask(d.body, nil)
			Expect(code).To(Equal(http.StatusOK))
			Expect(out).To(HaveKeyWithValue("verification_status", "SUCCESS"))
			ask([]byte(`{}`), nil)
			resp, err := http.Get(r.api.URL + "/metrics")
			Expect(err).NotTo(HaveOccurred())
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			Expect(string(body)).To(MatchRegexp(`\nipnlab_paypalrest_verifications_total\{account="default",status="SUCCESS"\} 1\n`))
			Expect(string(body)).To(MatchRegexp(`\nipnlab_paypalrest_verifications_total\{account="default",status="FAILURE"\} 1\n`))
			Expect(string(body)).To(MatchRegexp(`\nipnlab_messages_total\{[^}]*provider="paypalrest"[^}]*\} 1\n`), "counted by provider, as every provider is")
		})
		It("answers FAILURE with HTTP 200, saying why, for a re-serialized event: the same JSON written differently", func() {
			var v any
			Expect(json.Unmarshal(d.body, &v)).To(Succeed())
			again, err := json.Marshal(v) // as a JavaScript or Go handler would
			Expect(err).NotTo(HaveOccurred())
			code, out := ask(again, nil)
			Expect(code).To(Equal(http.StatusOK))
			Expect(out).To(HaveKeyWithValue("verification_status", "FAILURE"))
			Expect(out["ipnlab_reason"]).To(ContainSubstring("the same JSON written differently"))
		})
		It("names the member of the event that differs", func() {
			changed := bytes.Replace(d.body, []byte(`"status":"COMPLETED"`), []byte(`"status":"COMPLETEX"`), 1)
			_, out := ask(changed, nil)
			Expect(out["ipnlab_reason"]).To(ContainSubstring("the first member that differs is resource.status"))
		})
		It("says when the webhook_id is the event's id", func() {
			var ev struct {
				ID string `json:"id"`
			}
			Expect(json.Unmarshal(d.body, &ev)).To(Succeed())
			_, out := ask(d.body, func(m map[string]json.RawMessage) { m["webhook_id"], _ = json.Marshal(ev.ID) })
			Expect(out["verification_status"]).To(Equal("FAILURE"))
			Expect(out["ipnlab_reason"]).To(ContainSubstring("it is the event's id"))
		})
		It("refuses a cert URL that is not PayPal's, and another algorithm", func() {
			_, out := ask(d.body, func(m map[string]json.RawMessage) {
				m["cert_url"], _ = json.Marshal("https://attacker.example/cert.pem")
			})
			Expect(out["ipnlab_reason"]).To(ContainSubstring("is no certificate of PayPal's"))
			_, out = ask(d.body, func(m map[string]json.RawMessage) { m["auth_algo"], _ = json.Marshal("SHA1withRSA") })
			Expect(out["ipnlab_reason"]).To(ContainSubstring(`auth_algo "SHA1withRSA"`))
		})
		It("wants a token", func() {
			tok = ""
			code, _ := ask(d.body, nil)
			Expect(code).To(Equal(http.StatusUnauthorized))
		})
	})

	It("rotates its signing key on demand: later events carry the new cert URL, and the old certificate stays served", func() {
		r := newRig()
		r.subscribe(r.token(), "/hooks/r", "*")
		r.send("PAYMENT.CAPTURE.COMPLETED", 1)
		code, out := r.call("POST", "/api/v1/paypalrest/rotate", "", nil)
		Expect(code).To(Equal(http.StatusOK))
		r.send("PAYMENT.CAPTURE.COMPLETED", 2)
		got, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok", "ok"}))
		Expect(got[1].header.Get("Paypal-Cert-Url")).To(Equal(out["cert_url"]))
		Expect(got[0].header.Get("Paypal-Cert-Url")).NotTo(Equal(out["cert_url"]))
		Expect(r.verify(got[0].header, got[0].body, r.webhookID("/hooks/r"))).To(Equal("ok"), "the old certificate is still served")
	})
})

var _ = Describe("The webhooks management API", func() {
	It("patches a webhook, lists event types, lists and shows the events sent with their transmissions, and resends one", func() {
		r := newRig()
		tok := r.token()
		id := r.subscribe(tok, "/hooks/m", "PAYMENT.CAPTURE.COMPLETED")
		code, out := r.call("PATCH", "/v1/notifications/webhooks/"+id, tok, []any{map[string]any{"op": "replace", "path": "/event_types",
			"value": []any{map[string]string{"name": "PAYMENT.CAPTURE.COMPLETED"}, map[string]string{"name": "PAYMENT.CAPTURE.REFUNDED"}}}})
		Expect(code).To(Equal(http.StatusOK), fmt.Sprint(out))
		code, out = r.call("GET", "/v1/notifications/webhooks/"+id+"/event-types", tok, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out["event_types"]).To(HaveLen(2))
		code, out = r.call("PATCH", "/v1/notifications/webhooks/"+id, tok, []any{map[string]any{"op": "remove", "path": "/url", "value": ""}})
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(out["message"]).To(ContainSubstring(`op "remove": only replace is supported`))
		code, out = r.call("GET", "/v1/notifications/webhooks-event-types", tok, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out["event_types"]).To(HaveLen(len(paypalrest.KindNames())))

		r.fail = 1
		msg := r.send("PAYMENT.CAPTURE.REFUNDED", 8)[0].(map[string]any)
		event := strings.Split(msg["id"].(string), "~")[0]
		code, out = r.call("GET", "/v1/notifications/webhooks-events/"+event, tok, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out).To(HaveKeyWithValue("event_type", "PAYMENT.CAPTURE.REFUNDED"))
		Expect(out).To(HaveKeyWithValue("status", "PENDING"), "its one delivery failed")
		code, out = r.call("GET", "/v1/notifications/webhooks-events?event_type=PAYMENT.CAPTURE.REFUNDED", tok, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out["count"]).To(BeNumerically("==", 1))

		code, out = r.call("POST", "/v1/notifications/webhooks-events/"+event+"/resend", tok, map[string]any{"webhook_ids": []string{id}})
		Expect(code).To(Equal(http.StatusAccepted), fmt.Sprint(out))
		Expect(out).To(HaveKeyWithValue("status", "SUCCESS"), "the resend got its 200")
		_, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok", "ok"}), "the resend is signed anew and verifies")
	})

	It("simulates an event as PayPal's simulator does, but to any address: signed for WEBHOOK_ID, sent once, never resent, never verified by the API", func() {
		r := newRig()
		tok := r.token()
		id := r.subscribe(tok, "/hooks/prod", "*")
		code, out := r.call("POST", "/v1/notifications/simulate-event", tok, map[string]any{"webhook_id": id, "event_type": "PAYMENT.CAPTURE.COMPLETED"})
		Expect(code).To(Equal(http.StatusAccepted), fmt.Sprint(out))
		event := out["id"].(string)
		got, verdicts := r.deliveries()
		Expect(verdicts).To(HaveLen(1))
		Expect(verdicts[0]).To(HavePrefix("signature: "), "a listener configured with its webhook's id refuses a mock event")
		Expect(r.verify(got[0].header, got[0].body, paypalrest.MockWebhookID)).To(Equal("ok"), "it is signed for WEBHOOK_ID")
		Expect(r.emu.Advance(24 * time.Hour)).To(Succeed())
		got, _ = r.deliveries()
		Expect(got).To(HaveLen(1), "never retried")

		code, _ = r.call("GET", "/v1/notifications/webhooks", tok, nil)
		Expect(code).To(Equal(http.StatusUnauthorized), "a token lasts 9 hours of the clock")
		tok = r.token()
		code, out = r.call("POST", "/v1/notifications/webhooks-events/"+event+"/resend", tok, nil)
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(out["message"]).To(ContainSubstring("mock event"))
		Expect(r.emu.Resend(event, emulator.ResendRequest{})).To(MatchError(ContainSubstring("PayPal cannot resend those")))

		req := fmt.Sprintf(`{"auth_algo":%q,"cert_url":%q,"transmission_id":%q,"transmission_sig":%q,"transmission_time":%q,"webhook_id":"WEBHOOK_ID","webhook_event":%s}`,
			got[0].header.Get("Paypal-Auth-Algo"), got[0].header.Get("Paypal-Cert-Url"), got[0].header.Get("Paypal-Transmission-Id"),
			got[0].header.Get("Paypal-Transmission-Sig"), got[0].header.Get("Paypal-Transmission-Time"), got[0].body)
		code, out = r.call("POST", "/v1/notifications/verify-webhook-signature", tok, []byte(req))
		Expect(code).To(Equal(http.StatusOK))
		Expect(out).To(HaveKeyWithValue("verification_status", "FAILURE"))
		Expect(out["ipnlab_reason"]).To(ContainSubstring("mock event of the webhooks simulator"))
	})
})

var _ = Describe("A restarted emulator's REST provider", func() {
	It("keeps its webhooks, key and messages: a retry after the restart is signed with the same certificate and verifies", func() {
		r := newRigAt(filepath.Join(GinkgoT().TempDir(), "journal.db"))
		r.subscribe(r.token(), "/hooks/restart", "*")
		r.fail = 1
		r.send("PAYMENT.CAPTURE.COMPLETED", 4)
		r.restart()
		Expect(r.emu.Restored().Providers).To(HaveKeyWithValue(paypalrest.Provider, emulator.RestoredCounts{"messages": 1, "webhooks": 1, "signers": 1}))
		code, out := r.call("GET", "/v1/notifications/webhooks", r.token(), nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out["webhooks"]).To(HaveLen(1))

		Expect(r.emu.Advance(time.Hour)).To(Succeed())
		got, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok", "ok"}), "the retry after the restart verifies")
		Expect(got[1].header.Get("Paypal-Cert-Url")).To(Equal(got[0].header.Get("Paypal-Cert-Url")))
	})
})

var _ = Describe("The REST provider's signing keys", func() {
	// keyAt is the public key of the certificate a cert URL serves.
	keyAt := func(r *rig, certURL string) *rsa.PublicKey {
		GinkgoHelper()
		if strings.HasPrefix(certURL, "https://"+paypalrest.CertHost) {
			certURL = r.api.URL + strings.TrimPrefix(certURL, "https://"+paypalrest.CertHost)
		}
		resp, err := http.Get(certURL)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		pemBytes, _ := io.ReadAll(resp.Body)
		block, _ := pem.Decode(pemBytes)
		Expect(block).NotTo(BeNil(), certURL)
		cert, err := x509.ParseCertificate(block.Bytes)
		Expect(err).NotTo(HaveOccurred())
		return cert.PublicKey.(*rsa.PublicKey)
	}
	lastCertURL := func(r *rig) string {
		GinkgoHelper()
		got, _ := r.deliveries()
		return got[len(got)-1].header.Get("Paypal-Cert-Url")
	}

	It("are shared by the emulators of a process, but one never signs with a key it used before, after a restart too, nor forges with one of its own", func() {
		a := newRigAt(filepath.Join(GinkgoT().TempDir(), "journal.db"))
		a.subscribe(a.token(), "/hooks/keys", "*")
		var used []*rsa.PublicKey
		usedAlready := func(k *rsa.PublicKey) bool {
			return slices.ContainsFunc(used, func(u *rsa.PublicKey) bool { return u.Equal(k) })
		}
		fresh := func(k *rsa.PublicKey, what string) {
			GinkgoHelper()
			Expect(usedAlready(k)).To(BeFalse(), "%s reuses a key this emulator signed with", what)
			used = append(used, k)
		}
		a.send("PAYMENT.CAPTURE.COMPLETED", 1)
		fresh(keyAt(a, lastCertURL(a)), "the first key")
		for i := range 2 {
			code, out := a.call("POST", "/api/v1/paypalrest/rotate", "", nil)
			Expect(code).To(Equal(http.StatusOK))
			fresh(keyAt(a, out["cert_url"].(string)), fmt.Sprintf("rotation #%d", i+1))
		}
		a.restart()
		code, out := a.call("POST", "/api/v1/paypalrest/rotate", "", nil)
		Expect(code).To(Equal(http.StatusOK))
		fresh(keyAt(a, out["cert_url"].(string)), "a rotation after the restart")
		code, out = a.call("POST", "/api/v1/paypalrest/events", "", map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 3, "tamper": "foreign_cert"})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		fresh(keyAt(a, lastCertURL(a)), "the attacker")

		b := newRig()
		b.subscribe(b.token(), "/hooks/keys", "*")
		b.send("PAYMENT.CAPTURE.COMPLETED", 1)
		Expect(usedAlready(keyAt(b, lastCertURL(b)))).To(BeTrue(), "another emulator takes a key already made")
	})
})

var _ = Describe("The REST provider's part of the OpenAPI document", func() {
	It("describes every route it serves, and no other, merged into the document the emulator serves", func() {
		r := newRig()
		var doc struct {
			Paths map[string]map[string]any `yaml:"paths"`
		}
		Expect(yaml.Unmarshal(r.emu.OpenAPI(), &doc)).To(Succeed())
		var documented []string
		for path, ops := range doc.Paths {
			for method := range ops {
				if method != "parameters" && (strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/api/v1/paypalrest/")) {
					documented = append(documented, strings.ToUpper(method)+" "+path)
				}
			}
		}
		var served []string
		for _, rt := range r.emu.Routes() {
			if strings.Contains(rt, " /v1/") || strings.Contains(rt, " /api/v1/paypalrest/") {
				served = append(served, rt)
			}
		}
		Expect(documented).To(ConsistOf(served))
		Expect(served).To(HaveLen(17))
	})
})

var _ = Describe("PayPal's REST hosts through the intercepting proxy", func() {
	// through starts an emulator standing in for PayPal's hosts with a CA
	// kept in dir, and returns a client that trusts the CA and goes
	// through the proxy, as `ipnlab ca env` makes an integration's.
	through := func(dir string) (*http.Client, *emulator.Emulator) {
		ca, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Intercept: ca, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Providers: []emulator.Factory{paypalrest.Factory(paypalrest.Settings{})}})
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(emu)
		DeferCleanup(func() { srv.Close(); emu.Close() })
		proxy, err := url.Parse(srv.URL)
		Expect(err).NotTo(HaveOccurred())
		return ca.Client(proxy), emu
	}

	It("answers an integration's calls to api.sandbox.paypal.com and api.paypal.com unchanged: OAuth, and the certificate at PAYPAL-CERT-URL", func() {
		client, _ := through(GinkgoT().TempDir())
		for _, host := range []string{"https://api.sandbox.paypal.com", "https://api.paypal.com"} {
			req, err := http.NewRequest("POST", host+"/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
			Expect(err).NotTo(HaveOccurred())
			req.SetBasicAuth(paypalrest.DefaultClientID, paypalrest.DefaultSecret)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := client.Do(req)
			Expect(err).NotTo(HaveOccurred())
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			Expect(json.NewDecoder(resp.Body).Decode(&tok)).To(Succeed())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusOK), host)
			Expect(tok.AccessToken).To(HavePrefix("A21AA"))
		}
		resp, err := client.Get("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-none")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusNotFound), "served by the provider: it has no such certificate")
		resp, err = client.Get("https://api.sandbox.paypal.com/api/v1/messages")
		Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusNotFound), "the control API is not PayPal's")
		Expect(string(body)).To(ContainSubstring("ipnlab stands in for paypalrest on this host only"))
	})

	It("refuses PayPal's REST hosts, saying what to do, with a CA made when it covered the verify hosts alone", func() {
		dir := GinkgoT().TempDir()
		old := intercept.Domains
		intercept.Domains = intercept.Hosts // how CAs were made before
		_, err := intercept.LoadOrCreate(dir)
		intercept.Domains = old
		Expect(err).NotTo(HaveOccurred())
		client, emu := through(dir)
		_, err = client.Get("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-none")
		Expect(err).To(HaveOccurred())
		t, ok := emu.ProxyTraffic(time.Time{})
		Expect(ok).To(BeTrue())
		last, _ := t.Last(intercept.Refused)
		Expect(last.Detail).To(ContainSubstring("was made before ipnlab stood in for api.sandbox.paypal.com, and does not cover it: to make a new one, remove " + dir))
		resp, err := client.Post("https://ipnpb.sandbox.paypal.com/cgi-bin/webscr", "application/x-www-form-urlencoded", strings.NewReader("cmd=_notify-validate"))
		Expect(err).NotTo(HaveOccurred(), "the verify hosts it covers are still served")
		resp.Body.Close()
	})
})

var _ = Describe("What a scenario sends to catch a listener's bugs", func() {
	post := func(r *rig, req map[string]any) (int, map[string]any) {
		return r.call("POST", "/api/v1/paypalrest/events", "", req)
	}

	It("writes escapes a re-serialization changes, forges an amount after signing, sends copies and mock events, and pins ids", func() {
		r := newRig()
		r.subscribe(r.token(), "/hooks/q", "*")

		code, out := post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 3, "quirks": true, "currency": "EUR"})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		got, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok"}), "escaped, and still verified over the bytes")
		Expect(string(got[0].body)).To(ContainSubstring(`"summary":"Payment completed for \u20ac `))
		Expect(string(got[0].body)).To(ContainSubstring(`"href":"https:\/\/api.sandbox.paypal.com\/v1\/notifications\/webhooks-events\/WH-`))
		var parsed map[string]any
		Expect(json.Unmarshal(got[0].body, &parsed)).To(Succeed())
		again, err := json.Marshal(parsed)
		Expect(err).NotTo(HaveOccurred())
		Expect(r.verify(got[0].header, again, r.webhookID("/hooks/q"))).To(HavePrefix("signature: "), "re-serialized, it no longer verifies")

		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 4, "amount": "25.00", "tamper": "body"})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		got, verdicts = r.deliveries()
		Expect(string(got[1].body)).To(ContainSubstring(`"amount":{"currency_code":"USD","value":"2500.00"}`))
		Expect(verdicts[1]).To(HavePrefix("signature: "), "signed over the genuine 25.00")

		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 5, "copies": 3})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		Expect(out["messages"]).To(HaveLen(3))
		got, verdicts = r.deliveries()
		Expect(verdicts[2:]).To(Equal([]string{"ok", "ok", "ok"}))
		Expect(got[2].body).To(Equal(got[4].body), "the same event, the same bytes")
		Expect(got[2].header.Get("Paypal-Transmission-Id")).NotTo(Equal(got[4].header.Get("Paypal-Transmission-Id")))

		capture := out["messages"].([]any)[0].(map[string]any)["txn_id"].(string)
		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.REFUNDED", "seed": 6, "parent": capture})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.REVERSED", "seed": 7, "resource_id": capture})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		Expect(out["messages"].([]any)[0].(map[string]any)["txn_id"]).To(Equal(capture))
		got, _ = r.deliveries()
		Expect(string(got[5].body)).To(ContainSubstring(`"href":"https://api.sandbox.paypal.com/v2/payments/captures/` + capture + `","rel":"up"`))

		code, out = post(r, map[string]any{"event_type": "CHECKOUT.ORDER.APPROVED", "seed": 9})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		order := out["messages"].([]any)[0].(map[string]any)["txn_id"].(string)
		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 10, "parent": order})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		got, _ = r.deliveries()
		Expect(string(got[len(got)-1].body)).To(ContainSubstring(`"related_ids":{"order_id":"`+order+`"}`), "the approved order, captured")
		Expect(string(got[len(got)-1].body)).To(ContainSubstring(`/v2/checkout/orders/` + order + `","rel":"up"`))

		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 8, "mock": true, "notify_url": r.lsrv.URL + "/hooks/q"})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		got, _ = r.deliveries()
		last := got[len(got)-1]
		Expect(r.verify(last.header, last.body, paypalrest.MockWebhookID)).To(Equal("ok"), "signed for WEBHOOK_ID")

		for _, bad := range []map[string]any{
			{"event_type": "PAYMENT.CAPTURE.COMPLETED", "tamper": "header"},
			{"event_type": "PAYMENT.CAPTURE.COMPLETED", "copies": 101},
			{"event_type": "PAYMENT.CAPTURE.COMPLETED", "mock": true},
		} {
			code, out = post(r, bad)
			Expect(code).To(Equal(http.StatusBadRequest), fmt.Sprint(bad))
			Expect(fmt.Sprint(out)).To(MatchRegexp(`tamper "header": want body|copies 101: want 1 to 100|mock: give notify_url`))
		}
	})

	It("rotates the key for one event, fails the fetches of its certificate for a moment, and signs forgeries on an attacker's host", func() {
		r := newRig()
		r.subscribe(r.token(), "/hooks/k", "*")
		r.send("PAYMENT.CAPTURE.COMPLETED", 1)
		code, out := post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 2, "rotate": true, "cert_outage": 2})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		got, verdicts := r.deliveries()
		first, rotated := got[0].header.Get("Paypal-Cert-Url"), got[1].header.Get("Paypal-Cert-Url")
		Expect(rotated).NotTo(Equal(first))
		Expect(verdicts[1]).To(ContainSubstring("no certificate"), "the listener's fetch met the outage")
		path := strings.TrimPrefix(rotated, "https://"+paypalrest.CertHost)
		status := func(p string) int {
			resp, err := http.Get(r.api.URL + p)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			return resp.StatusCode
		}
		Expect(status(path)).To(Equal(http.StatusServiceUnavailable), "the second fetch fails too")
		Expect(status(path)).To(Equal(http.StatusOK), "then it is back")
		Expect(status(strings.TrimPrefix(first, "https://"+paypalrest.CertHost))).To(Equal(http.StatusOK), "the old one stays served")

		code, out = post(r, map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED", "seed": 3, "tamper": "foreign_cert"})
		Expect(code).To(Equal(http.StatusCreated), fmt.Sprint(out))
		got, verdicts = r.deliveries()
		forged := got[len(got)-1]
		Expect(verdicts[len(verdicts)-1]).To(HavePrefix("cert URL on a foreign host: http://127.0.0.1:"))
		certURL := forged.header.Get("Paypal-Cert-Url")
		Expect(certURL).To(ContainSubstring("/paypal.com/certs/"))
		resp, err := http.Get(certURL)
		Expect(err).NotTo(HaveOccurred(), "the attacker's host serves its certificate")
		pemBytes, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		block, _ := pem.Decode(pemBytes)
		Expect(block).NotTo(BeNil())
		cert, err := x509.ParseCertificate(block.Bytes)
		Expect(err).NotTo(HaveOccurred())
		sig, _ := base64.StdEncoding.DecodeString(forged.header.Get("Paypal-Transmission-Sig"))
		sum := sha256.Sum256([]byte(paypalrest.SignedString(forged.header.Get("Paypal-Transmission-Id"), forged.header.Get("Paypal-Transmission-Time"), r.webhookID("/hooks/k"), forged.body)))
		Expect(rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig)).To(Succeed(), "signed for the listener's webhook with the attacker's key")

		r.stop()
		_, err = http.Get(certURL)
		Expect(err).To(HaveOccurred(), "the attacker's host closes with the emulator")
		r.start()
	})

	It("subscribes a URL under the id a listener is configured with", func() {
		r := newRig()
		p, _ := r.emu.Provider(paypalrest.Provider)
		plugin := p.(*paypalrest.Plugin)
		wh, err := plugin.Subscribe(paypalrest.Webhook{ID: "WH-MINE", URL: r.lsrv.URL + "/hooks/mine"})
		Expect(err).NotTo(HaveOccurred())
		Expect(wh.EventTypes).To(Equal([]paypalrest.EventType{{Name: "*"}}))
		_, err = plugin.Subscribe(paypalrest.Webhook{ID: "WH-MINE", URL: r.lsrv.URL + "/hooks/mine"})
		Expect(err).NotTo(HaveOccurred(), "the same again is kept")
		_, err = plugin.Subscribe(paypalrest.Webhook{ID: "WH-MINE", URL: r.lsrv.URL + "/hooks/other"})
		Expect(err).To(MatchError(ContainSubstring("webhook id WH-MINE is taken")))
		_, err = plugin.Subscribe(paypalrest.Webhook{ID: "WH MINE", URL: r.lsrv.URL + "/hooks/x"})
		Expect(err).To(MatchError(ContainSubstring("without spaces")))
		webhookIDs.Store(r.lsrv.URL+"/hooks/mine", "WH-MINE")
		r.send("PAYMENT.CAPTURE.COMPLETED", 9)
		_, verdicts := r.deliveries()
		Expect(verdicts).To(Equal([]string{"ok"}))
	})
})

var _ = Describe("An app in a sandbox account", func() {
	It("has credentials of its own, drawn once and kept across restarts, and claims only its own calls", func() {
		path := filepath.Join(GinkgoT().TempDir(), "j.db")
		start := func() (*emulator.Emulator, journal.Journal) {
			j, err := sqlitejournal.Open(path)
			Expect(err).NotTo(HaveOccurred())
			emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 7, Account: "acct-1", Journal: j,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Providers: []emulator.Factory{paypalrest.Factory(paypalrest.Settings{})}})
			Expect(err).NotTo(HaveOccurred())
			return emu, j
		}
		emu, j := start()
		p, _ := emu.Provider(paypalrest.Provider)
		first := p.(*paypalrest.Plugin).Credentials()
		Expect(first.ClientID).To(Equal("ipnlab-acct-1"))
		Expect(first.Secret).NotTo(Equal(paypalrest.DefaultSecret))

		mine := httptest.NewRequest("POST", "/v1/oauth2/token", nil)
		mine.SetBasicAuth(first.ClientID, first.Secret)
		other := httptest.NewRequest("POST", "/v1/oauth2/token", nil)
		other.SetBasicAuth(paypalrest.DefaultClientID, paypalrest.DefaultSecret)
		Expect(emu.Claims(mine)).To(BeTrue())
		Expect(emu.Claims(other)).To(BeFalse())
		Expect(emu.Claims(httptest.NewRequest("GET", "/v1/notifications/certs/CERT-nobodys", nil))).To(BeFalse())

		Expect(emu.Shutdown(context.Background())).To(Succeed())
		Expect(j.Close()).To(Succeed())
		emu, j = start()
		p, _ = emu.Provider(paypalrest.Provider)
		Expect(p.(*paypalrest.Plugin).Credentials()).To(Equal(first), "kept across a restart")
		Expect(emu.Shutdown(context.Background())).To(Succeed())
		Expect(j.Close()).To(Succeed())
	})
})

var _ = Describe("What a tail shows of a REST listener", func() {
	It("prints its certificate fetches and its verify API calls, a FAILURE with why", func() {
		r := newRig()
		tok := r.token()
		r.subscribe(tok, "/hooks/t", "*")
		r.send("PAYMENT.CAPTURE.COMPLETED", 4)
		got, _ := r.deliveries()
		d := got[0]
		r.verifyAs(tok, d, r.webhookID("/hooks/t"), d.body)
		r.verifyAs(tok, d, r.webhookID("/hooks/t"), bytes.Replace(d.body, []byte(`"final_capture":true`), []byte(`"final_capture":false`), 1))
		evs, _ := r.emu.Events().Since(0, 1000)
		var lines []string
		for _, ev := range evs {
			if ev.Type == events.Note {
				l, ok := tail.Format(ev)
				Expect(ok).To(BeTrue())
				lines = append(lines, fmt.Sprint(l.Tone, " ", l.Text))
			}
		}
		Expect(lines).To(HaveLen(3))
		Expect(lines[0]).To(MatchRegexp(`^1 paypalrest certificate CERT-\S+ fetched$`))
		Expect(lines[1]).To(MatchRegexp(`^1 paypalrest verify API → SUCCESS for transmission \S+$`))
		Expect(lines[2]).To(MatchRegexp(`^2 paypalrest verify API → FAILURE for transmission \S+: webhook_event: .*resource.final_capture`))
	})
})

var _ = Describe("Notify's set", func() {
	It("takes a flag or a count as a YAML value, a JSON number or the command line's text, and names a wrong one", func() {
		r := newRig()
		r.subscribe(r.token(), "/hooks/n", "*")
		p, _ := r.emu.Provider(paypalrest.Provider)
		rest := p.(*paypalrest.Plugin)
		for _, set := range []map[string]any{{"quirks": true, "cert_outage": 1}, {"quirks": "true", "cert_outage": "1"}, {"quirks": false, "cert_outage": 1.0}} {
			views, err := rest.Notify(emulator.Notify{Kind: "PAYMENT.CAPTURE.COMPLETED", Set: set})
			Expect(err).NotTo(HaveOccurred(), "%v", set)
			Expect(views).To(HaveLen(1))
		}
		for set, want := range map[string]map[string]any{
			`set.quirks: want true or false, not "yes"`:       {"quirks": "yes"},
			"set.cert_outage: want a whole number of fetches": {"cert_outage": 1.5},
			`set.colour: want amount, currency, custom_id`:    {"colour": "red"},
		} {
			_, err := rest.Notify(emulator.Notify{Kind: "PAYMENT.CAPTURE.COMPLETED", Set: want})
			Expect(err).To(MatchError(ContainSubstring(set)))
		}
	})
})

var _ = Describe("A REST message in History", func() {
	It("shows its event, webhook, last transmission, how it is signed, and every answer the verify API gave about it", func() {
		r := newRig()
		tok := r.token()
		r.subscribe(tok, "/hooks/h", "*")
		msgs := r.send("PAYMENT.CAPTURE.COMPLETED", 8)
		id := msgs[0].(map[string]any)["id"].(string)
		got, _ := r.deliveries()
		d := got[0]
		for _, event := range [][]byte{d.body, bytes.Replace(d.body, []byte(`"final_capture":true`), []byte(`"final_capture":false`), 1)} {
			r.verifyAs(tok, d, r.webhookID("/hooks/h"), event)
		}
		v, ok := r.emu.View(id)
		Expect(ok).To(BeTrue())
		details := map[string][]string{}
		for _, dt := range v.Details {
			details[dt.Label] = append(details[dt.Label], dt.Value)
		}
		Expect(details["Webhook ID"]).To(Equal([]string{r.webhookID("/hooks/h")}))
		Expect(details["Signed"][0]).To(HavePrefix("SHA256withRSA over id|time|" + r.webhookID("/hooks/h") + "|crc32 of the body"))
		Expect(details["Verify API"]).To(HaveLen(2))
		Expect(details["Verify API"][0]).To(HavePrefix("SUCCESS at "))
		Expect(details["Verify API"][1]).To(MatchRegexp(`^FAILURE: webhook_event: .*resource.final_capture.* at `))
	})
})
