package emulator_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/form"
)

var _ = Describe("Emulator", func() {
	var l *lab
	BeforeEach(func() {
		l = newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
	})

	It("sends a generated IPN with PayPal's headers; the listener's postback is VERIFIED", func() {
		msg := l.send(map[string]any{"kind": "web_accept", "params": map[string]any{"gross": "25.00", "payer_email": "ann@example.com"}})
		Expect(msg["status"]).To(Equal("Sent"))
		Expect(msg["kind"]).To(Equal("web_accept"))
		Expect(msg["txn_id"]).To(MatchRegexp(`^[A-Z0-9]{17}$`))
		Expect(msg["seed"]).NotTo(BeZero())
		got := l.listener.received()
		Expect(got).To(HaveLen(1))
		f, err := form.Parse(got[0])
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Value("mc_gross")).To(Equal("25.00"))
		Expect(f.Value("payer_email")).To(Equal("ann@example.com"))
		Expect(f.Value("receiver_email")).To(Equal("merchant@example.com"))
		Expect(f.Value("test_ipn")).To(Equal("1"))
		Expect(verdicts(l.message(msg["id"].(string)))).To(Equal([]string{"VERIFIED"}))
	})

	It("runs PayPal's 15 retries over the virtual days via the API, then shows Failed", func() {
		l.listener.set(500, nil)
		msg := l.send(map[string]any{"kind": "cart", "params": map[string]any{"items": 2}})
		id := msg["id"].(string)
		Expect(msg["status"]).To(Equal("Retrying"))
		start := time.Now()
		code, clk := l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "4d"})
		Expect(code).To(Equal(200))
		Expect(time.Since(start)).To(BeNumerically("<", time.Second))
		Expect(clk["now"]).To(Equal(t0.Add(96 * time.Hour).Format(time.RFC3339)))
		m := l.message(id)
		Expect(m["status"]).To(Equal("Failed"))
		Expect(m["attempts"]).To(HaveLen(16))
		Expect(m["retries"]).To(BeNumerically("==", 15))
		Expect(l.listener.received()).To(HaveLen(16))
	})

	It("takes only HTTP 200 as an ack, in paypal mode too: a 204 is retried, with a note saying why", func() {
		l.listener.set(204, nil)
		msg := l.send(map[string]any{"kind": "web_accept"})
		Expect(msg["status"]).To(Equal("Retrying"))
		m := l.message(msg["id"].(string))
		attempt := m["attempts"].([]any)[0].(map[string]any)
		Expect(attempt["acked"]).To(BeFalse())
		Expect(attempt["note"]).To(Equal("HTTP 204 is not an ack: only 200 stops the resends"))
	})

	It("replays a captured windows-1252 body byte for byte: VERIFIED as is, INVALID re-encoded as UTF-8", func() {
		raw := "mc_gross=10.00&txn_id=51403485VH153354B&first_name=J%F6rg&charset=windows-1252&custom=website_id%3D13%26user_id%3D21&verify_sign=An5ns1Kso7MWUdW4ErQKJJJ4qi4-AqdZy6dD.sGO3sDhTf1wAbuO2IZ7"
		msg := l.send(map[string]any{"raw": raw})
		Expect(msg["body"]).To(Equal(raw))
		Expect(l.listener.received()[0]).To(Equal([]byte(raw)))
		Expect(verdicts(l.message(msg["id"].(string)))).To(Equal([]string{"VERIFIED"}))

		l.listener.set(200, func(b []byte) []byte {
			return append([]byte("cmd=_notify-validate&"), bytes.Replace(b, []byte("J%F6rg"), []byte("J%C3%B6rg"), 1)...)
		})
		code, _ := l.call("POST", "/api/v1/messages/"+msg["id"].(string)+"/resend", nil)
		Expect(code).To(Equal(202))
		m := l.message(msg["id"].(string))
		pbs := m["postbacks"].([]any)
		Expect(pbs).To(HaveLen(2))
		v := pbs[1].(map[string]any)["verdict"].(map[string]any)
		Expect(v["result"]).To(Equal("INVALID"))
		Expect(v["rule"]).To(Equal("charset"))
	})

	It("replays a windows-1255 (Hebrew) body: VERIFIED byte for byte, INVALID as UTF-8", func() {
		heb, err := form.EncodeText(form.Form{{Name: "first_name", Value: "שרה"}, {Name: "charset", Value: "windows-1255"},
			{Name: "txn_id", Value: "9HB12345AB1234567"}, {Name: "verify_sign", Value: "AHebrewSampleSign0000000000000000000000000000000000000000"}}, form.MustCharset("windows-1255"))
		Expect(err).NotTo(HaveOccurred())
		body := heb.Encode()
		Expect(string(body)).To(HavePrefix("first_name=%F9%F8%E4&"))
		msg := l.send(map[string]any{"raw_base64": base64.StdEncoding.EncodeToString(body)})
		Expect(verdicts(l.message(msg["id"].(string)))).To(Equal([]string{"VERIFIED"}))

		utf8Body := bytes.Replace(body, []byte("%F9%F8%E4"), []byte(form.Escape("שרה")), 1)
		v := l.emu.PayPal().Check(paypal.Postback{Method: "POST", UserAgent: "x", Body: append([]byte("cmd=_notify-validate&"), utf8Body...)})
		Expect(v.Result).To(Equal(paypal.Invalid))
		Expect(v.Rule).To(Equal(paypal.RuleCharset))
		Expect(v.Fatal()[0].Detail).To(ContainSubstring("re-encoded from windows-1255 to UTF-8"))
	})

	It("holds messages created while IPN is off: switching it on sends nothing, a resend by hand does (IPN Guide)", func() {
		code, body := l.call("POST", "/api/v1/paypal/notifications", map[string]any{"kind": "send_money"})
		Expect(code).To(Equal(201))
		Expect(body["status"]).To(Equal("Held"))
		Expect(l.listener.received()).To(BeEmpty())

		code, prof := l.call("PUT", "/api/v1/paypal/profile", map[string]any{
			"notify_url": l.lsrv.URL + "/ipn", "enabled": true, "receiver_email": "shop@example.com", "receiver_id": "SHOP000000001"})
		Expect(code).To(Equal(200), "%v", prof)
		Expect(prof["release_held"]).To(BeFalse())
		code, _ = l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "5d"})
		Expect(code).To(Equal(200))
		Expect(l.message(body["id"].(string))["status"]).To(Equal("Held"), "switching IPN on releases nothing")
		Expect(l.listener.received()).To(BeEmpty())

		// The profile had no URL when the message was made: a resend must name one.
		code, out := l.call("POST", "/api/v1/messages/"+body["id"].(string)+"/resend", nil)
		Expect(code).To(Equal(400), "%v", out)
		Expect(fmt.Sprint(out["error"])).To(ContainSubstring("created while IPN was off and the profile had no URL"))
		code, out = l.call("POST", "/api/v1/messages/resend", map[string]any{"since": t0.Format(time.RFC3339), "status": "held", "use_profile_url": true})
		Expect(code).To(Equal(202), "%v", out)
		Expect(out["resent"]).To(ConsistOf(body["id"]))
		Expect(l.message(body["id"].(string))["status"]).To(Equal("Sent"))
		Expect(string(l.listener.received()[0])).To(HaveSuffix("&resend=true"))

		// The profile's receiver fills new messages; no notify_url goes to the profile URL.
		code, body = l.call("POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept"})
		Expect(code).To(Equal(201))
		Expect(body["status"]).To(Equal("Sent"))
		f, _ := form.Parse(l.listener.received()[1])
		Expect(f.Value("receiver_email")).To(Equal("shop@example.com"))
	})

	It("sends the Held messages when IPN is switched on only with the profile's release_held opt-in", func() {
		code, _ := l.call("PUT", "/api/v1/paypal/profile", map[string]any{"notify_url": l.lsrv.URL + "/ipn", "enabled": false})
		Expect(code).To(Equal(200))
		held := l.send(map[string]any{"kind": "web_accept", "notify_url": ""})
		Expect(held["status"]).To(Equal("Held"))
		Expect(held["url"]).To(Equal(l.lsrv.URL+"/ipn"), "kept with the profile's URL, where a resend goes")
		code, out := l.call("GET", "/api/v1/messages?status=disabled", nil)
		Expect(code).To(Equal(400))
		Expect(fmt.Sprint(out["error"])).To(ContainSubstring("merchant's account is disabled"))
		_, out = l.call("GET", "/api/v1/messages?status=held", nil)
		Expect(out["total"]).To(BeNumerically("==", 1))

		code, prof := l.call("PUT", "/api/v1/paypal/profile", map[string]any{"notify_url": l.lsrv.URL + "/ipn", "enabled": true, "release_held": true})
		Expect(code).To(Equal(200), "%v", prof)
		Expect(prof["release_held"]).To(BeTrue())
		m := l.message(held["id"].(string))
		Expect(m["status"]).To(Equal("Sent"))
		Expect(string(l.listener.received()[0])).NotTo(ContainSubstring("resend=true"), "a release is the first delivery")
	})

	It("a per-payment notify_url is used even while IPN is off", func() {
		msg := l.send(map[string]any{"kind": "web_accept"})
		Expect(msg["status"]).To(Equal("Sent"))
	})

	It("resends by hand with resend=true, and resends all failed since a time", func() {
		l.listener.set(500, nil)
		a := l.send(map[string]any{})
		b := l.send(map[string]any{})
		code, _ := l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "5d"})
		Expect(code).To(Equal(200))
		l.listener.set(200, nil)
		code, out := l.call("POST", "/api/v1/messages/resend", map[string]any{"since": t0.Format(time.RFC3339)})
		Expect(code).To(Equal(202))
		Expect(out["resent"]).To(ConsistOf(a["id"], b["id"]))
		bodies := l.listener.received()
		Expect(string(bodies[len(bodies)-1])).To(HaveSuffix("&resend=true"))
		Expect(l.message(a["id"].(string))["status"]).To(Equal("Sent"))
		Expect(verdicts(l.message(a["id"].(string)))).To(ContainElement("VERIFIED"))
	})

	It("lists History with filters", func() {
		l.send(map[string]any{"kind": "web_accept"})
		l.listener.set(500, nil)
		l.send(map[string]any{"kind": "cart"})
		code, out := l.call("GET", "/api/v1/messages?status=retrying", nil)
		Expect(code).To(Equal(200))
		Expect(out["total"]).To(BeNumerically("==", 1))
		Expect(out["messages"].([]any)[0].(map[string]any)["kind"]).To(Equal("cart"))
		_, out = l.call("GET", "/api/v1/messages?kind=web_accept", nil)
		Expect(out["total"]).To(BeNumerically("==", 1))
	})

	It("injects a verifier fault for one message through the API", func() {
		msg := l.send(map[string]any{"fault": map[string]any{"kind": "status500", "count": 1}})
		pbs := l.message(msg["id"].(string))["postbacks"].([]any)
		Expect(pbs[0].(map[string]any)["response_status"]).To(BeNumerically("==", 500))
		Expect(l.listener.verdicts).To(Equal([]string{"VERIFIED"}))
	})

	It("puts a message's fault in force before its first delivery leaves (a listener verifying inside its handler meets it every time)", func() {
		// The test listener posts back synchronously from its handler, so
		// the first postback races the fault's registration if the fault
		// comes after the send.
		for i := range 1000 {
			v, err := l.emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: l.lsrv.URL + "/ipn",
				Fault: &emulator.FaultRequest{Kind: "status500", Count: 1}})
			Expect(err).NotTo(HaveOccurred())
			Expect(v.Postbacks).NotTo(BeEmpty(), "message %d", i)
			Expect(v.Postbacks[0].Fault).To(Equal(paypal.FaultStatus500), "message %d: its first postback went out without its fault", i)
			Expect(v.Postbacks[0].Status).To(Equal(500))
		}
	})

	It("sends nothing when a fault, a copy count or a target is refused", func() {
		for _, req := range []emulator.SendRequest{
			{Kind: "web_accept", Copies: 3, Fault: &emulator.FaultRequest{Kind: "flaky"}},
			{Kind: "web_accept", Fault: &emulator.FaultRequest{Kind: "slow"}},
			{Kind: "web_accept", Copies: 1001},
		} {
			req.NotifyURL = l.lsrv.URL + "/ipn"
			_, err := l.emu.SendPayPal(req)
			Expect(err).To(HaveOccurred())
		}
		Expect(l.listener.received()).To(BeEmpty())
		Expect(l.emu.Engine().List(nil)).To(BeEmpty())
	})

	It("answers a poll or stream from any cursor, and stays healthy and working (a cursor of 2^64-1 froze it while /healthz said ok)", func() {
		l.send(map[string]any{}) // events to read past
		for _, after := range []string{"18446744073709551615", "18446744073709551614", "9223372036854775808"} {
			code, out := l.call("GET", "/api/v1/events/poll?after="+after+"&timeout=10ms", nil)
			Expect(code).To(Equal(200), "%s: %v", after, out)
			req, _ := http.NewRequest("GET", l.api.URL+"/api/v1/events", nil)
			req.Header.Set("Last-Event-ID", after)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cancel()
		}
		msg := l.send(map[string]any{})
		Expect(verdicts(l.message(msg["id"].(string)))).To(Equal([]string{"VERIFIED"}))
		code, h := l.call("GET", "/healthz", nil)
		Expect(code).To(Equal(200))
		Expect(h["status"]).To(Equal("ok"))
		Expect(l.emu.Stuck(100 * time.Millisecond)).To(BeEmpty())
	})

	It("serves its control API beyond loopback only with a token, whoever starts it", func() {
		_, err := emulator.Start(emulator.Config{}, "0.0.0.0:0")
		Expect(err).To(MatchError(emulator.ErrExposed))
		for addr, ok := range map[string]bool{"127.0.0.1:0": true, "[::1]:0": true, "localhost:8700": true, "127.9.9.9:1": true,
			"0.0.0.0:0": false, "[::]:0": false, ":8700": false, "10.0.0.5:80": false, "ci-host:8700": false} {
			err := emulator.CheckExposure(addr, "")
			Expect(err == nil).To(Equal(ok), addr)
			Expect(emulator.CheckExposure(addr, "tok")).To(Succeed(), addr)
		}
	})

	It("long-polls events instead of sleeping", func() {
		msg := l.send(map[string]any{})
		code, out := l.call("GET", "/api/v1/events/poll?type=postback&message_id="+msg["id"].(string)+"&timeout=1s", nil)
		Expect(code).To(Equal(200))
		evs := out["events"].([]any)
		Expect(evs).To(HaveLen(1))
		Expect(evs[0].(map[string]any)["type"]).To(Equal("postback"))
	})

	It("streams events as server-sent events", func() {
		l.send(map[string]any{})
		resp, err := http.Get(l.api.URL + "/api/v1/events?type=delivery.attempt")
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.Header.Get("Content-Type")).To(Equal("text/event-stream"))
		buf := make([]byte, 4096)
		var got strings.Builder
		for !strings.Contains(got.String(), "event: delivery.attempt") {
			n, err := resp.Body.Read(buf)
			Expect(err).NotTo(HaveOccurred())
			got.Write(buf[:n])
		}
		Expect(got.String()).To(MatchRegexp(`id: \d+\nevent: delivery.attempt\ndata: \{`))
	})

	It("serves its OpenAPI document and health", func() {
		resp, err := http.Get(l.api.URL + "/api/v1/openapi.yaml")
		Expect(err).NotTo(HaveOccurred())
		doc, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(string(doc)).To(HavePrefix("openapi: 3.0.3"))
		code, h := l.call("GET", "/healthz", nil)
		Expect(code).To(Equal(200))
		Expect(h["clock"]).To(Equal("manual"))
	})

	DescribeTable("answers every bad request with a 4xx JSON error naming the problem",
		func(method, path string, body any, status int, msg string) {
			code, out := l.call(method, path, body)
			Expect(code).To(Equal(status), "%v", out)
			e := out["error"].(map[string]any)
			Expect(e["status"]).To(BeNumerically("==", status))
			Expect(e["message"]).To(ContainSubstring(msg))
		},
		Entry("invalid JSON", "POST", "/api/v1/paypal/notifications", `{"kind":`, 400, "invalid JSON"),
		Entry("unknown field", "POST", "/api/v1/paypal/notifications", `{"knd":"web_accept"}`, 400, `unknown field "knd"`),
		Entry("trailing data", "POST", "/api/v1/paypal/notifications", `{} {}`, 400, "data after the first value"),
		Entry("empty body", "POST", "/api/v1/paypal/notifications", "", 400, "empty body"),
		Entry("a null body (was taken for {})", "POST", "/api/v1/paypal/notifications", "null", 400, "body is null"),
		Entry("a null profile", "PUT", "/api/v1/paypal/profile", " null ", 400, "body is null"),
		Entry("unknown kind", "POST", "/api/v1/paypal/notifications", `{"kind":"web_acept","notify_url":"http://127.0.0.1:1/"}`, 400, `unknown kind "web_acept"`),
		Entry("set value not a string", "POST", "/api/v1/paypal/notifications", `{"set":{"mc_gross":10}}`, 400, "value must be a string"),
		Entry("a field set twice (the second quietly won)", "POST", "/api/v1/paypal/notifications", `{"set":{"custom":"a","custom":"b"},"notify_url":"http://127.0.0.1:1/"}`, 400, `duplicate key "custom"`),
		Entry("unset a field the kind lacks", "POST", "/api/v1/paypal/notifications", `{"unset":["nope"],"notify_url":"http://127.0.0.1:1/"}`, 400, `unset "nope"`),
		Entry("unknown charset", "POST", "/api/v1/paypal/notifications", `{"charset":"klingon-8","notify_url":"http://127.0.0.1:1/"}`, 400, `charset "klingon-8"`),
		Entry("text the charset cannot hold", "POST", "/api/v1/paypal/notifications", `{"set":{"first_name":"שרה"},"notify_url":"http://127.0.0.1:1/"}`, 400, "not representable in charset"),
		Entry("bad gross", "POST", "/api/v1/paypal/notifications", `{"params":{"gross":"ten"},"notify_url":"http://127.0.0.1:1/"}`, 400, "params.gross"),
		Entry("malformed raw body", "POST", "/api/v1/paypal/notifications", `{"raw":"a=%zz","notify_url":"http://127.0.0.1:1/"}`, 400, "raw body: malformed form encoding"),
		Entry("raw with a kind", "POST", "/api/v1/paypal/notifications", `{"raw":"a=1","kind":"cart"}`, 400, "sent byte for byte"),
		Entry("bad notify_url", "POST", "/api/v1/paypal/notifications", `{"notify_url":"ftp://x/"}`, 400, "scheme must be http or https"),
		Entry("bad fault", "POST", "/api/v1/paypal/notifications", `{"fault":{"kind":"flaky"},"notify_url":"http://127.0.0.1:1/"}`, 400, `fault kind "flaky"`),
		Entry("unknown message", "GET", "/api/v1/messages/NOPE", nil, 404, "no such message"),
		Entry("resend unknown", "POST", "/api/v1/messages/NOPE/resend", nil, 404, "no such message"),
		Entry("bad status filter", "GET", "/api/v1/messages?status=Lost", nil, 400, `status "Lost": want Queued`),
		Entry("unknown query parameter", "GET", "/api/v1/messages?stat=Sent", nil, 400, `unknown query parameter "stat"`),
		Entry("bad since", "GET", "/api/v1/messages?since=yesterday", nil, 400, "RFC 3339"),
		Entry("bad limit", "GET", "/api/v1/messages?limit=0", nil, 400, "limit"),
		Entry("bulk resend without since", "POST", "/api/v1/messages/resend", `{}`, 400, "since is required"),
		Entry("bad duration", "POST", "/api/v1/clock/advance", `{"duration":"soon"}`, 400, `duration "soon"`),
		Entry("profile on without URL", "PUT", "/api/v1/paypal/profile", `{"enabled":true}`, 400, "without a notify_url"),
		Entry("slow fault without delay", "PUT", "/api/v1/paypal/fault", `{"kind":"slow"}`, 400, "positive delay"),
		Entry("bad event type", "GET", "/api/v1/events/poll?type=nope", nil, 400, `event type "nope"`),
		Entry("no such endpoint", "GET", "/api/v1/nothing", nil, 404, "no endpoint GET /api/v1/nothing"),
		Entry("wrong method", "DELETE", "/api/v1/clock/advance", nil, 405, "use POST"),
	)

	It("refuses to advance a clock that is not manual", func() {
		real := newRealLab()
		defer real.close()
		code, out := real.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "1h"})
		Expect(code).To(Equal(409))
		Expect(fmt.Sprint(out["error"])).To(ContainSubstring("clock is not manual"))
	})
})

