package paypal_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/form"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// tricky holds every hazard a listener's postback must survive.
var tricky = form.Form{
	{Name: "mc_gross", Value: "19.95"},
	{Name: "address_street", Value: "1 Main St\r\nApt 2"},
	{Name: "payment_date", Value: "20:12:59 Jan 13, 2009 PST"},
	{Name: "charset", Value: "windows-1252"},
	{Name: "first_name", Value: "J\xf6rg"},
	{Name: "custom", Value: ""},
	{Name: "item_name", Value: "a+b c"},
	{Name: "memo", Value: "k=v&x=y"},
	{Name: "transaction[0].amount", Value: "USD 2.00"},
	{Name: "payer_email", Value: "jorg@example.com"},
	{Name: "verify_sign", Value: "AtkOfCXbDm2hu0ZELryHFjY-Vb7PAUvS6nMXgysbElEn9v-1XcmSoGtf"},
	{Name: "txn_id", Value: "61E67681CH3238416"},
	{Name: "txn_type", Value: "web_accept"},
}

func newService(mode paypal.Mode) (*paypal.Service, *clock.Manual) {
	clk := clock.NewManual(t0)
	eng, err := delivery.NewEngine(delivery.Config{Clock: clk})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(eng.Close)
	svc, err := paypal.New(paypal.Config{Clock: clk, Engine: eng, Mode: mode})
	Expect(err).NotTo(HaveOccurred())
	return svc, clk
}

// sendHeld records a message without delivering it (notifications off).
func sendHeld(svc *paypal.Service, body []byte) *paypal.Message {
	m, rec, err := svc.Send(paypal.Notification{Body: body})
	Expect(err).NotTo(HaveOccurred())
	Expect(rec.Status).To(Equal(delivery.Held))
	return m
}

var sent = string(tricky.Encode())

func good() paypal.Postback {
	return paypal.Postback{Method: "POST", Body: []byte("cmd=_notify-validate&" + sent), UserAgent: "shop-ipn/1.0"}
}

func withBody(b string) func(*paypal.Postback) {
	return func(p *paypal.Postback) { p.Body = []byte(b) }
}

func replacing(old, new string) func(*paypal.Postback) {
	return func(p *paypal.Postback) {
		Expect(string(p.Body)).To(ContainSubstring(old))
		p.Body = []byte(strings.Replace(string(p.Body), old, new, 1))
	}
}

type want struct {
	result paypal.Result
	rule   paypal.Rule   // main rule when INVALID
	warn   []paypal.Rule // warnings when VERIFIED
	field  string
}

var ok = want{result: paypal.Verified}

func invalid(rule paypal.Rule, field string) want {
	return want{result: paypal.Invalid, rule: rule, field: field}
}
func warned(rules ...paypal.Rule) want { return want{result: paypal.Verified, warn: rules} }

