package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
)

// fieldsOf turns a preview's fields into name/value pairs.
func fieldsOf(p map[string]any) [][2]string {
	var out [][2]string
	for _, f := range p["fields"].([]any) {
		fm := f.(map[string]any)
		out = append(out, [2]string{fm["name"].(string), fm["value"].(string)})
	}
	return out
}

var _ = Describe("Previews and whole-message sends (the Simulator's API)", func() {
	var l *lab
	BeforeEach(func() {
		l = newLab("")
		DeferCleanup(l.close)
	})

	It("previews a PayPal kind without sending it, the same for the same seed", func() {
		code, p := l.call("GET", "/api/v1/fixtures/paypal/web_accept?seed=7", nil)
		Expect(code).To(Equal(200), "%v", p)
		Expect(p).To(HaveKeyWithValue("kind", "web_accept"))
		Expect(p).To(HaveKeyWithValue("seed", "7"))
		Expect(p).To(HaveKeyWithValue("charset", "windows-1252"))
		Expect(fieldsOf(p)).To(ContainElement([2]string{"txn_type", "web_accept"}))
		_, again := l.call("GET", "/api/v1/fixtures/paypal/web_accept?seed=7", nil)
		Expect(fieldsOf(again)).To(Equal(fieldsOf(p)))
		_, list := l.call("GET", "/api/v1/messages", nil)
		Expect(list["total"]).To(Equal(0.0))

		_, drawn := l.call("GET", "/api/v1/fixtures/paypal/web_accept?charset=UTF-8", nil)
		Expect(drawn["seed"]).NotTo(BeZero())
		Expect(drawn).To(HaveKeyWithValue("charset", "UTF-8"))
		Expect(fieldsOf(drawn)).To(ContainElement([2]string{"charset", "UTF-8"}))
	})

	It("previews a PayDo checkout with the amount its lookup answers", func() {
		code, p := l.call("GET", "/api/v1/fixtures/paydo/checkout?seed=3", nil)
		Expect(code).To(Equal(200), "%v", p)
		Expect(p["body"]).To(HaveKey("transaction"))
		Expect(p["amount"]).To(MatchRegexp(`^\d+\.\d\d$`))
		Expect(p["currency"]).NotTo(BeEmpty())
	})

	DescribeTable("refuses bad previews",
		func(path, want string) {
			code, out := l.call("GET", path, nil)
			Expect(code).To(Equal(400))
			Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(want))
		},
		Entry("unknown kind", "/api/v1/fixtures/paypal/nope", `unknown kind "nope"`),
		Entry("unknown charset", "/api/v1/fixtures/paypal/web_accept?charset=klingon", "klingon"),
		Entry("bad seed", "/api/v1/fixtures/paypal/web_accept?seed=x", `seed "x"`),
		Entry("unknown parameter", "/api/v1/fixtures/paypal/web_accept?sed=1", `unknown query parameter "sed"`),
		Entry("unknown PayDo kind", "/api/v1/fixtures/paydo/refund", "refund"),
	)

	It("sends an edited field list whole, encoded in the charset its charset field names", func() {
		_, p := l.call("GET", "/api/v1/fixtures/paypal/web_accept?seed=11&charset=windows-1252", nil)
		var fields []map[string]string
		for _, f := range fieldsOf(p) {
			switch f[0] {
			case "mc_gross":
				f[1] = "12.34"
			case "memo":
				continue // removed
			}
			fields = append(fields, map[string]string{"name": f[0], "value": f[1]})
		}
		fields = append(fields, map[string]string{"name": "custom", "value": "Crème brûlée"})
		msg := l.send(map[string]any{"kind": "web_accept", "fields": fields})
		Expect(msg).To(HaveKeyWithValue("kind", "web_accept"))
		Expect(msg).To(HaveKeyWithValue("charset", "windows-1252"))
		got := l.listener.received()
		Expect(got).To(HaveLen(1))
		Expect(string(got[0])).To(ContainSubstring("mc_gross=12.34"))
		Expect(string(got[0])).To(HaveSuffix("&custom=Cr%E8me+br%FBl%E9e"))
		Expect(string(got[0])).NotTo(ContainSubstring("memo="))
		var shown [][2]string
		for _, f := range msg["fields"].([]any) {
			fm := f.(map[string]any)
			shown = append(shown, [2]string{fm["name"].(string), fm["value"].(string)})
		}
		Expect(shown[len(shown)-1]).To(Equal([2]string{"custom", "Crème brûlée"}))
		Expect(verdicts(l.message(msg["id"].(string)))).To(Equal([]string{"VERIFIED"}))
	})

	DescribeTable("refuses a field list it cannot send as asked",
		func(req map[string]any, want string) {
			req["notify_url"] = l.lsrv.URL + "/ipn"
			code, out := l.call("POST", "/api/v1/paypal/notifications", req)
			Expect(code).To(Equal(400), "%v", out)
			Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(want))
			Expect(l.listener.received()).To(BeEmpty())
		},
		Entry("with generation options", map[string]any{"fields": []map[string]string{{"name": "a", "value": "b"}}, "charset": "UTF-8"},
			"fields are the whole message"),
		Entry("with a raw body", map[string]any{"fields": []map[string]string{{"name": "a", "value": "b"}}, "raw": "a=b"},
			"a raw body is sent byte for byte"),
		Entry("an empty name", map[string]any{"fields": []map[string]string{{"name": "a", "value": "b"}, {"name": "", "value": "c"}}},
			"fields[1]: a field name is empty"),
		Entry("an unknown charset", map[string]any{"fields": []map[string]string{{"name": "charset", "value": "klingon"}}},
			"klingon"),
		Entry("text the charset cannot hold", map[string]any{"fields": []map[string]string{{"name": "charset", "value": "windows-1252"}, {"name": "custom", "value": "日本"}}},
			"windows-1252"),
		Entry("an unknown kind label", map[string]any{"kind": "nope", "fields": []map[string]string{{"name": "a", "value": "b"}}},
			`unknown kind "nope"`),
	)

	Describe("a whole PayDo body", func() {
		var jl *jsonListener
		BeforeEach(func() {
			jl = &jsonListener{status: 200}
			srv := httptest.NewServer(jl)
			DeferCleanup(srv.Close)
			Expect(l.emu.PayDo().RegisterCheckoutURL("default", srv.URL)).To(Succeed())
		})

		It("is sent exactly, with the amount its lookup answers", func() {
			body := `{"invoice":{"id":"inv-1","txid":"t-1"},"transaction":{"id":"tx-edited","state":2,"note":"by hand"}}`
			code, out := l.call("POST", "/api/v1/paydo/notifications", map[string]any{
				"kind": "checkout", "body": rawJSON(body), "params": map[string]any{"amount": "9.99", "currency": "USD"}})
			Expect(code).To(Equal(201), "%v", out)
			msg := out["messages"].([]any)[0].(map[string]any)
			Expect(msg["body"]).To(Equal(body))
			Expect(tx(jl.got()[0])).To(HaveKeyWithValue("note", "by hand"))
			t, ok := l.emu.PayDo().Transaction("tx-edited")
			Expect(ok).To(BeTrue())
			Expect(t.Amount).To(Equal("9.99"))
			Expect(t.Currency).To(Equal("USD"))
		})

		DescribeTable("is refused with options that would change it",
			func(req map[string]any, want string) {
				code, out := l.call("POST", "/api/v1/paydo/notifications", req)
				Expect(code).To(Equal(400), "%v", out)
				Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(want))
				Expect(jl.got()).To(BeEmpty())
			},
			Entry("not an object", map[string]any{"kind": "checkout", "body": rawJSON(`[1]`)}, "want a JSON object"),
			Entry("with then", map[string]any{"kind": "checkout", "body": rawJSON(`{}`), "then": []int{2}}, "body is the whole message"),
			Entry("with set", map[string]any{"kind": "checkout", "body": rawJSON(`{}`), "set": map[string]any{"a": 1}}, "body is the whole message"),
			Entry("with a status param", map[string]any{"kind": "checkout", "body": rawJSON(`{}`), "params": map[string]any{"status": 2}}, "body is the whole message"),
			Entry("an unknown kind", map[string]any{"kind": "refund", "body": rawJSON(`{}`)}, `kind "refund"`),
		)
	})
})

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// fakeRunner records the scenario runs it is asked for.
type fakeRunner struct {
	mu      sync.Mutex
	targets []emulator.ScenarioTarget
	last    emulator.ScenarioRequest
	block   chan struct{}
}

