package listener_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/listener"
)

var _ = Describe("Reference listener, PayPal", func() {
	var r *rig
	BeforeEach(func() { r = newRig() })

	It("acks, verifies by postback, and credits a Completed payment once", func() {
		v := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "25.00"}})
		Expect(v.Status).To(Equal("Sent"))
		m, _ := r.emu.View(v.ID)
		Expect(m.Postbacks).To(HaveLen(1))
		Expect(string(m.Postbacks[0].Verdict.Result)).To(Equal("VERIFIED"))
		Expect(m.Postbacks[0].Header.Get("User-Agent")).To(Equal("ipnlab-reference-listener/1.0"))
		Expect(m.Postbacks[0].Verdict.Warnings()).To(BeEmpty(), "the postback is byte-exact, cmd first")
		t := r.txn("paypal", v.TxnID)
		Expect(t.Status).To(Equal("Completed"))
		Expect(t.Effects).To(HaveLen(1))
		Expect(t.Effects[0]).To(Equal(listener.ProbeEffect{TxnID: v.TxnID, Status: "Completed", Amount: "25.00", Currency: "USD", Customer: "C1"}))
		Expect(r.balance("USD")).To(Equal("25.00"))
	})

	It("credits the net when fees are deducted", func() {
		r = newRig(func(c *listener.Config) { c.DeductFees = true })
		v := r.pay(emulator.SendRequest{Kind: "send_money", Params: emulator.Params{Gross: "100.00"}})
		Expect(r.txn("paypal", v.TxnID).Net).To(Equal(map[string]string{"USD": "96.80"}))
	})

	It("credits once when a duplicate is resent after a failed ack", func() {
		v := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "10.00"}})
		_, err := r.emu.PayPal().Resend(v.ID, "", false)
		Expect(err).NotTo(HaveOccurred())
		r.emu.WaitIdle()
		r.idle()
		Expect(r.balance("USD")).To(Equal("10.00"))
		Expect(r.txn("paypal", v.TxnID).Effects).To(HaveLen(1))
	})

	It("credits once when 20 copies arrive concurrently", func() {
		v := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "30.00"}, Copies: 20})
		Expect(v.Copies).To(HaveLen(19))
		Expect(r.balance("USD")).To(Equal("30.00"))
		Expect(r.txn("paypal", v.TxnID).Effects).To(HaveLen(1))
	})

	It("credits once when the same bytes are posted 20 times at once, straight to the listener", func() {
		v := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "12.00"}})
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				Expect(r.post(r.paypalURL(), "application/x-www-form-urlencoded", v.Body).StatusCode).To(Equal(200))
			}()
		}
		wg.Wait()
		r.idle()
		Expect(r.balance("USD")).To(Equal("12.00"))
	})

	DescribeTable("Pending, then final: credits once and only on Completed",
		func(lifecycle, final string, credited bool) {
			plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: lifecycle, NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail, Gross: "50.00", Currency: "EUR"}})
			Expect(err).NotTo(HaveOccurred())
			r.idle()
			txn := plan.Steps[0].TxnID
			Expect(r.txn("paypal", txn).Status).To(Equal("Pending"))
			Expect(r.txn("paypal", txn).Held).To(HavePrefix("pending: "))
			Expect(r.txn("paypal", txn).Effects).To(BeEmpty())
			r.advance(5 * 24 * time.Hour)
			t := r.txn("paypal", txn)
			Expect(t.Status).To(Equal(final))
			if credited {
				Expect(t.Effects).To(HaveLen(1))
				Expect(t.Effects[0].Amount).To(Equal("50.00"))
			} else {
				Expect(t.Effects).To(BeEmpty())
			}
		},
		Entry("eCheck cleared", "echeck_cleared", "Completed", true),
		Entry("eCheck failed", "echeck_failed", "Failed", false),
		Entry("multi-currency accepted", "multi_currency", "Completed", true),
		Entry("payment review completed", "review_completed", "Completed", true),
		Entry("payment review reversed", "review_reversed", "Reversed", false),
		Entry("unilateral, the receiver registered", "unilateral", "Completed", true),
		Entry("regulatory review denied", "regulatory_review_denied", "Denied", false),
		Entry("international, accepted", "intl", "Completed", true),
		Entry("fraud filters, then accepted", "fraud_accepted", "Completed", true),
		Entry("fraud filters, then denied", "fraud_denied", "Denied", false),
	)

	It("holds a fraud-filter pend and says which filters", func() {
		v := r.pay(emulator.SendRequest{Kind: "fraud_pending", Params: emulator.Params{Filters: 2}})
		Expect(r.txn("paypal", v.TxnID).Held).To(MatchRegexp(`^pending: address \(fraud filters: .+, .+\)$`))
	})

	DescribeTable("never credits what it must not",
		func(req emulator.SendRequest, fault *emulator.FaultRequest) {
			req.Fault = fault
			v := r.pay(req)
			Expect(r.balance("USD")).To(Equal("0.00"))
			if v.TxnID != "" {
				if t, err := r.lst.Transaction(context.Background(), "paypal", v.TxnID); err == nil {
					Expect(t.Effects).To(BeEmpty())
				}
			}
		},
		Entry("INVALID", emulator.SendRequest{Kind: "web_accept"}, &emulator.FaultRequest{Kind: "invalid"}),
		Entry("VERIFIED with HTTP 500", emulator.SendRequest{Kind: "web_accept"}, &emulator.FaultRequest{Kind: "status500"}),
		Entry("VERIFIED and a newline", emulator.SendRequest{Kind: "web_accept"}, &emulator.FaultRequest{Kind: "newline"}),
		Entry("garbage", emulator.SendRequest{Kind: "web_accept"}, &emulator.FaultRequest{Kind: "garbage"}),
		Entry("a dropped connection", emulator.SendRequest{Kind: "web_accept"}, &emulator.FaultRequest{Kind: "drop"}),
		Entry("another receiver", emulator.SendRequest{Kind: "web_accept", Set: emulator.Fields{{Name: "receiver_email", Value: "other@example.com"}, {Name: "receiver_id", Value: "OTHER0000000X"}, {Name: "business", Value: "other@example.com"}}}, nil),
		Entry("a currency not accepted", emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Currency: "JPY"}}, nil),
		Entry("an unknown payer", emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{PayerEmail: "stranger@example.com"}}, nil),
		Entry("a merchant payment (money out)", emulator.SendRequest{Kind: "merch_pmt"}, nil),
	)

	It("after a verifier outage, verifies on retry and credits once", func() {
		v := r.pay(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "7.00"}, Fault: &emulator.FaultRequest{Kind: "status500", Count: 2}})
		m, _ := r.emu.View(v.ID)
		Expect(m.Postbacks).To(HaveLen(3))
		Expect(r.balance("USD")).To(Equal("7.00"))
	})

	It("credits an authorization when it is captured, once, and never when it is voided or expires", func() {
		for _, tc := range []struct {
			lifecycle, authStatus string
			net                   string
		}{{"auth_capture", "Pending", "50.00"}, {"auth_void", "Voided", "0.00"}, {"auth_expire", "Expired", "0.00"}} {
			plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: tc.lifecycle, NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail, Gross: "50.00", Currency: "EUR"}})
			Expect(err).NotTo(HaveOccurred())
			r.idle()
			auth := plan.Steps[0].TxnID
			Expect(r.txn("paypal", auth).Effects).To(BeEmpty(), "%s: an authorization moves no money", tc.lifecycle)
			r.advance(30 * 24 * time.Hour)
			t := r.txn("paypal", auth)
			Expect(t.Status).To(Equal(tc.authStatus), tc.lifecycle)
			if tc.net == "0.00" {
				Expect(t.Effects).To(BeEmpty(), tc.lifecycle)
				continue
			}
			Expect(t.Effects).To(HaveLen(1), "%s: the capture, under its authorization", tc.lifecycle)
			Expect(t.Effects[0].TxnID).To(Equal(plan.Steps[1].TxnID))
			Expect(t.Net).To(Equal(map[string]string{"EUR": tc.net}))
		}
	})

	It("holds an ELV payment while Created and credits it once Completed", func() {
		plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: "elv_completed", NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail, Gross: "40.00"}})
		Expect(err).NotTo(HaveOccurred())
		r.idle()
		txn := plan.Steps[0].TxnID
		t := r.txn("paypal", txn)
		Expect(t.Status).To(Equal("Created"))
		Expect(t.Effects).To(BeEmpty(), "Created is not paid")
		r.advance(4 * 24 * time.Hour)
		t = r.txn("paypal", txn)
		Expect(t.Status).To(Equal("Completed"))
		Expect(t.Net).To(HaveKey("USD"))
		Expect(t.Effects).To(HaveLen(1))
	})

	It("applies a full refund to its parent", func() {
		plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: "pay_refund", NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail, Gross: "80.00"}})
		Expect(err).NotTo(HaveOccurred())
		r.advance(3 * 24 * time.Hour)
		t := r.txn("paypal", plan.Steps[0].TxnID)
		Expect(t.Effects).To(HaveLen(2))
		Expect(t.Effects[1].Status).To(Equal("Refunded"))
		Expect(t.Effects[1].Amount).To(Equal("-80.00"))
		Expect(t.Net).To(Equal(map[string]string{"USD": "0.00"}))
	})

	It("adds up two partial refunds of one parent", func() {
		plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: "pay_partial_refunds", NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail, Gross: "100.00"}})
		Expect(err).NotTo(HaveOccurred())
		r.advance(3 * 24 * time.Hour)
		Expect(r.txn("paypal", plan.Steps[0].TxnID).Net).To(Equal(map[string]string{"USD": "45.00"}))
		Expect(r.balance("USD")).To(Equal("45.00"))
	})

	It("debits a chargeback reversal and re-credits when it is canceled", func() {
		plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: "chargeback", NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail, Gross: "60.00"}})
		Expect(err).NotTo(HaveOccurred())
		parent := plan.Steps[0].TxnID
		r.advance(11 * 24 * time.Hour) // case, reversal
		Expect(r.txn("paypal", parent).Net).To(Equal(map[string]string{"USD": "0.00"}))
		r.advance(30 * 24 * time.Hour) // canceled reversal, adjustment
		t := r.txn("paypal", parent)
		Expect(t.Net).To(Equal(map[string]string{"USD": "60.00"}))
		statuses := []string{}
		for _, e := range t.Effects {
			statuses = append(statuses, e.Status)
		}
		Expect(statuses).To(Equal([]string{"Completed", "Reversed", "Canceled_Reversal"}))
	})

	It("ends right when messages arrive out of order", func() {
		g, err := generate.New(5, generate.Options{Sandbox: true, Receiver: generate.Receiver{Email: emulator.DefaultReceiverEmail, ID: emulator.DefaultReceiverID}})
		Expect(err).NotTo(HaveOccurred())
		payer := g.Person()
		payer.Email = customerEmail
		// Completed before its Pending.
		steps, err := g.Lifecycle("echeck_cleared", generate.Params{Payer: &payer, Gross: 4000})
		Expect(err).NotTo(HaveOccurred())
		for _, i := range []int{1, 0} {
			body, _ := steps[i].Message.Body()
			r.pay(emulator.SendRequest{Raw: string(body)})
		}
		txn := steps[0].Message.Fields.Value("txn_id")
		Expect(r.txn("paypal", txn).Status).To(Equal("Completed"))
		Expect(r.txn("paypal", txn).Net).To(Equal(map[string]string{"USD": "40.00"}))

		// A refund before its payment: held, then applied.
		steps, err = g.Lifecycle("pay_refund", generate.Params{Payer: &payer, Gross: 2000})
		Expect(err).NotTo(HaveOccurred())
		body, _ := steps[1].Message.Body()
		ref := r.pay(emulator.SendRequest{Raw: string(body)})
		Expect(r.txn("paypal", ref.TxnID).Held).To(HavePrefix("waiting for the parent payment"))
		body, _ = steps[0].Message.Body()
		pay := r.pay(emulator.SendRequest{Raw: string(body)})
		Expect(r.txn("paypal", pay.TxnID).Net).To(Equal(map[string]string{"USD": "0.00"}))
		Expect(r.txn("paypal", ref.TxnID).Held).To(BeEmpty())
		Expect(r.balance("USD")).To(Equal("40.00"))
	})

	It("tops up the payer of a Mass Pay it receives, item by item, and records its own Mass Pay as payouts", func() {
		r = newRig(func(c *listener.Config) { c.UnknownPayers = "create" })
		v := r.pay(emulator.SendRequest{Kind: "masspay_received", Params: emulator.Params{Items: 3, Status: "Completed"}})
		for i := 1; i <= 3; i++ {
			id := field(v, "masspay_txn_id_"+strconv.Itoa(i))
			t := r.txn("paypal", id)
			Expect(t.Effects).To(HaveLen(1))
			Expect(t.Effects[0].Amount).To(Equal(field(v, "mc_gross_"+strconv.Itoa(i))))
			Expect(field(v, "payer_email")).To(Equal("customer@example.com"))
			Expect(t.Customer).To(Equal("C1"), "the customer who paid")
		}
		out := r.pay(emulator.SendRequest{Kind: "masspay", Params: emulator.Params{Items: 2, Status: "Completed"}})
		for i := 1; i <= 2; i++ {
			t := r.txn("paypal", field(out, "masspay_txn_id_"+strconv.Itoa(i)))
			Expect(t.Effects).To(BeEmpty(), "a payout tops up no one")
			Expect(t.Status).To(Equal("Completed"))
		}
		plan, err := r.emu.SendLifecycle(emulator.LifecycleRequest{Name: "masspay_undelivered", NotifyURL: r.paypalURL()})
		Expect(err).NotTo(HaveOccurred())
		r.advance(31 * 24 * time.Hour)
		first, ok := r.emu.View(plan.Steps[0].MessageID) // the items keep their ids
		Expect(ok).To(BeTrue())
		for i, want := range []string{"Returned", "Blocked", "Reversed"} {
			item := field(first, "masspay_txn_id_"+strconv.Itoa(i+1))
			t := r.txn("paypal", item)
			Expect(t.Status).To(Equal(want))
			Expect(t.Effects).To(BeEmpty(), "an undelivered payout tops up no one")
		}
		p := r.pay(emulator.SendRequest{Kind: "payout", Params: emulator.Params{PayerEmail: customerEmail}})
		Expect(r.txn("paypal", p.TxnID).Effects).To(BeEmpty(), "a Global Shipping payout is no customer's payment")
	})

	It("decodes windows-1252 names correctly: Jörg stays Jörg", func() {
		v := r.pay(emulator.SendRequest{Kind: "web_accept", Charset: "windows-1252", Set: emulator.Fields{{Name: "first_name", Value: "Jörg"}, {Name: "last_name", Value: "Müller"}}})
		Expect(v.Body).To(ContainSubstring("first_name=J%F6rg"))
		Expect(r.txn("paypal", v.TxnID).PayerName).To(Equal("Jörg Müller"))
		v = r.pay(emulator.SendRequest{Kind: "web_accept", Charset: "windows-1255", Set: emulator.Fields{{Name: "first_name", Value: "שרה"}, {Name: "last_name", Value: "כהן"}}})
		Expect(r.txn("paypal", v.TxnID).PayerName).To(Equal("שרה כהן"))
	})

	It("records subscriptions, recurring profiles and cases without touching balances", func() {
		for _, k := range []string{"subscr_signup", "subscr_cancel", "recurring_payment_profile_created", "new_case", "mp_signup", "adaptive_pay"} {
			r.pay(emulator.SendRequest{Kind: k})
		}
		Expect(r.balance("USD")).To(Equal("0.00"))
		lines, err := r.lst.Store().Log(context.Background(), "", 100)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(6))
		for _, l := range lines {
			Expect(l.Action).To(Equal("recorded"), "%+v", l)
		}
	})

	It("credits subscription and recurring payments", func() {
		v := r.pay(emulator.SendRequest{Kind: "subscr_payment", Params: emulator.Params{Gross: "9.00"}})
		Expect(r.txn("paypal", v.TxnID).Effects).To(HaveLen(1))
		v = r.pay(emulator.SendRequest{Kind: "recurring_payment", Params: emulator.Params{Gross: "11.00"}})
		Expect(r.txn("paypal", v.TxnID).Effects).To(HaveLen(1))
		Expect(r.balance("USD")).To(Equal("20.00"))
	})

	It("survives a crash between ack and processing: replays and credits once", func() {
		// A listener that acks but is killed before processing anything.
		Expect(r.lst.Close()).To(Succeed())
		var err error
		r.lst, err = listener.New(r.cfg)
		Expect(err).NotTo(HaveOccurred()) // not started: stores and acks only
		v, err := r.emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Gross: "15.00", PayerEmail: customerEmail}, NotifyURL: r.paypalURL()})
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Status).To(Equal("Sent"), "acked before processing")
		Expect(r.lst.Close()).To(Succeed())

		r.start()
		r.idle()
		Expect(r.balance("USD")).To(Equal("15.00"))
		Expect(r.txn("paypal", v.TxnID).Effects).To(HaveLen(1))
		Expect(r.lst.Close()).To(Succeed())
		r.start() // nothing left to replay
		r.idle()
		Expect(r.balance("USD")).To(Equal("15.00"))
	})

	DescribeTable("answers malformed input with a 4xx and never panics",
		func(method, contentType, body string, status int) {
			req, _ := http.NewRequest(method, r.paypalURL(), stringsReader(body))
			req.Header.Set("Content-Type", contentType)
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(status))
			r.idle()
			Expect(r.balance("USD")).To(Equal("0.00"))
		},
		Entry("empty body", "POST", "application/x-www-form-urlencoded", "", 400),
		Entry("bad escape", "POST", "application/x-www-form-urlencoded", "txn_id=1&x=%zz", 400),
		Entry("empty field name", "POST", "application/x-www-form-urlencoded", "=1", 400),
		Entry("GET", "GET", "", "", 405),
		Entry("over 1 MiB", "POST", "application/x-www-form-urlencoded", "a="+repeat("x", 1<<20), 413),
		Entry("JSON (acked; the verifier finds no such message)", "POST", "application/json", `{"txn_id":"1"}`, 200),
		Entry("a forged message (acked; INVALID)", "POST", "application/x-www-form-urlencoded", "txn_id=FAKE0000000000001&payment_status=Completed&mc_gross=1000.00&mc_currency=USD&receiver_email=merchant%40example.com&payer_email=customer%40example.com&txn_type=web_accept", 200),
	)
})

