package emulator_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

var _ = Describe("A message's outcome", func() {
	var l *lab
	BeforeEach(func() {
		l = newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
	})
	outcome := func(m map[string]any) map[string]any { return m["outcome"].(map[string]any) }

	It("says verified, INVALID with its rule and field, no postback, or why it was not delivered, in the list and the detail", func() {
		ok := l.send(map[string]any{"kind": "web_accept"})
		Expect(outcome(l.message(ok["id"].(string)))).To(And(HaveKeyWithValue("state", "verified"), HaveKeyWithValue("summary", "delivered (HTTP 200) and verified")))

		// A listener that turns a space into a literal + in custom: INVALID, and the page can point at the field.
		l.listener.set(200, func(b []byte) []byte {
			return append([]byte("cmd=_notify-validate&"), bytes.Replace(b, []byte("custom=a+b"), []byte("custom=a%2Bb"), 1)...)
		})
		bad := l.send(map[string]any{"kind": "web_accept", "set": map[string]string{"custom": "a b"}})
		o := outcome(l.message(bad["id"].(string)))
		Expect(o).To(HaveKeyWithValue("state", "invalid"))
		Expect(o).To(HaveKeyWithValue("verdict", "INVALID"))
		Expect(o["rule"]).NotTo(BeEmpty())
		Expect(o).To(HaveKeyWithValue("field", "custom"))
		Expect(o["summary"]).To(HavePrefix("delivered (HTTP 200), but the postback was INVALID"))

		silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		DeferCleanup(silent.Close)
		quiet := l.send(map[string]any{"kind": "web_accept", "notify_url": silent.URL})
		Expect(outcome(l.message(quiet["id"].(string)))).To(HaveKeyWithValue("state", "no_postback"))

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())
		gone := l.send(map[string]any{"kind": "web_accept", "notify_url": "http://" + addr + "/ipn"})
		o = outcome(l.message(gone["id"].(string)))
		Expect(o).To(HaveKeyWithValue("state", "undelivered"))
		Expect(o["summary"]).To(MatchRegexp(`^not acknowledged: connection refused by ` + addr + ` \(attempt 1; next \S+\)$`))

		code, list := l.call("GET", "/api/v1/messages?verdict=INVALID", nil)
		Expect(code).To(Equal(200))
		Expect(list["total"]).To(BeNumerically("==", 1))
		Expect(list["messages"].([]any)[0].(map[string]any)["id"]).To(Equal(bad["id"]))
		_, list = l.call("GET", "/api/v1/messages?order=newest&limit=1", nil)
		row := list["messages"].([]any)[0].(map[string]any)
		Expect(row["id"]).To(Equal(gone["id"]), "newest first")
		Expect(outcome(row)).To(HaveKeyWithValue("state", "undelivered"))
		code, out := l.call("GET", "/api/v1/messages?verdict=maybe", nil)
		Expect(code).To(Equal(400))
		Expect(fmt.Sprint(out["error"])).To(ContainSubstring("want one of verified, delivered, no_postback, invalid, fault, undelivered"))
	})

	It("names a verifier fault when every postback met one", func() {
		m := l.send(map[string]any{"kind": "web_accept", "fault": map[string]any{"kind": "status500", "count": 1}})
		o := outcome(l.message(m["id"].(string)))
		Expect(o).To(And(HaveKeyWithValue("state", "fault"), HaveKeyWithValue("fault", "status500")))
	})

	It("writes attempt results in words a user knows", func() {
		for a, want := range map[delivery.Attempt]string{
			{StatusCode: 200, Acked: true}:                   "HTTP 200",
			{StatusCode: 204, Note: "only 200 acknowledges"}: "HTTP 204 (only 200 acknowledges)",
			{Error: `Post "http://127.0.0.1:19399/ipn": dial tcp 127.0.0.1:19399: connect: connection refused`}:                  "connection refused by 127.0.0.1:19399",
			{Error: `Post "http://127.0.0.1:1/ipn": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`}: "no answer in time",
			{Error: `Post "http://127.0.0.1:1/ipn": EOF`}:                                                                        "the listener closed the connection without answering",
		} {
			Expect(a.Result()).To(Equal(want))
		}
	})
})