var _ = Describe("Lifecycles through the emulator", func() {
	It("sends each step at its clock offset; a chargeback plays out as the clock advances", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
		code, plan := l.call("POST", "/api/v1/paypal/lifecycles", map[string]any{"name": "chargeback", "notify_url": l.lsrv.URL + "/ipn"})
		Expect(code).To(Equal(201), "%v", plan)
		steps := plan["steps"].([]any)
		Expect(steps).To(HaveLen(5))
		Expect(steps[0].(map[string]any)["message_id"]).NotTo(BeEmpty())
		Expect(steps[1].(map[string]any)).NotTo(HaveKey("message_id"))
		Expect(l.listener.received()).To(HaveLen(1))

		code, _ = l.call("POST", "/api/v1/clock/advance", map[string]string{"duration": "40d"})
		Expect(code).To(Equal(200))
		got := l.listener.received()
		Expect(got).To(HaveLen(5))
		parent, _ := form.Parse(got[0])
		statuses := []string{}
		for _, b := range got[2:] {
			f, err := form.Parse(b)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Value("parent_txn_id")).To(Equal(parent.Value("txn_id")))
			statuses = append(statuses, f.Value("payment_status"))
		}
		Expect(statuses).To(Equal([]string{"Reversed", "Canceled_Reversal", "Completed"}))
		_, out := l.call("GET", "/api/v1/messages?status=Sent", nil)
		Expect(out["total"]).To(BeNumerically("==", 5))
	})

	It("sends nothing when the request is bad", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
		code, out := l.call("POST", "/api/v1/paypal/lifecycles", map[string]any{"name": "chargebak", "notify_url": l.lsrv.URL})
		Expect(code).To(Equal(400))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(`unknown lifecycle "chargebak"`))
		Expect(l.listener.received()).To(BeEmpty())
	})
})

