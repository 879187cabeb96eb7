package orders_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/orders"
)

var _ = Describe("Order sources", func() {
	req := orders.Request{Amount: 4000, Currency: "USD"}

	It("runs a command with the request on its input and in its environment, and reads the order it prints", func() {
		src, err := orders.Open(`cmd:read req; printf '{"ref": 1042, "amount": "%s", "currency": "%s", "field": "custom"}' "$IPNLAB_ORDER_AMOUNT" "$IPNLAB_ORDER_CURRENCY"`)
		Expect(err).NotTo(HaveOccurred())
		o, err := src.New(context.Background(), req)
		Expect(err).NotTo(HaveOccurred())
		Expect(o).To(Equal(orders.Order{Ref: "1042", Amount: 4000, Currency: "USD", Field: "custom"}))
	})

	It("POSTs the request to an endpoint and reads the order it answers, invoice by default", func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var in map[string]string
			Expect(json.NewDecoder(r.Body).Decode(&in)).To(Succeed())
			Expect(in).To(Equal(map[string]string{"amount": "40.00", "currency": "USD"}))
			_, _ = w.Write([]byte(`{"ref": "A-7", "amount": 40, "currency": "usd"}`))
		}))
		defer srv.Close()
		src, err := orders.Open(srv.URL)
		Expect(err).NotTo(HaveOccurred())
		o, err := src.New(context.Background(), req)
		Expect(err).NotTo(HaveOccurred())
		Expect(o).To(Equal(orders.Order{Ref: "A-7", Amount: 4000, Currency: "USD", Field: "invoice"}))
	})

	It("names what is wrong with a source's answer, as a harness error", func() {
		for answer, want := range map[string]string{
			`{"amount": "40.00", "currency": "USD"}`:                              "no ref",
			`{"ref": "1", "amount": "forty", "currency": "USD"}`:                  `amount forty`,
			`{"ref": "1", "amount": "40.00", "currency": "dollars"}`:              `currency "dollars"`,
			`{"ref": "1", "amount": "40.00", "currency": "USD", "field": "memo"}`: `field "memo": want invoice, custom, item_number`,
			`{"ref": "1", "amount": "40.00", "currency": "USD", "order_id": "1"}`: `unknown field "order_id"`,
			`not json`: "want one JSON object",
		} {
			src, err := orders.Open("cmd:echo '" + answer + "'")
			Expect(err).NotTo(HaveOccurred())
			_, err = src.New(context.Background(), req)
			Expect(err).To(MatchError(orders.ErrSource), answer)
			Expect(err.Error()).To(ContainSubstring(want), answer)
		}
		src, _ := orders.Open("cmd:echo oops >&2; exit 3")
		_, err := src.New(context.Background(), req)
		Expect(err).To(MatchError(ContainSubstring("exit status 3: oops")))
		_, err = orders.Open("ftp://orders")
		Expect(err).To(MatchError(ContainSubstring("want cmd:COMMAND, http://URL, or sql")))
	})
})