var _ = Describe("Verifier", func() {
	It("the sample body escapes as PayPal does", func() {
		Expect(sent).To(ContainSubstring("address_street=1+Main+St%0D%0AApt+2&"))
		Expect(sent).To(ContainSubstring("first_name=J%F6rg&"))
		Expect(sent).To(ContainSubstring("item_name=a%2Bb+c&"))
		Expect(sent).To(ContainSubstring("memo=k%3Dv%26x%3Dy&"))
		Expect(sent).To(ContainSubstring("transaction%5B0%5D.amount=USD+2.00&"))
	})

	DescribeTable("judges each mutation of a valid postback, in both modes",
		func(mutate func(*paypal.Postback), inPayPal, inStrict want) {
			for mode, w := range map[paypal.Mode]want{paypal.ModePayPal: inPayPal, paypal.ModeStrict: inStrict} {
				svc, _ := newService(mode)
				m := sendHeld(svc, []byte(sent))
				pb := good()
				if mutate != nil {
					mutate(&pb)
				}
				v := svc.Check(pb)
				Expect(v.Result).To(Equal(w.result), "mode %s: %s", mode, v.Summary())
				if w.result == paypal.Invalid {
					Expect(v.Rule).To(Equal(w.rule), "mode %s: %+v", mode, v.Findings)
					if w.field != "" {
						Expect(v.Fatal()).To(ContainElement(HaveField("Field", w.field)), "mode %s", mode)
					}
					continue
				}
				Expect(v.MessageID).To(Equal(m.ID))
				var rules []paypal.Rule
				for _, f := range v.Warnings() {
					rules = append(rules, f.Rule)
				}
				if len(w.warn) == 0 {
					Expect(rules).To(BeEmpty(), "mode %s", mode)
				} else {
					Expect(rules).To(ConsistOf(w.warn), "mode %s", mode)
				}
			}
		},
		Entry("unchanged, cmd first", nil, ok, ok),
		Entry("cmd last (PayPal's Python sample)", withBody(sent+"&cmd=_notify-validate"),
			warned(paypal.RuleCmdPlacement), invalid(paypal.RuleCmdPlacement, "cmd")),
		Entry("cmd in the query string, raw body (ActiveMerchant)", func(p *paypal.Postback) {
			p.RawQuery, p.Body = "cmd=_notify-validate", []byte(sent)
		}, warned(paypal.RuleCmdPlacement), invalid(paypal.RuleCmdPlacement, "cmd")),
		Entry("everything in the query string, empty body", func(p *paypal.Postback) {
			p.RawQuery, p.Body = "cmd=_notify-validate&"+sent, nil
		}, warned(paypal.RuleCmdPlacement), invalid(paypal.RuleCmdPlacement, "cmd")),
		Entry("no cmd at all", withBody(sent), invalid(paypal.RuleCmdMissing, ""), invalid(paypal.RuleCmdMissing, "")),
		Entry("another cmd", replacing("cmd=_notify-validate", "cmd=_notify-synch"),
			invalid(paypal.RuleCmdMissing, "cmd"), invalid(paypal.RuleCmdMissing, "cmd")),
		Entry("windows-1252 re-encoded as UTF-8", replacing("J%F6rg", "J%C3%B6rg"),
			invalid(paypal.RuleCharset, "first_name"), invalid(paypal.RuleCharset, "first_name")),
		Entry("windows-1252 read as UTF-8 (U+FFFD)", replacing("J%F6rg", "J%EF%BF%BDrg"),
			invalid(paypal.RuleCharset, "first_name"), invalid(paypal.RuleCharset, "first_name")),
		Entry("charset field rewritten to UTF-8 along with the bytes", func(p *paypal.Postback) {
			replacing("J%F6rg", "J%C3%B6rg")(p)
			replacing("charset=windows-1252", "charset=UTF-8")(p)
		}, invalid(paypal.RuleCharset, "charset"), invalid(paypal.RuleCharset, "charset")),
		Entry("empty field dropped", replacing("&custom=&", "&"),
			invalid(paypal.RuleFieldDropped, "custom"), invalid(paypal.RuleFieldDropped, "custom")),
		Entry("field added", withBody("cmd=_notify-validate&"+sent+"&extra=1"),
			invalid(paypal.RuleFieldAdded, "extra"), invalid(paypal.RuleFieldAdded, "extra")),
		Entry("value changed", replacing("mc_gross=19.95", "mc_gross=19.96"),
			invalid(paypal.RuleValueChanged, "mc_gross"), invalid(paypal.RuleValueChanged, "mc_gross")),
		Entry("literal '+' decoded as a space", replacing("item_name=a%2Bb+c", "item_name=a+b+c"),
			invalid(paypal.RulePlusSpace, "item_name"), invalid(paypal.RulePlusSpace, "item_name")),
		Entry("space kept as a literal '+'", replacing("item_name=a%2Bb+c", "item_name=a%2Bb%2Bc"),
			invalid(paypal.RulePlusSpace, "item_name"), invalid(paypal.RulePlusSpace, "item_name")),
		Entry("CRLF normalised to LF", replacing("St%0D%0AApt", "St%0AApt"),
			invalid(paypal.RuleCRLF, "address_street"), invalid(paypal.RuleCRLF, "address_street")),
		Entry("value with = and & split into two fields", replacing("memo=k%3Dv%26x%3Dy", "memo=k%3Dv&x=y"),
			invalid(paypal.RuleValueChanged, "memo"), invalid(paypal.RuleValueChanged, "memo")),
		Entry("Adaptive key truncated to transaction[0]", replacing("transaction%5B0%5D.amount=", "transaction%5B0%5D="),
			invalid(paypal.RuleFieldRenamed, "transaction[0].amount"), invalid(paypal.RuleFieldRenamed, "transaction[0].amount")),
		Entry("Adaptive brackets left unescaped", replacing("transaction%5B0%5D.amount", "transaction[0].amount"),
			warned(paypal.RuleEncoding), invalid(paypal.RuleEncoding, "transaction[0].amount")),
		Entry("space escaped as %20", replacing("1+Main+St", "1%20Main%20St"),
			warned(paypal.RuleEncoding), invalid(paypal.RuleEncoding, "address_street")),
		Entry("lower-case hex", replacing("J%F6rg", "J%f6rg"),
			warned(paypal.RuleEncoding), invalid(paypal.RuleEncoding, "first_name")),
		Entry("fields reordered (Java SDK)", func(p *paypal.Postback) {
			f, err := form.Parse([]byte(sent))
			Expect(err).NotTo(HaveOccurred())
			f[0], f[1] = f[1], f[0]
			p.Body = append([]byte("cmd=_notify-validate&"), f.Encode()...)
		}, warned(paypal.RuleOrder), invalid(paypal.RuleOrder, "address_street")),
		Entry("no User-Agent", func(p *paypal.Postback) { p.UserAgent = "" },
			warned(paypal.RuleUserAgent), invalid(paypal.RuleUserAgent, "")),
		Entry("GET instead of POST", func(p *paypal.Postback) { p.Method = "GET" },
			invalid(paypal.RuleMethod, ""), invalid(paypal.RuleMethod, "")),
		Entry("malformed escape", replacing("mc_gross=19.95", "mc_gross=19%G5"),
			invalid(paypal.RuleMalformed, ""), invalid(paypal.RuleMalformed, "")),
		Entry("a message never sent", func(p *paypal.Postback) {
			replacing("verify_sign=AtkO", "verify_sign=XXXX")(p)
			replacing("txn_id=61E6", "txn_id=0000")(p)
		}, invalid(paypal.RuleUnknownMessage, ""), invalid(paypal.RuleUnknownMessage, "")),
		Entry("verify_sign changed (found by txn_id)", replacing("verify_sign=AtkO", "verify_sign=XXXX"),
			invalid(paypal.RuleValueChanged, "verify_sign"), invalid(paypal.RuleValueChanged, "verify_sign")),
		Entry("a manual resend's body with resend=true", withBody("cmd=_notify-validate&"+sent+"&resend=true"), ok, ok),
	)

	It("explains an INVALID with the exact bytes and the text", func() {
		svc, _ := newService(paypal.ModePayPal)
		sendHeld(svc, []byte(sent))
		pb := good()
		replacing("J%F6rg", "J%C3%B6rg")(&pb)
		v := svc.Check(pb)
		f := v.Fatal()[0]
		Expect(f.Field).To(Equal("first_name"))
		Expect([]string{f.Expected, f.Got, f.ExpectedText, f.GotText}).To(Equal([]string{"J%F6rg", "J%C3%B6rg", "Jörg", "JÃ¶rg"}))
		Expect(f.Detail).To(Equal(`field "first_name": re-encoded from windows-1252 to UTF-8 (same text, other bytes)`))
		Expect(v.Summary()).To(HavePrefix("INVALID charset: "))
	})

	It("attaches a malformed postback to its message when its identifiers can be read (an unescaped '%' in a value)", func() {
		svc, _ := newService(paypal.ModePayPal)
		m := sendHeld(svc, []byte(sent))
		pb := good()
		replacing("item_name=a%2Bb+c", "item_name=(50% off")(&pb)
		v := svc.Check(pb)
		Expect(v.Result).To(Equal(paypal.Invalid))
		Expect(v.Rule).To(Equal(paypal.RuleMalformed))
		Expect(v.MessageID).To(Equal(m.ID))

		pb = paypal.Postback{Method: "POST", Body: []byte("cmd=_notify-validate&item_name=%zz&txn_id=NOPE"), UserAgent: "x"}
		Expect(svc.Check(pb).MessageID).To(BeEmpty())
	})

	It("picks the right message among a lifecycle sharing one txn_id", func() {
		svc, _ := newService(paypal.ModeStrict)
		pending := tricky.Clone().Set("payment_status", "Pending").Set("verify_sign", "A1")
		completed := tricky.Clone().Set("payment_status", "Completed").Set("verify_sign", "A2")
		sendHeld(svc, pending.Encode())
		m2 := sendHeld(svc, completed.Encode())
		v := svc.Check(paypal.Postback{Method: "POST", UserAgent: "x", Body: append([]byte("cmd=_notify-validate&"), completed.Encode()...)})
		Expect(v.Result).To(Equal(paypal.Verified))
		Expect(v.MessageID).To(Equal(m2.ID))
	})
})

