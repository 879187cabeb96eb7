package emulator_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/paydo"
)

// jsonListener records PayDo deliveries and answers with status.
type jsonListener struct {
	mu      sync.Mutex
	status  int
	bodies  []map[string]any
	remotes []string
	xff     []string
}

func (l *jsonListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	Expect(json.Unmarshal(raw, &body)).To(Succeed(), string(raw))
	Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	l.mu.Lock()
	l.bodies = append(l.bodies, body)
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	l.remotes = append(l.remotes, host)
	l.xff = append(l.xff, r.Header.Get("X-Forwarded-For"))
	status := l.status
	l.mu.Unlock()
	w.WriteHeader(status)
}

func (l *jsonListener) got() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.bodies...)
}

func tx(body map[string]any) map[string]any { return body["transaction"].(map[string]any) }

var _ = Describe("Fake PayDo", func() {
	var (
		l   *lab
		jl  *jsonListener
		jsv *httptest.Server
	)
	sendPD := func(req map[string]any) []any {
		if _, ok := req["notify_url"]; !ok {
			req["notify_url"] = jsv.URL + "/ipn/paydo"
		}
		code, out := l.call("POST", "/api/v1/paydo/notifications", req)
		Expect(code).To(Equal(201), "%v", out)
		return out["messages"].([]any)
	}
	BeforeEach(func() {
		l = newLab("")
		jl = &jsonListener{status: 200}
		jsv = httptest.NewServer(jl)
		DeferCleanup(func() { jsv.Close(); l.close() })
	})

	It("posts a transfer as JSON with the amount as a number, or as a string on request", func() {
		msgs := sendPD(map[string]any{"kind": "transfer", "params": map[string]any{"amount": "25.00", "status": 3, "currency": "EUR"}})
		Expect(msgs[0].(map[string]any)["status"]).To(Equal("Sent"))
		t := tx(jl.got()[0])
		Expect(t["amount"]).To(Equal(25.0))
		Expect(t["status"]).To(Equal(3.0))
		Expect(t["identifierTxFrom"]).To(MatchRegexp(`^[0-9a-f-]{36}$`))
		Expect(msgs[0].(map[string]any)["body"]).To(MatchRegexp(`^\{"transaction":\{"amount":25,"status":3,"currency":"EUR","identifierTxFrom":"`))

		sendPD(map[string]any{"kind": "transfer", "params": map[string]any{"amount": "10.50", "amount_as_string": true}})
		Expect(tx(jl.got()[1])["amount"]).To(Equal("10.50"))
	})

	It("posts a checkout with invoice metadata and the documented shape", func() {
		sendPD(map[string]any{"kind": "checkout", "params": map[string]any{"status": 5, "metadata": map[string]any{"customer": "c-42"}}})
		b := jl.got()[0]
		inv := b["invoice"].(map[string]any)
		Expect(inv).To(HaveKey("id"))
		Expect(inv).To(HaveKey("txid"))
		Expect(inv["metadata"]).To(Equal(map[string]any{"customer": "c-42"}))
		t := tx(b)
		Expect(t["state"]).To(Equal(5.0))
		Expect(t["order"]).To(HaveKey("id"))
		Expect(t["error"].(map[string]any)["message"]).NotTo(BeEmpty())
		Expect(t["error"].(map[string]any)["code"]).To(Equal(""))
	})

	It("resends for 24 hours of clock time, in well under a second, then shows Failed", func() {
		jl.status = 500
		msgs := sendPD(map[string]any{"kind": "transfer"})
		id := msgs[0].(map[string]any)["id"].(string)
		start := time.Now()
		code, _ := l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "2d"})
		Expect(code).To(Equal(200))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
		m := l.message(id)
		Expect(m["status"]).To(Equal("Failed"))
		attempts := m["attempts"].([]any)
		first, _ := time.Parse(time.RFC3339, attempts[0].(map[string]any)["start"].(string))
		last, _ := time.Parse(time.RFC3339, attempts[len(attempts)-1].(map[string]any)["start"].(string))
		Expect(last.Sub(first)).To(BeNumerically("<=", 24*time.Hour))
		Expect(last.Sub(first)).To(BeNumerically(">", 23*time.Hour))
		second, _ := time.Parse(time.RFC3339, attempts[1].(map[string]any)["start"].(string))
		Expect(second.Sub(first)).To(Equal(time.Minute))
		Expect(len(attempts)).To(Equal(29)) // 1 + 6 doubling waits (63 min) + 22 hourly
	})

	It("stops at the first 200", func() {
		jl.status = 503
		msgs := sendPD(map[string]any{"kind": "checkout"})
		id := msgs[0].(map[string]any)["id"].(string)
		l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "2m"})
		jl.mu.Lock()
		jl.status = 200
		jl.mu.Unlock()
		l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "2d"})
		m := l.message(id)
		Expect(m["status"]).To(Equal("Sent"))
		Expect(m["attempts"]).To(HaveLen(3)) // 0, 1 min (503), 3 min (200)
	})

	It("delivers a duplicate and failed-then-success in order, for one transaction", func() {
		msgs := sendPD(map[string]any{"kind": "transfer", "params": map[string]any{"status": 3}, "copies": 2, "then": []int{2}})
		Expect(msgs).To(HaveLen(3))
		got := jl.got()
		Expect(got).To(HaveLen(3))
		Expect([]any{tx(got[0])["status"], tx(got[1])["status"], tx(got[2])["status"]}).To(Equal([]any{3.0, 3.0, 2.0}))
		Expect(got[0]).To(Equal(got[1]))
		Expect(tx(got[2])["identifierTxFrom"]).To(Equal(tx(got[0])["identifierTxFrom"]))

		sendPD(map[string]any{"kind": "checkout", "params": map[string]any{"status": 5}, "then": []int{2}})
		got = jl.got()
		Expect(tx(got[3])["state"]).To(Equal(5.0))
		Expect(tx(got[4])["state"]).To(Equal(2.0))
		Expect(tx(got[4])["error"].(map[string]any)["message"]).To(Equal(""))
		Expect(tx(got[4])["id"]).To(Equal(tx(got[3])["id"]))
	})

	It("spaces follow-ups by an interval of clock time", func() {
		sendPD(map[string]any{"kind": "checkout", "params": map[string]any{"status": 4}, "then": []int{2}, "interval": "10m"})
		Expect(jl.got()).To(HaveLen(1))
		l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "10m"})
		Expect(jl.got()).To(HaveLen(2))
	})

	It("delivers concurrent copies at the same instant", func() {
		msgs := sendPD(map[string]any{"kind": "transfer", "copies": 10})
		Expect(msgs).To(HaveLen(10))
		Expect(jl.got()).To(HaveLen(10))
	})

	It("answers a status lookup as PayDo's checkout API does: the project's token, the documented shape, 401 and 404", func() {
		msgs := sendPD(map[string]any{"kind": "checkout", "params": map[string]any{"status": 4, "amount": "40.00", "currency": "USD", "identifier": "tx-1"}, "then": []int{2}})
		Expect(msgs).To(HaveLen(2))
		lookup := func(id, token string) (int, map[string]any) {
			req, err := http.NewRequest(http.MethodGet, l.api.URL+"/paydo/v1/transactions/"+id, nil)
			Expect(err).NotTo(HaveOccurred())
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			var out map[string]any
			Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
			return resp.StatusCode, out
		}
		code, out := lookup("tx-1", paydo.DefaultAPIToken)
		Expect(code).To(Equal(200))
		data := out["data"].(map[string]any)
		Expect(data).To(HaveKeyWithValue("identifier", "tx-1"))
		Expect(data).To(HaveKeyWithValue("type", 7.0))
		Expect(data).To(HaveKeyWithValue("state", 2.0))
		Expect(data).To(HaveKeyWithValue("amount", 40.0), "a number, as PayDo sends it")
		Expect(data).To(HaveKeyWithValue("currency", "USD"))
		Expect(data).To(HaveKeyWithValue("createdAt", BeNumerically("==", t0.Unix())))
		Expect(data).To(HaveKey("orderId"))
		Expect(data).To(HaveKeyWithValue("error", BeNil()))

		code, out = lookup("tx-1", "")
		Expect(code).To(Equal(401))
		Expect(out["message"]).To(ContainSubstring("Unauthorized"))
		code, _ = lookup("tx-1", "wrong")
		Expect(code).To(Equal(401))
		code, out = lookup("nope", paydo.DefaultAPIToken)
		Expect(code).To(Equal(404))
		Expect(out).To(HaveKeyWithValue("message", "Transaction not found"))

		// Another project's checkout is not this token's to read.
		code, _ = l.call("PUT", "/api/v1/paydo/projects/shop/ipn-url", map[string]string{"url": jsv.URL + "/shop"})
		Expect(code).To(Equal(200))
		code, _ = l.call("PUT", "/api/v1/paydo/projects/shop/api-token", map[string]string{"token": "shop-secret"})
		Expect(code).To(Equal(204))
		code, res := l.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "checkout", "project": "shop", "params": map[string]any{"identifier": "tx-shop"}})
		Expect(code).To(Equal(201), "%v", res)
		code, _ = lookup("tx-shop", paydo.DefaultAPIToken)
		Expect(code).To(Equal(404))
		code, _ = lookup("tx-shop", "shop-secret")
		Expect(code).To(Equal(200))
		code, _ = lookup("tx-1", "shop-secret")
		Expect(code).To(Equal(404))
		_, evs := l.call("GET", "/api/v1/events/poll?type=paydo.lookup&timeout=1s", nil)
		Expect(evs["events"]).To(HaveLen(7))
	})

	It("keeps one transfer IPN URL per user and sends to the registered URLs", func() {
		code, _ := l.call("PUT", "/api/v1/paydo/users/acme/transfer-ipn-url", map[string]string{"url": jsv.URL + "/transfers"})
		Expect(code).To(Equal(200))
		code, out := l.call("PUT", "/api/v1/paydo/users/acme/transfer-ipn-url", map[string]string{"url": jsv.URL + "/other"})
		Expect(code).To(Equal(409))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("PayDo allows one transfer IPN URL per user"))
		code, _ = l.call("PUT", "/api/v1/paydo/projects/shop/ipn-url", map[string]string{"url": jsv.URL + "/checkout"})
		Expect(code).To(Equal(200))

		code, out = l.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "transfer", "user": "acme"})
		Expect(code).To(Equal(201), "%v", out)
		Expect(out["messages"].([]any)[0].(map[string]any)["url"]).To(Equal(jsv.URL + "/transfers"))
		code, out = l.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "checkout", "project": "shop"})
		Expect(code).To(Equal(201))
		Expect(out["messages"].([]any)[0].(map[string]any)["url"]).To(Equal(jsv.URL + "/checkout"))

		code, out = l.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "checkout", "project": "nobody"})
		Expect(code).To(Equal(400))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("no IPN URL"))

		code, _ = l.call("DELETE", "/api/v1/paydo/users/acme/transfer-ipn-url", nil)
		Expect(code).To(Equal(200))
		code, _ = l.call("PUT", "/api/v1/paydo/users/acme/transfer-ipn-url", map[string]string{"url": jsv.URL + "/other"})
		Expect(code).To(Equal(200))
	})

	It("lists PayDo messages in History", func() {
		sendPD(map[string]any{"kind": "transfer"})
		_, out := l.call("GET", "/api/v1/messages?provider=paydo", nil)
		Expect(out["total"]).To(BeNumerically("==", 1))
	})

	DescribeTable("rejects bad requests with a clear error",
		func(req string, msg string) {
			code, out := l.call("POST", "/api/v1/paydo/notifications", req)
			Expect(code).To(Equal(400), "%v", out)
			Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(msg))
			Expect(jl.got()).To(BeEmpty())
		},
		Entry("no kind", `{}`, "kind is required"),
		Entry("unknown kind", `{"kind":"refund","notify_url":"http://127.0.0.1:9/"}`, `unknown PayDo kind "refund"`),
		Entry("bad transfer status", `{"kind":"transfer","params":{"status":4},"notify_url":"http://127.0.0.1:9/"}`, "transfer status 4"),
		Entry("bad then state", `{"kind":"checkout","then":[9],"notify_url":"http://127.0.0.1:9/"}`, "then: checkout state 9"),
		Entry("override of an unknown path", `{"kind":"transfer","set":{"transaction.state":2},"notify_url":"http://127.0.0.1:9/"}`, `"transaction.state": no such field; transaction has amount, status, currency, identifierTxFrom`),
		Entry("override that is not an object", `{"kind":"transfer","set":[1],"notify_url":"http://127.0.0.1:9/"}`, "set: want a JSON object"),
		Entry("bad metadata", `{"kind":"checkout","params":{"metadata":"x"},"notify_url":"http://127.0.0.1:9/"}`, "params.metadata"),
		Entry("bad amount", `{"kind":"transfer","params":{"amount":"lots"},"notify_url":"http://127.0.0.1:9/"}`, "params.amount"),
		Entry("too many copies", `{"kind":"transfer","copies":5000,"notify_url":"http://127.0.0.1:9/"}`, "copies 5000"),
	)

	It("applies path overrides, including free-form metadata", func() {
		sendPD(map[string]any{"kind": "checkout", "set": map[string]any{"transaction.state": 4, "invoice.metadata.account": "A-7"}})
		b := jl.got()[0]
		Expect(tx(b)["state"]).To(Equal(4.0))
		Expect(b["invoice"].(map[string]any)["metadata"]).To(HaveKeyWithValue("account", "A-7"))
	})
})

