package listener_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"

	pd "github.com/ipnlab/ipnlab/emulator/paydo"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/listener"
)

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
func repeat(s string, n int) string          { return strings.Repeat(s, n) }

var _ = Describe("Reference listener, PayDo", func() {
	var r *rig
	BeforeEach(func() { r = newRig() })
	paydo := func(req emulator.PayDoRequest) []emulator.MessageView {
		if req.NotifyURL == "" {
			req.NotifyURL = r.paydoURL()
		}
		vs, err := r.emu.SendPayDo(req)
		Expect(err).NotTo(HaveOccurred())
		r.idle()
		return vs
	}

	It("records an accepted transfer once, amount as a number or a string", func() {
		vs := paydo(emulator.PayDoRequest{Kind: "transfer", Params: emulator.PayDoParams{Amount: "25.00", Status: 2}, Copies: 3})
		t := r.txn("paydo", vs[0].TxnID)
		Expect(t.Status).To(Equal("2"))
		Expect(t.Effects).To(HaveLen(1))
		Expect(t.Effects[0].Amount).To(Equal("-25.00"))
		vs = paydo(emulator.PayDoRequest{Kind: "transfer", Params: emulator.PayDoParams{Amount: "10.50", Status: 2, AmountAsString: true}})
		Expect(r.txn("paydo", vs[0].TxnID).Effects[0].Amount).To(Equal("-10.50"))
	})

	It("applies failed-then-success: 3 then 2 ends accepted", func() {
		vs := paydo(emulator.PayDoRequest{Kind: "transfer", Params: emulator.PayDoParams{Status: 3}, Then: []int{2}})
		t := r.txn("paydo", vs[0].TxnID)
		Expect(t.Status).To(Equal("2"))
		Expect(t.Effects).To(HaveLen(1))
	})

	It("credits a checkout once, on state 2 only, with the amount PayDo's lookup confirms", func() {
		vs := paydo(emulator.PayDoRequest{Kind: "checkout", Params: emulator.PayDoParams{Status: 4, Amount: "40.00", Currency: "EUR", Metadata: []byte(`{"customer":"customer@example.com"}`)}})
		key := vs[0].TxnID
		Expect(r.txn("paydo", key).Effects).To(BeEmpty())
		Expect(r.txn("paydo", key).Held).To(Equal("pending"))
		paydo(emulator.PayDoRequest{Kind: "checkout", Params: emulator.PayDoParams{Status: 2, Identifier: key, Amount: "40.00", Currency: "EUR", Metadata: []byte(`{"customer":"C1"}`)}, Copies: 2})
		t := r.txn("paydo", key)
		Expect(t.Effects).To(HaveLen(1))
		Expect(t.Effects[0]).To(Equal(listener.ProbeEffect{TxnID: key, Status: "accepted", Amount: "40.00", Currency: "EUR", Customer: "C1"}))
		Expect(r.balance("EUR")).To(Equal("40.00"))
	})

	It("sends its project's token with the lookup: the emulator's default unless told, and a wrong one credits nothing", func() {
		Expect(listener.DefaultPayDoLookupToken).To(Equal(pd.DefaultAPIToken), "the listener's default is the emulator's default project's")
		Expect(r.emu.PayDo().SetAPIToken(pd.DefaultProject, "rotated")).To(Succeed())
		vs := paydo(emulator.PayDoRequest{Kind: "checkout", Params: emulator.PayDoParams{Status: 2, Amount: "12.50", Currency: "EUR", Metadata: []byte(`{"customer":"C1"}`)}})
		_, err := r.lst.Transaction(context.Background(), "paydo", vs[0].TxnID)
		Expect(err).To(HaveOccurred(), "PayDo answered 401 to every lookup: the checkout was never confirmed, nor credited")
		Expect(r.balance("EUR")).To(Equal("0.00"))

		Expect(r.emu.PayDo().SetAPIToken(pd.DefaultProject, listener.DefaultPayDoLookupToken)).To(Succeed())
		vs = paydo(emulator.PayDoRequest{Kind: "checkout", Params: emulator.PayDoParams{Status: 2, Amount: "12.50", Currency: "EUR", Metadata: []byte(`{"customer":"C1"}`)}})
		Expect(r.txn("paydo", vs[0].TxnID).Effects).To(HaveLen(1))
		Expect(r.balance("EUR")).To(Equal("12.50"))
	})

	It("applies checkout 5 then 2, and ignores a failure after acceptance", func() {
		vs := paydo(emulator.PayDoRequest{Kind: "checkout", Params: emulator.PayDoParams{Status: 5, Amount: "9.00", Currency: "EUR", Metadata: []byte(`{"customer":"C1"}`)}, Then: []int{2}})
		key := vs[0].TxnID
		Expect(r.txn("paydo", key).Status).To(Equal("2"))
		Expect(r.balance("EUR")).To(Equal("9.00"))
		// A stray failure for the same transaction after it was accepted.
		paydo(emulator.PayDoRequest{Kind: "checkout", Params: emulator.PayDoParams{Status: 3, Identifier: key, Amount: "9.00", Currency: "EUR", Metadata: []byte(`{"customer":"C1"}`)}})
		Expect(r.txn("paydo", key).Status).To(Equal("2"))
		Expect(r.balance("EUR")).To(Equal("9.00"))
		lines, err := r.lst.Store().Log(ctxBG(), key, 10)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines[len(lines)-1].Detail).To(Equal("status 3 after the transaction was accepted"))
	})

	It("refuses a PayDo notification from a source that is not allowlisted", func() {
		emu2, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), PayDo: pd.Settings{Source: "127.0.0.2"}, Logger: quiet()})
		Expect(err).NotTo(HaveOccurred())
		defer emu2.Close()
		vs, err := emu2.SendPayDo(emulator.PayDoRequest{Kind: "transfer", NotifyURL: r.paydoURL(), Params: emulator.PayDoParams{Status: 2}})
		Expect(err).NotTo(HaveOccurred())
		Expect(vs[0].Attempts[0].StatusCode).To(Equal(http.StatusForbidden))
		Expect(vs[0].Attempts[0].Response).To(ContainSubstring("source 127.0.0.2 is not an allowed PayDo address"))
		r.idle()
		_, err = r.lst.Transaction(ctxBG(), "paydo", vs[0].TxnID)
		Expect(err).To(HaveOccurred())
	})

	It("trusts X-Forwarded-For only from a trusted proxy", func() {
		r = newRig(func(c *listener.Config) {
			c.PayDo.AllowedSources = []string{"52.49.204.201"}
			c.PayDo.TrustedProxies = []string{"127.0.0.1"}
		})
		emu2, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), PayDo: pd.Settings{ForwardedFor: "52.49.204.201"}, Logger: quiet()})
		Expect(err).NotTo(HaveOccurred())
		defer emu2.Close()
		api2 := httptest.NewServer(emu2)
		defer api2.Close()
		vs, err := emu2.SendPayDo(emulator.PayDoRequest{Kind: "transfer", NotifyURL: r.paydoURL(), Params: emulator.PayDoParams{Status: 2}})
		Expect(err).NotTo(HaveOccurred())
		Expect(vs[0].Attempts[0].StatusCode).To(Equal(200))

		r2 := newRig(func(c *listener.Config) { c.PayDo.AllowedSources = []string{"52.49.204.201"} })
		vs, err = emu2.SendPayDo(emulator.PayDoRequest{Kind: "transfer", NotifyURL: r2.paydoURL(), Params: emulator.PayDoParams{Status: 2}})
		Expect(err).NotTo(HaveOccurred())
		Expect(vs[0].Attempts[0].StatusCode).To(Equal(http.StatusForbidden), "no trusted proxy: the header is ignored")
	})

	DescribeTable("answers malformed PayDo bodies with 400",
		func(body, msg string) {
			req, _ := http.NewRequest("POST", r.paydoURL(), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(400))
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			Expect(string(b[:n])).To(ContainSubstring(msg))
		},
		Entry("not JSON", `{"transaction":`, "invalid JSON"),
		Entry("the published malformed example", `{"transaction":{"amount":25,"status":3,"currency":"EUR","identifierTxFrom":"x",}}`, "invalid JSON"),
		Entry("no transaction", `{"invoice":{}}`, `no "transaction" object`),
		Entry("transfer without status", `{"transaction":{"amount":1,"identifierTxFrom":"x"}}`, "without transaction.identifierTxFrom or transaction.status"),
		Entry("bad amount", `{"transaction":{"amount":"ten","status":2,"identifierTxFrom":"x"}}`, "transaction.amount"),
	)
})