var _ = Describe("The probe's idle signal for some transactions", func() {
	It("answers for those transactions (and their children) while another one keeps the listener busy", func() {
		r := newRig(func(c *listener.Config) {
			c.Verify = listener.VerifyConfig{Backoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Attempts: 100, Timeout: 5 * time.Second}
		})
		// The verifier answers garbage for one message until cleared: the
		// listener keeps retrying that one.
		stuck, err := r.emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: r.paypalURL(),
			Params: emulator.Params{PayerEmail: customerEmail}, Fault: &emulator.FaultRequest{Kind: "garbage"}})
		Expect(err).NotTo(HaveOccurred())
		done, err := r.emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: r.paypalURL(), Params: emulator.Params{PayerEmail: customerEmail}})
		Expect(err).NotTo(HaveOccurred())

		idle := func(q string) map[string]any {
			resp, err := http.Get(r.lsrv.URL + "/probe/v1/idle?" + q)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			var out map[string]any
			Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
			return out
		}
		Expect(idle("wait=5s&txn_id=" + done.TxnID)["idle"]).To(BeTrue())
		Expect(idle("wait=200ms&txn_id=" + stuck.TxnID)["idle"]).To(BeFalse())
		Expect(idle("wait=200ms")["idle"]).To(BeFalse(), "the whole listener is still busy")
		Expect(idle("wait=200ms&txn_id=" + stuck.TxnID + "&txn_id=" + done.TxnID)["busy"]).To(BeNumerically("==", 1))

		Expect(r.emu.PayPal().SetFault(stuck.ID, nil)).To(Succeed())
		Expect(idle("wait=5s&txn_id=" + stuck.TxnID)["idle"]).To(BeTrue())
		Expect(idle("wait=5s")["idle"]).To(BeTrue())
	})
})
