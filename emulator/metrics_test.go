package emulator_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/emulator/metrics"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// scrape reads url's metrics with token ("" for none).
func scrape(url, token string) (int, metrics.Values) {
	req, err := http.NewRequest("GET", url+"/metrics", nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	Expect(resp.Header.Get("Content-Type")).To(HavePrefix("text/plain"))
	v, err := metrics.Parse(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, v
}

var _ = Describe("/metrics", func() {
	It("counts deliveries by outcome and code, the retry queue, and postbacks by verdict and rule", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)

		_, before := scrape(l.api.URL, "")
		Expect(before.Sum("ipnlab_messages_total")).To(BeZero())
		Expect(before["go_goroutines"]).NotTo(BeEmpty(), "Go's runtime collector")

		// A 500 first: one refused attempt, one retry armed.
		l.listener.set(500, nil)
		msg := l.send(map[string]any{"kind": "web_accept"})
		_, v := scrape(l.api.URL, "")
		Expect(v.Sum("ipnlab_messages_total", "provider", "paypal", "account", "default")).To(Equal(1.0))
		Expect(v.Sum("ipnlab_deliveries_total", "outcome", "refused", "code", "500")).To(Equal(1.0))
		Expect(v.Sum("ipnlab_deliveries_total", "outcome", "acked")).To(BeZero())
		Expect(v.Sum("ipnlab_retry_queue_waiting")).To(Equal(1.0))
		Expect(v.Sum("ipnlab_retry_queue_oldest_overdue_seconds")).To(BeZero(), "the retry is not due yet")
		Expect(v.Sum("ipnlab_delivery_attempt_seconds", "provider", "paypal")).To(Equal(1.0))
		Expect(v.Sum("ipnlab_postbacks_total", "verdict", "VERIFIED", "rule", "none")).To(Equal(1.0))

		// The listener mangles the second postback: INVALID, by its rule.
		l.listener.set(200, func(body []byte) []byte {
			return []byte("cmd=_notify-validate&" + strings.Replace(string(body), "txn_id=", "txn_id=X", 1))
		})
		l.clk.Advance(24 * time.Hour)
		Eventually(func() float64 {
			_, v := scrape(l.api.URL, "")
			return v.Sum("ipnlab_deliveries_total", "outcome", "acked", "code", "200")
		}).Should(Equal(1.0))
		_, v = scrape(l.api.URL, "")
		Expect(v.Sum("ipnlab_retry_queue_waiting")).To(BeZero())
		Expect(v.Sum("ipnlab_postbacks_total", "verdict", "INVALID")).To(Equal(1.0))
		Expect(v["ipnlab_postbacks_total"]).To(ContainElement(HaveField("Labels", HaveKeyWithValue("rule", Not(Equal("none"))))))
		Expect(l.message(msg["id"].(string))["status"]).To(Equal("Sent"))
	})

	It("counts unreachable attempts and shows an overdue queue", func() {
		clk := clock.NewManual(t0)
		emu, err := emulator.New(emulator.Config{Clock: clk, Seed: 5, AckTimeout: time.Second})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(emu.Close)
		api := httptest.NewServer(emu)
		DeferCleanup(api.Close)
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close() // a port nobody listens on
		_, err = emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: dead.URL + "/ipn"})
		Expect(err).NotTo(HaveOccurred())
		_, v := scrape(api.URL, "")
		Expect(v.Sum("ipnlab_deliveries_total", "outcome", "unreachable", "code", "none")).To(Equal(1.0))
		Expect(v.Sum("ipnlab_retry_queue_waiting")).To(Equal(1.0))
	})

	It("counts the journal's commits and records", func() {
		jnl, err := sqlitejournal.Open(filepath.Join(GinkgoT().TempDir(), "m.db"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(jnl.Close)
		l := &lab{clk: clock.NewManual(t0), listener: &testListener{status: 200}}
		l.emu, err = emulator.New(emulator.Config{Clock: l.clk, Seed: 7, Journal: jnl})
		Expect(err).NotTo(HaveOccurred())
		l.api = httptest.NewServer(l.emu)
		l.listener.verifyURL = l.api.URL + "/cgi-bin/webscr"
		l.lsrv = httptest.NewServer(l.listener)
		DeferCleanup(l.close)
		l.send(map[string]any{"kind": "web_accept"})
		Eventually(func() float64 {
			_, v := scrape(l.api.URL, "")
			return v.Sum("ipnlab_journal_records_total")
		}).Should(BeNumerically(">=", 3), "the message, its attempt, its postback")
		_, v := scrape(l.api.URL, "")
		Expect(v.Sum("ipnlab_journal_commit_seconds")).To(BeNumerically(">=", 1))
		Expect(v.Sum("ipnlab_journal_errors_total")).To(BeZero())
	})

	It("needs the API token or the metrics token when a token is set, and the metrics token opens nothing else", func() {
		emu, err := emulator.New(emulator.Config{APIToken: "api-secret", MetricsToken: "scrape-secret"})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(emu.Close)
		api := httptest.NewServer(emu)
		DeferCleanup(api.Close)

		code, _ := scrape(api.URL, "")
		Expect(code).To(Equal(http.StatusUnauthorized))
		code, _ = scrape(api.URL, "wrong")
		Expect(code).To(Equal(http.StatusUnauthorized))
		code, _ = scrape(api.URL, "api-secret")
		Expect(code).To(Equal(http.StatusOK))
		code, _ = scrape(api.URL, "scrape-secret")
		Expect(code).To(Equal(http.StatusOK))

		req, _ := http.NewRequest("GET", api.URL+"/api/v1/messages", nil)
		req.Header.Set("Authorization", "Bearer scrape-secret")
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))
	})
})