var _ = Describe("PayDo source address", func() {
	It("leaves from the configured loopback address and carries X-Forwarded-For", func() {
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), PayDo: paydo.Settings{Source: "127.0.0.2", ForwardedFor: "52.49.204.201"}})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		jl := &jsonListener{status: 200}
		jsv := httptest.NewServer(jl)
		DeferCleanup(func() { emu.Close(); api.Close(); jsv.Close() })
		_, err = emu.SendPayDo(emulator.PayDoRequest{Kind: "transfer", NotifyURL: jsv.URL})
		Expect(err).NotTo(HaveOccurred())
		Expect(jl.remotes).To(Equal([]string{"127.0.0.2"}))
		Expect(jl.xff).To(Equal([]string{"52.49.204.201"}))
	})

	It("refuses a source that is not an IP", func() {
		_, err := emulator.New(emulator.Config{PayDo: paydo.Settings{Source: "paydo.example"}})
		Expect(err).To(MatchError(ContainSubstring(`paydo source address "paydo.example": not an IP address`)))
	})
})

var _ = Describe("Resending PayDo messages", func() {
	It("resends one by hand with the same bytes, and is covered by resend-all-failed", func() {
		l := newLab("")
		DeferCleanup(l.close)
		jl := &jsonListener{status: 500}
		jsv := httptest.NewServer(jl)
		DeferCleanup(jsv.Close)
		code, out := l.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "transfer", "notify_url": jsv.URL})
		Expect(code).To(Equal(201))
		id := out["messages"].([]any)[0].(map[string]any)["id"].(string)
		l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "2d"})
		Expect(l.message(id)["status"]).To(Equal("Failed"))

		jl.mu.Lock()
		jl.status = 200
		jl.mu.Unlock()
		code, out = l.call("POST", "/api/v1/messages/resend", map[string]any{"since": t0.Format(time.RFC3339)})
		Expect(code).To(Equal(202), "%v", out)
		Expect(out["resent"]).To(Equal([]any{id}))
		Expect(l.message(id)["status"]).To(Equal("Sent"))
		got := jl.got()
		Expect(got[len(got)-1]).To(Equal(got[0]), "PayDo resends the same JSON")

		code, out = l.call("POST", "/api/v1/messages/"+id+"/resend", map[string]any{"use_profile_url": true})
		Expect(code).To(Equal(400))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("PayDo has no profile URL"))
	})
})