var _ = Describe("Verifier over HTTP", func() {
	var (
		svc *paypal.Service
		srv *httptest.Server
		m   *paypal.Message
	)
	post := func(body string) (*http.Response, string) {
		req, err := http.NewRequest("POST", srv.URL+"/cgi-bin/webscr", strings.NewReader(body))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "spec/1.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		return resp, string(b)
	}
	BeforeEach(func() {
		svc, _ = newService(paypal.ModePayPal)
		srv = httptest.NewServer(svc)
		DeferCleanup(srv.Close)
		m = sendHeld(svc, []byte(sent))
	})

	It("answers exactly VERIFIED, 200, text/html, no newline, and records the postback", func() {
		resp, body := post("cmd=_notify-validate&" + sent)
		Expect(resp.StatusCode).To(Equal(200))
		Expect(body).To(Equal("VERIFIED"))
		Expect(resp.ContentLength).To(Equal(int64(8)))
		Expect(resp.Header.Get("Content-Type")).To(Equal("text/html; charset=UTF-8"))
		pbs := svc.Postbacks(m.ID)
		Expect(pbs).To(HaveLen(1))
		Expect(pbs[0].Verdict.Result).To(Equal(paypal.Verified))
		Expect(pbs[0].Time).To(Equal(t0))
		Expect(string(pbs[0].Body)).To(Equal("cmd=_notify-validate&" + sent))
		Expect(pbs[0].Header.Get("User-Agent")).To(Equal("spec/1.0"))
	})

	It("answers INVALID to a bad postback", func() {
		_, body := post("cmd=_notify-validate&" + strings.Replace(sent, "19.95", "1.00", 1))
		Expect(body).To(Equal("INVALID"))
		Expect(svc.Postbacks("")[0].Verdict.Rule).To(Equal(paypal.RuleValueChanged))
	})

	It("refuses other methods with 405 and records why", func() {
		resp, err := http.Get(srv.URL + "/cgi-bin/webscr?cmd=_notify-validate")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(405))
		Expect(svc.Postbacks("")[0].Verdict.Rule).To(Equal(paypal.RuleMethod))
	})

	DescribeTable("injects faults, per message or globally, for a limited count",
		func(f paypal.Fault, global bool, wantStatus int, wantBody string) {
			target := m.ID
			if global {
				target = ""
			}
			Expect(svc.SetFault(target, &paypal.Fault{Kind: f.Kind, Delay: f.Delay, Count: 1})).To(Succeed())
			resp, body := post("cmd=_notify-validate&" + sent)
			if wantStatus == 0 {
				Expect(resp).To(BeNil())
				Expect(body).To(ContainSubstring("EOF"))
			} else {
				Expect(resp.StatusCode).To(Equal(wantStatus))
				Expect(body).To(Equal(wantBody))
			}
			rec := svc.Postbacks(m.ID)[0]
			Expect(rec.Fault).To(Equal(f.Kind))
			Expect(rec.Verdict.Result).To(Equal(paypal.Verified), "the record keeps the true verdict")
			// Count 1: the next postback is answered normally.
			resp, body = post("cmd=_notify-validate&" + sent)
			Expect(resp.StatusCode).To(Equal(200))
			Expect(body).To(Equal("VERIFIED"))
		},
		Entry("INVALID", paypal.Fault{Kind: paypal.FaultInvalid}, false, 200, "INVALID"),
		Entry("VERIFIED with HTTP 500", paypal.Fault{Kind: paypal.FaultStatus500}, true, 500, "VERIFIED"),
		Entry("VERIFIED and a newline", paypal.Fault{Kind: paypal.FaultNewline}, false, 200, "VERIFIED\n"),
		Entry("garbage", paypal.Fault{Kind: paypal.FaultGarbage}, true, 200, "<html><body><h1>Service Temporarily Unavailable</h1></body></html>"),
		Entry("slow", paypal.Fault{Kind: paypal.FaultSlow, Delay: 50 * time.Millisecond}, false, 200, "VERIFIED"),
		Entry("dropped connection", paypal.Fault{Kind: paypal.FaultDrop}, true, 0, ""),
	)

	It("rejects faults that cannot be applied", func() {
		Expect(svc.SetFault("", &paypal.Fault{Kind: "sometimes"})).To(MatchError(ContainSubstring(`fault kind "sometimes": want one of`)))
		Expect(svc.SetFault("", &paypal.Fault{Kind: paypal.FaultSlow})).To(MatchError("fault slow needs a positive delay"))
		Expect(svc.SetFault("NOPE", &paypal.Fault{Kind: paypal.FaultInvalid})).To(MatchError(paypal.ErrNotFound))
	})
})
