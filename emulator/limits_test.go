package emulator_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// badInput is one hostile or mistaken request and the answer it must get.
type badInput struct {
	method, path, contentType string
	body                      string
	header                    map[string]string
	status                    int
	message                   string // a substring of the answer
}

var _ = Describe("Bad input", func() {
	var base string
	BeforeEach(func() {
		srv, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0)}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(srv.Shutdown(context.Background())).To(Succeed()) })
		base = srv.URL()
	})

	fields := strings.Repeat("a=1&", 100_000) + "a=1"
	nested := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	huge := `{"raw": "a=` + strings.Repeat("x", 2<<20) + `"}`

	DescribeTable("gets a precise 4xx, never a 5xx or a panic",
		func(in badInput) {
			req, err := http.NewRequest(in.method, base+in.path, strings.NewReader(in.body))
			Expect(err).NotTo(HaveOccurred())
			if in.contentType != "" {
				req.Header.Set("Content-Type", in.contentType)
			}
			for k, v := range in.header {
				req.Header.Set(k, v)
			}
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			answer, _ := io.ReadAll(resp.Body)
			Expect(resp.StatusCode).To(Equal(in.status), string(answer))
			Expect(string(answer)).To(ContainSubstring(in.message))
		},
		Entry("malformed form encoding", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"raw": "a=1&=x", "notify_url": "http://127.0.0.1:9/"}`, nil, 400, `malformed form encoding at byte 4: field with an empty name`}),
		Entry("an invalid percent escape", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"raw": "first_name=J%ZZrg", "notify_url": "http://127.0.0.1:9/"}`, nil, 400, `raw body: malformed form encoding at byte 12: invalid escape \"%ZZ\"`}),
		Entry("an unknown charset", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"raw": "charset=klingon&a=1", "notify_url": "http://127.0.0.1:9/"}`, nil, 400, `klingon`}),
		Entry("JSON that is not UTF-8", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			"{\"kind\": \"web_accept\", \"custom\": \"\xff\xfe\"}", nil, 400, `body is not UTF-8 (JSON must be): invalid byte at offset 34`}),
		Entry("a body past the limit", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			huge, nil, 413, fmt.Sprintf("body larger than %d bytes", emulator.MaxAPIBody)}),
		Entry("100,000 fields", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"raw": "` + fields + `", "notify_url": "http://127.0.0.1:9/"}`, nil, 400, `more than 5000 fields (100001): not an IPN`}),
		Entry("40,000 set fields (parsed whole before the refusal)", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"set": {` + manySet + `}, "notify_url": "http://127.0.0.1:9/"}`, nil, 400, `more than 5000 fields: not an IPN`}),
		Entry("deeply nested JSON", badInput{"POST", "/api/v1/paydo/notifications", "application/json",
			nested, nil, 400, `invalid JSON`}),
		Entry("an unknown field", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"kind": "web_accept", "notifyurl": "x"}`, nil, 400, `unknown field \"notifyurl\"`}),
		Entry("an empty body", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			``, nil, 400, `empty body: want a JSON object`}),
		Entry("two JSON values", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"kind": "web_accept"} {}`, nil, 400, `data after the first value`}),
		Entry("a form where JSON is wanted", badInput{"POST", "/api/v1/paypal/notifications", "application/x-www-form-urlencoded",
			`kind=web_accept`, nil, 415, `content type \"application/x-www-form-urlencoded\": send application/json`}),
		Entry("a wrong method", badInput{"DELETE", "/api/v1/messages", "", ``, nil, 405, `DELETE /api/v1/messages: method not allowed, use GET`}),
		Entry("an unknown endpoint", badInput{"GET", "/api/v1/nothing", "", ``, nil, 404, `no endpoint GET /api/v1/nothing`}),
		Entry("a negative clock advance", badInput{"POST", "/api/v1/clock/advance", "application/json",
			`{"duration": "-1h"}`, nil, 400, `backwards`}),
		Entry("a duration that is not one", badInput{"POST", "/api/v1/clock/advance", "application/json",
			`{"duration": "forever"}`, nil, 400, `forever`}),
		Entry("a delivery URL that is not http", badInput{"POST", "/api/v1/paypal/notifications", "application/json",
			`{"kind": "web_accept", "notify_url": "file:///etc/passwd"}`, nil, 400, `scheme must be http or https`}),
		Entry("a postback by GET (recorded, as PayPal refuses it)", badInput{"GET", "/cgi-bin/webscr?cmd=_notify-validate", "", ``, nil, 405, `postback must be a POST`}),
		Entry("a postback past the limit", badInput{"POST", "/cgi-bin/webscr", "application/x-www-form-urlencoded",
			"cmd=_notify-validate&a=" + strings.Repeat("x", 2<<20), nil, 413, `postback larger than`}),
		Entry("headers past the limit", badInput{"GET", "/api/v1/messages", "", ``,
			map[string]string{"X-Padding": strings.Repeat("x", 128<<10)}, 431, ``}),
	)

	It("answers a malformed postback INVALID with its reason, as PayPal does, and keeps serving", func() {
		resp, err := http.Post(base+"/cgi-bin/webscr", "application/x-www-form-urlencoded", strings.NewReader("cmd=_notify-validate&a=%G0"))
		Expect(err).NotTo(HaveOccurred())
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(200))
		Expect(string(answer)).To(Equal("INVALID"))
		resp, err = http.Get(base + "/api/v1/postbacks")
		Expect(err).NotTo(HaveOccurred())
		list, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(string(list)).To(ContainSubstring(`"detail": "body: byte 23: invalid escape \"%G0\""`))
	})
})

