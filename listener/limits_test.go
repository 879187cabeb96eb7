package listener_test

import (
	"io"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/listener"
)

var _ = Describe("The listener's door, on bad input", func() {
	var r *rig
	BeforeEach(func() { r = newRig() })

	DescribeTable("answers a precise 4xx and keeps a record of what it refused",
		func(method, path, body string, status int, message string) {
			req, err := http.NewRequest(method, r.lsrv.URL+path, strings.NewReader(body))
			Expect(err).NotTo(HaveOccurred())
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(status), string(answer))
			Expect(string(answer)).To(ContainSubstring(message))
		},
		Entry("a GET", "GET", "/ipn/paypal", "", 405, "notifications are POSTed"),
		Entry("an empty IPN", "POST", "/ipn/paypal", "", 400, "malformed IPN: empty body"),
		Entry("an invalid escape", "POST", "/ipn/paypal", "txn_id=1&first_name=J%ZZrg", 400, `malformed IPN: malformed form encoding at byte 21: invalid escape "%ZZ"`),
		Entry("100,000 fields", "POST", "/ipn/paypal", strings.Repeat("a=1&", 100_000)+"a=1", 400, "more than 5000 fields"),
		Entry("an IPN past the limit", "POST", "/ipn/paypal", "a="+strings.Repeat("x", listener.MaxBody), 413, "notification larger than"),
		Entry("PayDo JSON that is not JSON", "POST", "/ipn/paydo", "{transaction:", 400, "malformed PayDo notification: invalid JSON"),
		Entry("PayDo JSON that is not UTF-8", "POST", "/ipn/paydo", "{\"transaction\": {\"id\": \"\xff\"}}", 400, "not UTF-8"),
		Entry("PayDo metadata 40 levels deep (the emulator stops at 32)", "POST", "/ipn/paydo", `{"invoice":{"id":"i","txid":"t","metadata":`+strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)+`},"transaction":{"id":"t","state":2}}`, 400, "nested deeper than 32 levels"),
		Entry("deeply nested PayDo JSON", "POST", "/ipn/paydo", strings.Repeat(`{"transaction":`, 20_000)+"1"+strings.Repeat("}", 20_000), 400, "malformed PayDo notification"),
	)
})

var _ = Describe("What the listener keeps of refused input", func() {
	It("is bounded: a refused body is cut to its first 4 KiB (100 refusals of 1 MB kept 100 MB)", func() {
		r := newRig()
		big := "txn_id=1&junk=%ZZ" + strings.Repeat("x", listener.MaxBody-100)
		for range 20 {
			resp, err := http.Post(r.paypalURL(), "application/x-www-form-urlencoded", strings.NewReader(big))
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(400))
		}
		for id := int64(1); id <= 20; id++ {
			it, err := r.lst.Store().Inbox(ctxBG(), id)
			Expect(err).NotTo(HaveOccurred())
			Expect(len(it.Body)).To(Equal(listener.MaxRejectedBody))
			Expect(it.Detail).To(ContainSubstring("first 4096 kept"))
		}
	})
})