func (f *fakeRunner) Scenarios() ([]emulator.ScenarioInfo, error) {
	return []emulator.ScenarioInfo{{Name: "one", Provider: "paypal", Description: "the only one"}}, nil
}

func (f *fakeRunner) Run(ctx context.Context, emu *emulator.Emulator, req emulator.ScenarioRequest) (any, error) {
	name, t := req.Name, req.Target
	if name == "broken" {
		return nil, errors.New("it moves the clock")
	}
	if name != "one" {
		return nil, emulator.ErrUnknownScenario
	}
	f.mu.Lock()
	f.targets = append(f.targets, t)
	f.last = req
	f.mu.Unlock()
	if f.block != nil {
		<-f.block
	}
	return map[string]string{"scenario": name, "status": "passed"}, nil
}

var _ = Describe("Scenario runs through the API", func() {
	It("has none to run without a runner", func() {
		l := newLab("")
		DeferCleanup(l.close)
		code, out := l.call("GET", "/api/v1/scenarios", nil)
		Expect(code).To(Equal(200))
		Expect(out["scenarios"]).To(BeEmpty())
		code, out = l.call("POST", "/api/v1/scenarios/one/run", nil)
		Expect(code).To(Equal(404))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("runs no scenarios"))
	})

	It("runs against the given target, else the set one, else the account's IPN URL; one at a time", func() {
		fr := &fakeRunner{}
		emu, err := emulator.New(emulator.Config{Scenarios: fr, Seed: 1})
		Expect(err).NotTo(HaveOccurred())
		l := &lab{emu: emu, api: httptest.NewServer(emu), lsrv: httptest.NewServer(&testListener{status: 200})}
		DeferCleanup(l.close)

		code, out := l.call("POST", "/api/v1/scenarios/one/run", nil)
		Expect(code).To(Equal(400), "%v", out)
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("no listener to run against"))

		code, out = l.call("PUT", "/api/v1/paypal/profile", map[string]any{"notify_url": "http://127.0.0.1:9/ipn", "enabled": true})
		Expect(code).To(Equal(200), "%v", out)
		code, out = l.call("GET", "/api/v1/scenarios", nil)
		Expect(code).To(Equal(200))
		Expect(out["scenarios"]).To(HaveLen(1))
		Expect(out["target"]).To(HaveKeyWithValue("endpoints", HaveKeyWithValue("paypal", "http://127.0.0.1:9/ipn")))
		code, out = l.call("POST", "/api/v1/scenarios/one/run", nil)
		Expect(code).To(Equal(200), "%v", out)
		Expect(out).To(HaveKeyWithValue("status", "passed"))

		emu.SetScenarioTarget(emulator.ScenarioTarget{Endpoints: map[string]string{"paypal": "http://127.0.0.1:8/a"}, ProbeURL: "http://127.0.0.1:8"})
		l.call("POST", "/api/v1/scenarios/one/run", nil)
		l.call("POST", "/api/v1/scenarios/one/run", map[string]any{"paypal_url": "http://127.0.0.1:7/b"})
		Expect(fr.targets).To(Equal([]emulator.ScenarioTarget{
			{Endpoints: map[string]string{"paypal": "http://127.0.0.1:9/ipn"}},
			{Endpoints: map[string]string{"paypal": "http://127.0.0.1:8/a"}, ProbeURL: "http://127.0.0.1:8"},
			{Endpoints: map[string]string{"paypal": "http://127.0.0.1:7/b"}},
		}))

		code, out = l.call("POST", "/api/v1/scenarios/one/run", map[string]any{"paypal_url": "http://127.0.0.1:7/b", "seed": "42", "scenario": "name: one\n"})
		Expect(code).To(Equal(200), "%v", out)
		Expect(fr.last).To(Equal(emulator.ScenarioRequest{Name: "one", YAML: "name: one\n", Seed: 42, Target: emulator.ScenarioTarget{Endpoints: map[string]string{"paypal": "http://127.0.0.1:7/b"}}}),
			"a seed replays a run; a scenario of the caller's own runs instead of the catalog's")
		fr.targets = fr.targets[:3]
		code, _ = l.call("POST", "/api/v1/scenarios/one/run", map[string]any{"paypal_url": "http://127.0.0.1:7/b", "seed": "x"})
		Expect(code).To(Equal(400))

		code, out = l.call("POST", "/api/v1/scenarios/nope/run", nil)
		Expect(code).To(Equal(404), "%v", out)
		code, out = l.call("POST", "/api/v1/scenarios/broken/run", nil)
		Expect(code).To(Equal(400), "%v", out)
		Expect(out["error"].(map[string]any)["message"]).To(Equal("scenario broken: it moves the clock"))
		code, _ = l.call("POST", "/api/v1/scenarios/one/run", map[string]any{"paypal_url": 1})
		Expect(code).To(Equal(400))
		// Endpoints by provider name, any provider's; a shorthand that
		// contradicts them is refused.
		code, _ = l.call("POST", "/api/v1/scenarios/one/run", map[string]any{"endpoints": map[string]string{"hook": "http://127.0.0.1:6/h", "paypal": "http://127.0.0.1:6/p"}})
		Expect(code).To(Equal(200))
		Expect(fr.last.Target).To(Equal(emulator.ScenarioTarget{Endpoints: map[string]string{"hook": "http://127.0.0.1:6/h", "paypal": "http://127.0.0.1:6/p"}}))
		code, out = l.call("POST", "/api/v1/scenarios/one/run", map[string]any{"endpoints": map[string]string{"paypal": "http://127.0.0.1:6/p"}, "paypal_url": "http://127.0.0.1:6/q"})
		Expect(code).To(Equal(400))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("disagree"))
		fr.targets = fr.targets[:3]

		fr.block = make(chan struct{})
		done := make(chan int)
		go func() {
			defer GinkgoRecover()
			c, _ := l.call("POST", "/api/v1/scenarios/one/run", nil)
			done <- c
		}()
		Eventually(func() int { fr.mu.Lock(); defer fr.mu.Unlock(); return len(fr.targets) }).Should(Equal(4))
		code, out = l.call("POST", "/api/v1/scenarios/one/run", nil)
		Expect(code).To(Equal(409), "%v", out)
		close(fr.block)
		Eventually(done).Should(Receive(Equal(200)))
	})
})