// manySet is 40,000 "set" overrides.
var manySet = func() string {
	parts := make([]string, 40_000)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"f%d": "v"`, i)
	}
	return strings.Join(parts, ",")
}()

var _ = Describe("Memory a request can grow", func() {
	It("keeps postbacks of no known message bounded and cut, and pages through every postback", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
		body := "cmd=_notify-validate&txn_id=NOPE&junk=" + strings.Repeat("x", 100<<10)
		for range paypal.MaxUnattached + 200 {
			resp, err := http.Post(l.api.URL+"/cgi-bin/webscr", "application/x-www-form-urlencoded", strings.NewReader(body))
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
		}
		all := l.emu.PayPal().Postbacks("")
		Expect(all).To(HaveLen(paypal.MaxUnattached))
		Expect(all[0].ID).To(Equal("PB201"), "the oldest were forgotten")
		for _, p := range all {
			Expect(len(p.Body)).To(Equal(paypal.MaxUnattachedBody))
			Expect(p.BodyBytes).To(Equal(len(body)))
		}
		// Pages of 300: 300, 300, 300, 100.
		seen, after, pages := 0, 0, 0
		for {
			path := fmt.Sprintf("/api/v1/postbacks?limit=300&after=%d", after)
			code, out := l.call("GET", path, nil)
			Expect(code).To(Equal(200))
			seen += len(out["postbacks"].([]any))
			pages++
			next, ok := out["next"].(float64)
			if !ok {
				break
			}
			after = int(next)
		}
		Expect([]int{seen, pages}).To(Equal([]int{paypal.MaxUnattached, 4}))
		code, _ := l.call("GET", "/api/v1/postbacks?limit=5000", nil)
		Expect(code).To(Equal(400))
	})

	It("keeps at most 10,000 PayDo registrations of each kind", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
		for i := range paydo.MaxRegistrations {
			Expect(l.emu.PayDo().RegisterTransferURL(fmt.Sprintf("u%d", i), l.lsrv.URL)).To(Succeed())
		}
		Expect(l.emu.PayDo().RegisterTransferURL("u0", l.lsrv.URL)).To(Succeed(), "the same one again")
		code, out := l.call("PUT", "/api/v1/paydo/users/one-more/transfer-ipn-url", map[string]string{"url": l.lsrv.URL})
		Expect(code).To(Equal(400), "%v", out)
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("more than 10000 registrations"))
	})

	It("refuses a PayDo request with more follow-up statuses than a transaction has", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
		then := make([]int, emulator.MaxThen+1)
		for i := range then {
			then[i] = 2
		}
		code, out := l.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "checkout", "then": then, "notify_url": l.lsrv.URL})
		Expect(code).To(Equal(400), "%v", out)
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("at most 20"))
		Expect(l.emu.Engine().List(nil)).To(BeEmpty())
	})
})
