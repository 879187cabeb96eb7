package delivery_test

import (
	"net/http"
	"net/http/httptest"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

var _ = Describe("Allowlist", func() {
	DescribeTable("refuses entries it cannot read",
		func(entry, msg string) {
			_, err := delivery.ParseAllowlist([]string{entry})
			Expect(err).To(MatchError(ContainSubstring(msg)))
		},
		Entry("empty", " ", "empty entry"),
		Entry("bad CIDR", "10.0.0.0/33", `allowlist entry "10.0.0.0/33"`),
		Entry("not a name", "exa mple.com", "not a network, an address or a host name"),
		Entry("a URL", "http://x/", "not a network, an address or a host name"),
	)

	DescribeTable("checks targets when they are given",
		func(entries []string, url string, allowed bool) {
			a, err := delivery.ParseAllowlist(entries)
			Expect(err).NotTo(HaveOccurred())
			err = a.CheckURL(url)
			if allowed {
				Expect(err).NotTo(HaveOccurred())
			} else {
				Expect(err).To(MatchError(delivery.ErrNotAllowed))
			}
		},
		Entry("address in a network", []string{"127.0.0.0/8"}, "http://127.0.0.9:80/ipn", true),
		Entry("address outside", []string{"127.0.0.2/32"}, "http://127.0.0.1:80/ipn", false),
		Entry("single address", []string{"127.0.0.3"}, "http://127.0.0.3/", true),
		Entry("IPv6 loopback", []string{"::1"}, "http://[::1]:8080/", true),
		Entry("a name entry", []string{"listener.ci.test"}, "https://listener.ci.test/ipn", true),
		Entry("a wildcard", []string{"*.ci.test"}, "https://a.b.ci.test/ipn", true),
		Entry("wildcard does not match the bare domain's neighbour", []string{"*.ci.test"}, "https://evilci.test/ipn", false),
		Entry("a name resolving into an allowed network", []string{"127.0.0.0/8"}, "http://localhost:9/", true),
		Entry("a name resolving elsewhere", []string{"127.0.0.2/32"}, "http://localhost:9/", false),
		Entry("nothing allowed", []string{}, "http://127.0.0.1/", false),
	)

	It("is enforced on the address dialled, so a target cannot slip past the check", func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		defer srv.Close()
		a, err := delivery.ParseAllowlist([]string{"127.0.0.2/32"})
		Expect(err).NotTo(HaveOccurred())
		c := delivery.NewClient(delivery.NewTransport(nil, nil, a))
		_, err = c.Get(srv.URL)
		Expect(err).To(MatchError(ContainSubstring("target not in the delivery allowlist: 127.0.0.1")))
	})

	It("makes the engine refuse a target outside it, and deliver inside it", func() {
		var hits int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
		defer srv.Close()
		for _, tc := range []struct {
			entries []string
			ok      bool
		}{{[]string{"127.0.0.2/32"}, false}, {[]string{"127.0.0.1/32"}, true}} {
			a, err := delivery.ParseAllowlist(tc.entries)
			Expect(err).NotTo(HaveOccurred())
			clk := clock.NewManual(t0)
			e, err := delivery.NewEngine(delivery.Config{Clock: clk, Allow: a})
			Expect(err).NotTo(HaveOccurred())
			_, err = e.Submit(delivery.Submission{ID: "M-" + strings.Join(tc.entries, ""), URL: srv.URL, Body: []byte("x=1"), Schedule: doubling()})
			if tc.ok {
				Expect(err).NotTo(HaveOccurred())
				clk.WaitIdle()
			} else {
				Expect(err).To(MatchError(delivery.ErrNotAllowed))
			}
			e.Close()
		}
		Expect(hits).To(Equal(1))
	})
})
