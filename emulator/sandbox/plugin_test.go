package sandbox_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
	"github.com/ipnlab/ipnlab/internal/webhooktest"
)

var _ = Describe("A plug-in provider in a sandbox", func() {
	It("is made anew for every account: a message sent through one account's route is in that account's History alone", func() {
		tally := webhooktest.New("tally")
		sb, err := sandbox.New(sandbox.Config{
			AdminToken: admin,
			Base: emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AckTimeout: 2 * time.Second,
				Providers: []emulator.Factory{tally.Factory}},
			NewClock: func() clock.Clock { return clock.NewManual(t0) },
		})
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(sb.Handler())
		DeferCleanup(func() { srv.Close(); sb.Close() })
		ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(ok.Close)
		_, tokA, _ := account(srv.URL, "team-a")
		_, tokB, _ := account(srv.URL, "team-b")
		Expect(len(tally.Made())).To(BeNumerically(">=", 2), "one provider per account")

		code, out := call(srv.URL, tokA, "POST", "/api/v1/tally/notifications", map[string]any{"kind": "tally.counted", "notify_url": ok.URL})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		id := out["messages"].([]any)[0].(map[string]any)["id"].(string)
		Expect(messageIDs(srv.URL, tokA)).To(ContainElement(id))
		Expect(messageIDs(srv.URL, tokB)).NotTo(ContainElement(id), "account team-a's message in team-b's History")
		code, _ = call(srv.URL, tokB, "GET", "/api/v1/messages/"+id, nil)
		Expect(code).To(Equal(http.StatusNotFound))
	})
})

var _ = Describe("PayPal REST webhooks in a sandbox", func() {
	It("gives every account an app of its own, and routes PayPal's API calls (OAuth, webhooks, verify, certificates) to the account they belong to", func() {
		sb, err := sandbox.New(sandbox.Config{
			AdminToken: admin,
			Base: emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AckTimeout: 2 * time.Second,
				Providers: []emulator.Factory{paypalrest.Factory(paypalrest.Settings{})}},
			NewClock: func() clock.Clock { return clock.NewManual(t0) },
		})
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(sb.Handler())
		DeferCleanup(func() { srv.Close(); sb.Close() })
		var mu sync.Mutex
		var got []http.Header
		hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, r.Header.Clone())
			mu.Unlock()
		}))
		DeferCleanup(hook.Close)
		_, tokA, _ := account(srv.URL, "team-a")
		_, tokB, _ := account(srv.URL, "team-b")

		app := func(tok string) paypalrest.Credentials {
			code, out := call(srv.URL, tok, "GET", "/api/v1/paypalrest/credentials", nil)
			Expect(code).To(Equal(http.StatusOK), "%v", out)
			return paypalrest.Credentials{ClientID: out["client_id"].(string), Secret: out["secret"].(string)}
		}
		a, b := app(tokA), app(tokB)
		Expect(a.ClientID).To(HavePrefix("ipnlab-A-"), "named for the account")
		Expect(b.ClientID).NotTo(Equal(a.ClientID))
		Expect(b.Secret).NotTo(Equal(a.Secret))

		oauth := func(c paypalrest.Credentials) (int, string) {
			req, err := http.NewRequest("POST", srv.URL+"/v1/oauth2/token", strings.NewReader("grant_type=client_credentials"))
			Expect(err).NotTo(HaveOccurred())
			req.SetBasicAuth(c.ClientID, c.Secret)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			var out struct {
				Token string `json:"access_token"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out.Token
		}
		code, oauthA := oauth(a)
		Expect(code).To(Equal(http.StatusOK))
		code, _ = oauth(paypalrest.Credentials{ClientID: a.ClientID, Secret: b.Secret})
		Expect(code).To(Equal(http.StatusUnauthorized), "A's client id with B's secret")

		code, out := call(srv.URL, oauthA, "POST", "/v1/notifications/webhooks", map[string]any{"url": hook.URL, "event_types": []any{map[string]string{"name": "*"}}})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		code, out = call(srv.URL, tokA, "POST", "/api/v1/paypalrest/events", map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED"})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		code, out = call(srv.URL, tokB, "POST", "/api/v1/paypalrest/events", map[string]any{"event_type": "PAYMENT.CAPTURE.COMPLETED"})
		Expect(code).To(Equal(http.StatusBadRequest), "team-b has no webhook: %v", out)

		mu.Lock()
		Expect(got).To(HaveLen(1))
		certURL := got[0].Get("Paypal-Cert-Url")
		mu.Unlock()
		u, err := url.Parse(certURL)
		Expect(err).NotTo(HaveOccurred())
		resp, err := http.Get(srv.URL + u.Path)
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK), "the certificate, from the account whose key it is")

		code, out = call(srv.URL, oauthA, "GET", "/v1/notifications/webhooks", nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(out["webhooks"]).To(HaveLen(1), "team-a's webhook, by its OAuth token")
		code, _ = call(srv.URL, "A21AAnot-a-token", "GET", "/v1/notifications/webhooks", nil)
		Expect(code).To(Equal(http.StatusUnauthorized))
	})
})