var _ = Describe("Listener config", func() {
	It("fails at start with every problem named", func() {
		_, err := listener.New(listener.Config{
			VerifyURL: "ipnpb.paypal.com", Currencies: []string{"usd"}, Customers: []listener.Customer{{ID: "A", Email: "a"}, {ID: "A", Email: "b@example.com"}},
			UnknownPayers: "maybe", Workers: 1000, PayDo: listener.PayDoConfig{AllowedSources: []string{"paydo"}}, DB: ":memory:",
		})
		Expect(err).To(HaveOccurred())
		for _, msg := range []string{
			`verify_url "ipnpb.paypal.com": want an absolute http(s) URL`,
			"receiver_emails or receiver_ids: give at least one",
			`currencies: "usd" is not a three-letter ISO code in capitals`,
			`customers[0]: email "a" is not an email address`,
			`customers[1]: id "A" is used twice`,
			`unknown_payers "maybe": want hold or create`,
			"workers 1000: want 1 to 256",
			`paydo.allowed_sources: "paydo" is not an IP or CIDR`,
		} {
			Expect(err.Error()).To(ContainSubstring(msg))
		}
	})

	It("loads YAML and refuses unknown fields", func() {
		dir := GinkgoT().TempDir()
		good := dir + "/good.yaml"
		Expect(writeFile(good, "verify_url: http://127.0.0.1:8700/cgi-bin/webscr\nreceiver_emails: [merchant@example.com]\nverify:\n  timeout: 5s\n")).To(Succeed())
		c, err := listener.Load(good)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Verify.Timeout.String()).To(Equal("5s"))
		bad := dir + "/bad.yaml"
		Expect(writeFile(bad, "verify_url: x\nrecever_emails: [a@b.c]\n")).To(Succeed())
		_, err = listener.Load(bad)
		Expect(err).To(MatchError(ContainSubstring(`unknown field "recever_emails": want one of`)))
	})
})