var _ = Describe("Every kind through the emulator", func() {
	It("is delivered and a byte-exact postback is VERIFIED, in each charset, in strict mode", func() {
		l := newLab(paypal.ModeStrict)
		DeferCleanup(l.close)
		_, out := l.call("GET", "/api/v1/fixtures/kinds", nil)
		kinds := out["kinds"].([]any)
		Expect(len(kinds)).To(BeNumerically(">=", 40))
		for _, k := range kinds {
			name := k.(map[string]any)["name"].(string)
			for _, cs := range []string{"windows-1252", "UTF-8", "windows-1255", "KOI8_R"} {
				for _, flavour := range []string{"paypal", "simulator"} {
					msg := l.send(map[string]any{"kind": name, "charset": cs, "flavour": flavour, "params": map[string]any{"items": 2}})
					Expect(msg["status"]).To(Equal("Sent"), "%s %s %s", name, cs, flavour)
					Expect(verdicts(l.message(msg["id"].(string)))).To(Equal([]string{"VERIFIED"}), "%s %s %s", name, cs, flavour)
				}
			}
		}
	})
})

var _ = Describe("HTTPS listeners", func() {
	It("delivers to an HTTPS notify URL and the postback verifies", func() {
		tl := &testListener{status: 200}
		tsrv := httptest.NewTLSServer(tl)
		DeferCleanup(tsrv.Close)
		pool := x509.NewCertPool()
		pool.AddCert(tsrv.Certificate())
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		DeferCleanup(func() { emu.Close(); api.Close() })
		tl.verifyURL = api.URL + "/cgi-bin/webscr"
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: tsrv.URL + "/ipn"})
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Status).To(Equal("Sent"))
		Expect(v.Attempts[0].URL).To(HavePrefix("https://"))
		Expect(v.Postbacks).To(HaveLen(1))

		// Without the CA the certificate is refused, and that is a failed attempt.
		plain, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0)})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(plain.Close)
		v, err = plain.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: tsrv.URL + "/ipn"})
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Status).To(Equal("Retrying"))
		Expect(v.Attempts[0].Error).To(ContainSubstring("certificate"))
	})
})