var _ = Describe("Scenario runs and the allowlist", func() {
	It("send nothing outside it (probe_url too: 403), follow no redirect, and quote a foreign answer only briefly", func() {
		allow, err := delivery.ParseAllowlist([]string{"127.0.0.1"})
		Expect(err).NotTo(HaveOccurred())
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 3, Allow: allow, Scenarios: catalog.Runner{}})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		DeferCleanup(func() { emu.Close(); api.Close() })
		ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		DeferCleanup(ok.Close)
		var elsewhere atomic.Int64
		other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		Expect(err).NotTo(HaveOccurred())
		other.Listener = ln
		other.Start()
		DeferCleanup(other.Close)
		l := &lab{emu: emu, api: api}

		code, out := l.call("POST", "/api/v1/scenarios/paypal-credit-once/run", map[string]any{"paypal_url": ok.URL, "probe_url": other.URL})
		Expect(code).To(Equal(403), "%v", out)
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring("allowlist"))

		// A probe on an allowed address that redirects elsewhere, then one
		// that answers a megabyte of error page.
		redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/probe/v1/idle", http.StatusFound))
		DeferCleanup(redirect.Close)
		huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(500)
			_, _ = w.Write(bytes.Repeat([]byte("<html>secret internal page "), 40000))
		}))
		DeferCleanup(huge.Close)
		for _, probe := range []string{redirect.URL, huge.URL} {
			code, out = l.call("POST", "/api/v1/scenarios/paypal-credit-once/run", map[string]any{"paypal_url": ok.URL, "probe_url": probe})
			Expect(code).To(Equal(200))
			raw, _ := json.Marshal(out)
			Expect(len(raw)).To(BeNumerically("<", 8000), "the answer relays the probe's body")
			Expect(out["status"]).To(Equal("error"), "%v", out)
		}
		Expect(elsewhere.Load()).To(BeZero(), "a request reached an address outside the allowlist")

		// A scenario of the caller's own runs under the name it bears.
		code, out = l.call("POST", "/api/v1/scenarios/mine/run", map[string]any{"paypal_url": ok.URL,
			"scenario": "name: theirs\nprovider: paypal\nsteps:\n  - send: {as: pay, kind: web_accept}\n"})
		Expect(code).To(Equal(400), "%v", out)
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(`the scenario given is named "theirs", the request "mine"`))
		code, out = l.call("POST", "/api/v1/scenarios/mine/run", map[string]any{"paypal_url": ok.URL, "seed": "9",
			"scenario": "name: mine\nprovider: paypal\nsteps:\n  - send: {as: pay, kind: web_accept}\n  - expect: {message: pay, acked: true}\n"})
		Expect(code).To(Equal(200), "%v", out)
		Expect(out).To(HaveKeyWithValue("status", "passed"))
		Expect(out).To(HaveKeyWithValue("seed", "9"))

		// Settings that name a URL outside it are refused the same way.
		for path, body := range map[string]map[string]any{
			"/api/v1/paypal/profile":                    {"notify_url": other.URL, "enabled": true},
			"/api/v1/paydo/users/acme/transfer-ipn-url": {"url": other.URL},
			"/api/v1/paydo/projects/shop/ipn-url":       {"url": other.URL},
		} {
			code, out = l.call("PUT", path, body)
			Expect(code).To(Equal(403), "%s: %v", path, out)
		}
		code, _ = l.call("PUT", "/api/v1/paypal/profile", map[string]any{"notify_url": "ftp://x/", "enabled": true})
		Expect(code).To(Equal(400))
	})
})