var _ = Describe("Dispatch", func() {
	It("sends one message without waiting for it, and refuses what only the API's send does", func() {
		l := newLab(paypal.ModePayPal)
		DeferCleanup(l.close)
		id, err := l.emu.Dispatch(emulator.SendRequest{Kind: "web_accept", NotifyURL: l.lsrv.URL})
		Expect(err).NotTo(HaveOccurred())
		l.emu.WaitIdle()
		rec, ok := l.emu.Engine().Get(id)
		Expect(ok).To(BeTrue())
		Expect(rec.Kind).To(Equal("web_accept"))
		Expect(rec.AckedAt).NotTo(BeNil())
		Expect(l.listener.received()).To(HaveLen(1))

		_, err = l.emu.Dispatch(emulator.SendRequest{Kind: "web_accept", NotifyURL: l.lsrv.URL, Copies: 2})
		Expect(err).To(MatchError(ContainSubstring("dispatch sends one message: copies and fault do not apply")))
		_, err = l.emu.Dispatch(emulator.SendRequest{Kind: "nope", NotifyURL: l.lsrv.URL})
		Expect(err).To(MatchError(ContainSubstring(`unknown kind "nope"`)))

		pid, err := l.emu.DispatchPayDo(emulator.PayDoRequest{Kind: "checkout", NotifyURL: l.lsrv.URL})
		Expect(err).NotTo(HaveOccurred())
		l.emu.WaitIdle()
		prec, ok := l.emu.Engine().Get(pid)
		Expect(ok).To(BeTrue())
		Expect(prec.Provider).To(Equal("paydo"))
		_, err = l.emu.DispatchPayDo(emulator.PayDoRequest{Kind: "checkout", NotifyURL: l.lsrv.URL, Then: []int{2}})
		Expect(err).To(MatchError(ContainSubstring("copies and then do not apply")))
		_, err = l.emu.DispatchPayDo(emulator.PayDoRequest{Kind: "checkout"})
		Expect(err).To(HaveOccurred())
	})

	It("tells an Observer of every delivery change and postback, in-process", func() {
		var mu sync.Mutex
		var seen []string
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 1, Observer: emulator.Observer{
			Delivery: func(ev delivery.Event) { mu.Lock(); seen = append(seen, string(ev.Type)); mu.Unlock() },
			Postback: func(p paypal.PostbackRecord) { mu.Lock(); seen = append(seen, string(p.Verdict.Result)); mu.Unlock() },
		}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(emu.Close)
		api := httptest.NewServer(emu)
		DeferCleanup(api.Close)
		lst := &testListener{status: 200, verifyURL: api.URL + "/cgi-bin/webscr"}
		lsrv := httptest.NewServer(lst)
		DeferCleanup(lsrv.Close)
		_, err = emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: lsrv.URL})
		Expect(err).NotTo(HaveOccurred())
		mu.Lock()
		defer mu.Unlock()
		Expect(seen).To(ContainElements("queued", "attempt", "VERIFIED"))
		Expect(seen[0]).To(Equal("queued"))
	})
})
