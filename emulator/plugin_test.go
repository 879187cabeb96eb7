package emulator_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/emulator/metrics"
	"github.com/ipnlab/ipnlab/scenarios"
)

// hook is a third provider that exists only here, to prove the seam: a
// JSON webhook with no postback, retried every minute three times. It
// uses nothing of the emulator but its exported API.
type hook struct {
	host emulator.Host
	mu   sync.Mutex
	seq  int
	kept map[string]string // message id -> event, what it journals itself
	// retry is how long after a failed attempt it retries (default a
	// minute); signOnce signs each message once, when it is submitted.
	retry    time.Duration
	signOnce bool
	// events is a figure of its own on /metrics.
	events *prometheus.CounterVec
}

// signedHook is hook signing each attempt as it leaves, as PayPal's REST
// webhooks and Stripe do: a timestamp and an HMAC over it and the body.
type signedHook struct{ *hook }

const hookSecret = "whsec_test"

func hookSignature(at time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(hookSecret))
	fmt.Fprintf(mac, "%d.%s", at.Unix(), body)
	return fmt.Sprintf("t=%d,v1=%x", at.Unix(), mac.Sum(nil))
}

func (h signedHook) Stamp(m delivery.Message, a delivery.Attempt, header http.Header, body []byte) (http.Header, []byte, error) {
	header.Set("Hook-Signature", hookSignature(a.Start, body))
	return header, body, nil
}

// signatureListener accepts a message whose Hook-Signature is valid and
// at most five minutes old on clk, and answers 500 to the first.
type signatureListener struct {
	clk     clock.Clock
	mu      sync.Mutex
	answers []int
}

func (l *signatureListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ts int64
	var sig string
	_, err := fmt.Sscanf(r.Header.Get("Hook-Signature"), "t=%d,v1=%s", &ts, &sig)
	at := time.Unix(ts, 0)
	code := http.StatusOK
	switch {
	case err != nil || r.Header.Get("Hook-Signature") != hookSignature(at, body):
		code = http.StatusBadRequest
	case l.clk.Now().Sub(at) > 5*time.Minute:
		code = http.StatusUnauthorized // a replay, or a stale retry
	}
	l.mu.Lock()
	if len(l.answers) == 0 && code == http.StatusOK {
		code = http.StatusInternalServerError
	}
	l.answers = append(l.answers, code)
	l.mu.Unlock()
	w.WriteHeader(code)
}

func (l *signatureListener) got() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.answers...)
}

// confirmedHook is a hook whose listeners confirm every message with it
// (as PayPal's post theirs back): an emulator.Confirmer.
type confirmedHook struct {
	*hook
	mu sync.Mutex
	n  map[string]int
}

func (c *confirmedHook) Confirmations(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

// confirmingListener acknowledges a hook message and confirms it with c.
func (c *confirmedHook) confirmingListener() http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var m struct{ ID string }
		_ = json.NewDecoder(r.Body).Decode(&m)
		c.mu.Lock()
		c.n[m.ID]++
		c.mu.Unlock()
	})
}

// plannerHook is a hook that plans sends for later (Host.Schedule): an
// emulator.Scheduler, whose payload is the event to send.
type plannerHook struct{ *hook }

type hookPlan struct {
	Event     string `json:"event"`
	NotifyURL string `json:"notify_url"`
}

func (p plannerHook) plan(at time.Time, event, url string) error {
	payload, err := json.Marshal(hookPlan{event, url})
	if err != nil {
		return err
	}
	return p.host.Schedule(emulator.Planned{Provider: p.Name(), At: at, Label: "hook " + event, Payload: payload})
}

func (p plannerHook) SendScheduled(payload json.RawMessage) error {
	var plan hookPlan
	if err := json.Unmarshal(payload, &plan); err != nil {
		return err
	}
	_, err := p.Notify(emulator.Notify{Kind: plan.Event, NotifyURL: plan.NotifyURL})
	return err
}

const hookKind = "hook.message"

func (h *hook) Name() string { return "hook" }

func (h *hook) start(host emulator.Host) error {
	h.host, h.kept = host, map[string]string{}
	h.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ipnlab_hook_events_total", Help: "Hook events sent, by event."}, []string{"event"})
	return host.Metrics.Register(h.events)
}

// plug is the factory that registers p (a hook, or a hook under another
// guise), started on the emulator's host.
func plug(p emulator.Provider, h *hook) emulator.Factory {
	return func(host emulator.Host) (emulator.Provider, error) {
		if err := h.start(host); err != nil {
			return nil, err
		}
		return p, nil
	}
}

func (h *hook) Routes() []emulator.Route {
	return []emulator.Route{{Method: "POST", Pattern: "/api/v1/hook/notifications", Handler: emulator.APIHandler(h.post)}}
}

// OpenAPI is its part of the control API's document, checked by the
// contract spec like the built-ins' (contract_test.go).
func (h *hook) OpenAPI() []byte {
	return []byte(`
paths:
  /api/v1/hook/notifications:
    post:
      summary: Send a hook event.
      requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/HookEvent"}}}}
      responses:
        "201": {description: the message, content: {application/json: {schema: {$ref: "#/components/schemas/Message"}}}}
        "400": {$ref: "#/components/responses/Error"}
components:
  schemas:
    HookEvent:
      type: object
      required: [event]
      additionalProperties: false
      properties:
        event: {type: string}
        notify_url: {type: string}
`)
}

func (h *hook) post(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Event     string `json:"event"`
		NotifyURL string `json:"notify_url"`
	}
	if err := emulator.ReadJSON(w, r, &req); err != nil {
		return err
	}
	views, err := h.Notify(emulator.Notify{Kind: req.Event, NotifyURL: req.NotifyURL})
	if err != nil {
		return err
	}
	emulator.WriteJSON(w, http.StatusCreated, views[0])
	return nil
}

func (h *hook) Notify(n emulator.Notify) ([]emulator.MessageView, error) {
	if n.Kind == "" {
		return nil, emulator.BadRequest("event is required")
	}
	h.mu.Lock()
	h.seq++
	id := fmt.Sprintf("HOOK%04d", h.seq)
	h.mu.Unlock()
	body, err := json.Marshal(map[string]any{"id": id, "event": n.Kind, "data": n.Set})
	if err != nil {
		return nil, err
	}
	header := http.Header{"Content-Type": {"application/json"}}
	if h.signOnce {
		header.Set("Hook-Signature", hookSignature(h.host.Clock.Now(), body))
	}
	retry := cmp.Or(h.retry, time.Minute)
	_, err = h.host.Engine.Submit(delivery.Submission{
		ID: id, Provider: h.Name(), Kind: n.Kind, URL: n.NotifyURL, Body: body,
		Header:   header,
		Schedule: delivery.Backoff{Initial: retry, Factor: 1, Max: retry, MaxRetries: 3},
		Ack:      delivery.Any2xx,
		Records:  []journal.Entry{{Kind: hookKind, Key: id, Value: []byte(n.Kind)}},
	})
	if err != nil {
		return nil, emulator.BadRequest("hook %s: %v", id, err)
	}
	h.events.WithLabelValues(n.Kind).Inc()
	h.mu.Lock()
	h.kept[id] = n.Kind
	h.mu.Unlock()
	v, _ := h.host.View(id)
	return []emulator.MessageView{v}, nil
}

func (h *hook) Restore() (emulator.RestoredCounts, error) {
	n := 0
	err := h.host.Journal.Scan(hookKind, func(id string, value []byte) error {
		h.kept[id] = string(value)
		n++
		return nil
	})
	h.seq = n
	return emulator.RestoredCounts{"messages": n}, err
}

func (h *hook) ClientFor(string) (*http.Client, error) { return nil, nil }

func (h *hook) Describe(id string, v *emulator.MessageView) {
	body, _ := h.host.Engine.Body(id)
	v.Body, v.Charset = string(body), "UTF-8"
	h.mu.Lock()
	event := h.kept[id]
	h.mu.Unlock()
	v.Details = append(v.Details, emulator.Detail{Label: "Event", Value: event}, emulator.Detail{Label: "Signature", Value: h.signature()})
}

// ExpectOwn judges the hook's own expectations in scenarios: the event a
// message carries.
func (h *hook) ExpectOwn(id string, want map[string]string) ([]string, error) {
	h.mu.Lock()
	event := h.kept[id]
	h.mu.Unlock()
	for name, value := range want {
		switch name {
		case "event":
			if event != value {
				return []string{"the hook sent " + id + " as " + event}, fmt.Errorf("its event is %s, want %s", event, value)
			}
		default:
			return nil, fmt.Errorf("%w %q: the hook judges event", scenarios.ErrUnknownExpectation, name)
		}
	}
	return nil, nil
}

// signature says how it signs its messages.
func (h *hook) signature() string {
	if h.signOnce {
		return "Hook-Signature, made once at submission"
	}
	return "none"
}

func (h *hook) Resend(id string, req emulator.ResendRequest) error {
	_, err := h.host.Engine.Resend(id, req.URL)
	return err
}

func (h *hook) Forget(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.kept, id)
	}
}

// hookListener answers with the statuses of its script (the last one
// repeats) and keeps the bodies.
type hookListener struct {
	mu     sync.Mutex
	script []int
	bodies []string
}

func (l *hookListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.bodies = append(l.bodies, string(b))
	code := l.script[min(len(l.bodies), len(l.script))-1]
	l.mu.Unlock()
	w.WriteHeader(code)
}

func (l *hookListener) received() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bodies...)
}

var _ = Describe("A plug-in provider", func() {
	var (
		clk  *clock.Manual
		path string
		lst  *hookListener
		lsrv *httptest.Server
	)
	BeforeEach(func() {
		clk = clock.NewManual(t0)
		path = filepath.Join(GinkgoT().TempDir(), "journal.db")
		lst = &hookListener{script: []int{500, 200}}
		lsrv = httptest.NewServer(lst)
		DeferCleanup(lsrv.Close)
	})
	start := func() (*emulator.Emulator, *httptest.Server, *hook, func()) {
		j, err := sqlitejournal.Open(path)
		Expect(err).NotTo(HaveOccurred())
		h := &hook{}
		emu, err := emulator.New(emulator.Config{Clock: clk, Seed: 7, Journal: j, Providers: []emulator.Factory{plug(h, h)}})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		return emu, api, h, func() {
			api.Close()
			Expect(emu.Shutdown(context.Background())).To(Succeed())
			Expect(j.Close()).To(Succeed())
		}
	}
	call := func(api *httptest.Server, method, path string, body any, out any) int {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, api.URL+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		if out != nil {
			Expect(json.NewDecoder(resp.Body).Decode(out)).To(Succeed())
		}
		return resp.StatusCode
	}

	It("is sent through its own route, retried on its schedule, listed in History, resent by hand, and known again after a restart", func() {
		emu, api, _, stop := start()
		var sent emulator.MessageView
		Expect(call(api, "POST", "/api/v1/hook/notifications", map[string]any{"event": "order.paid", "notify_url": lsrv.URL}, &sent)).To(Equal(http.StatusCreated))
		emu.WaitIdle()
		Expect(sent.Provider).To(Equal("hook"))
		Expect(lst.received()).To(HaveLen(1)) // a 500: retried in a minute
		Expect(emu.Advance(time.Minute)).To(Succeed())
		Expect(lst.received()).To(HaveLen(2))
		Expect(lst.received()[1]).To(MatchJSON(`{"id":"` + sent.ID + `","event":"order.paid","data":null}`))

		var list struct{ Messages []emulator.Summary }
		Expect(call(api, "GET", "/api/v1/messages?provider=hook", nil, &list)).To(Equal(http.StatusOK))
		Expect(list.Messages).To(ConsistOf(HaveField("ID", sent.ID)))
		Expect(list.Messages[0].Status).To(Equal("Sent"))

		var resent emulator.MessageView
		Expect(call(api, "POST", "/api/v1/messages/"+sent.ID+"/resend", nil, &resent)).To(Equal(http.StatusAccepted))
		Expect(lst.received()).To(HaveLen(3))
		Expect(resent.Attempts).To(HaveLen(3))
		Expect(emu.Routes()).To(ContainElement("POST /api/v1/hook/notifications"))
		var providers struct{ Providers []emulator.ProviderInfo }
		Expect(call(api, "GET", "/api/v1/providers", nil, &providers)).To(Equal(http.StatusOK))
		Expect(providers.Providers).To(HaveExactElements(
			And(HaveField("Name", "paypal"), HaveField("Title", "PayPal"), HaveField("Sends", true), HaveField("Kinds", ContainElement(HaveField("Name", "web_accept")))),
			And(HaveField("Name", "paydo"), HaveField("Title", "PayDo"), HaveField("Sends", true), HaveField("Kinds", ConsistOf(HaveField("Name", "transfer"), HaveField("Name", "checkout")))),
			emulator.ProviderInfo{Name: "hook", Title: "hook", Sends: true}))
		// Its messages and attempts are counted by provider, and its own
		// figure is served with the account's label, as the built-ins' are.
		_, figures := scrape(api.URL, "")
		Expect(figures.Sum("ipnlab_messages_total", "provider", "hook")).To(Equal(1.0))
		Expect(figures.Sum("ipnlab_deliveries_total", "provider", "hook")).To(Equal(3.0))
		Expect(figures["ipnlab_hook_events_total"]).To(ConsistOf(metrics.Sample{Labels: map[string]string{"account": "default", "event": "order.paid"}, Value: 1}))
		stop()

		emu, api, h, stop := start()
		defer stop()
		Expect(emu.Restored().Providers).To(HaveKeyWithValue("hook", emulator.RestoredCounts{"messages": 1}), "counted by provider, like the built-ins")
		var detail emulator.MessageView
		Expect(call(api, "GET", "/api/v1/messages/"+sent.ID, nil, &detail)).To(Equal(http.StatusOK))
		Expect(detail.Details).To(Equal([]emulator.Detail{{Label: "Event", Value: "order.paid"}, {Label: "Signature", Value: "none"}}), "its own facts, after a restart too")
		Expect(h.kept).To(HaveKeyWithValue(sent.ID, "order.paid"))
		var got emulator.MessageView
		Expect(call(api, "GET", "/api/v1/messages/"+sent.ID, nil, &got)).To(Equal(http.StatusOK))
		Expect(got.Body).To(MatchJSON(lst.received()[0]))
		Expect(got.Attempts).To(HaveLen(3))
	})

	It("is asked for messages through the route every provider that sends shares, as the built-ins are", func() {
		emu, api, _, stop := start()
		defer stop()
		type sent struct{ Messages []emulator.MessageView }
		var out sent
		Expect(call(api, "POST", "/api/v1/providers/hook/messages", map[string]any{"kind": "order.paid", "set": map[string]any{"total": 12}, "notify_url": lsrv.URL}, &out)).
			To(Equal(http.StatusCreated))
		Expect(out.Messages).To(HaveLen(1))
		Expect(out.Messages[0].Provider).To(Equal("hook"))
		Expect(out.Messages[0].Attempts).To(HaveLen(1), "answered once the first attempt was made")
		Expect(lst.received()[0]).To(MatchJSON(`{"id":"` + out.Messages[0].ID + `","event":"order.paid","data":{"total":12}}`))

		ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer ok.Close()
		out = sent{}
		Expect(call(api, "POST", "/api/v1/providers/paypal/messages", map[string]any{"kind": "web_accept", "set": map[string]any{"memo": "gift"}, "notify_url": ok.URL, "copies": 2}, &out)).
			To(Equal(http.StatusCreated))
		Expect(out.Messages).To(HaveLen(2), "each copy")
		Expect(out.Messages[0].Body).To(ContainSubstring("memo=gift"))
		Expect(out.Messages[1].Body).To(Equal(out.Messages[0].Body))
		out = sent{}
		Expect(call(api, "POST", "/api/v1/providers/paydo/messages", map[string]any{"kind": "transfer", "notify_url": ok.URL}, &out)).To(Equal(http.StatusCreated))
		Expect(out.Messages).To(ConsistOf(And(HaveField("Summary.Provider", "paydo"), HaveField("Summary.Kind", "transfer"))))
		Expect(emu.Engine().List(nil)).To(HaveLen(4))

		var failed struct{ Error struct{ Message string } }
		Expect(call(api, "POST", "/api/v1/providers/acme/messages", map[string]any{"kind": "x"}, &failed)).To(Equal(http.StatusNotFound))
		Expect(failed.Error.Message).To(Equal(`provider "acme": not registered (this emulator runs paypal, paydo, hook)`))
		Expect(call(api, "POST", "/api/v1/providers/paydo/messages", map[string]any{"kind": "refund"}, &failed)).To(Equal(http.StatusBadRequest))
		Expect(failed.Error.Message).To(Equal(`kind "refund": paydo sends transfer, checkout`))
		Expect(call(api, "POST", "/api/v1/providers/paypal/messages", map[string]any{"kind": "web_accept", "set": map[string]any{"mc_gross": 9.5}}, &failed)).To(Equal(http.StatusBadRequest))
		Expect(failed.Error.Message).To(Equal("set.mc_gross: PayPal's fields are text, not float64"))
		Expect(call(api, "POST", "/api/v1/providers/paydo/messages", map[string]any{"notify_url": ok.URL}, &failed)).To(Equal(http.StatusBadRequest))
		Expect(failed.Error.Message).To(Equal(`kind is required: paydo sends transfer, checkout`))
		Expect(call(api, "POST", "/api/v1/providers/hook/messages", map[string]any{"kind": "order.paid", "copies": 1001}, &failed)).To(Equal(http.StatusBadRequest))
		Expect(emu.Engine().List(nil)).To(HaveLen(4), "nothing sent by a refused request")
	})

	It("signs each attempt as it leaves: a retry an hour later carries a fresh signature, which a listener bounding its age to five minutes takes", func() {
		sign := func(p emulator.Provider, h *hook) (*emulator.Emulator, *signatureListener) {
			emu, err := emulator.New(emulator.Config{Clock: clk, Seed: 7, Providers: []emulator.Factory{plug(p, h)}})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
			l := &signatureListener{clk: clk}
			srv := httptest.NewServer(l)
			DeferCleanup(srv.Close)
			views, err := p.(emulator.Sender).Notify(emulator.Notify{Kind: "order.paid", NotifyURL: srv.URL})
			Expect(err).NotTo(HaveOccurred())
			emu.WaitIdle()
			Expect(l.got()).To(Equal([]int{500}))
			Expect(emu.Advance(time.Hour)).To(Succeed())
			Expect(emu.Advance(time.Second)).To(Succeed()) // past the retry, whichever way the clock counts it
			m, _ := emu.Engine().Get(views[0].ID)
			Expect(m.Attempts).To(HaveLen(2))
			return emu, l
		}
		signing := &hook{retry: time.Hour}
		_, signed := sign(signedHook{signing}, signing)
		Expect(signed.got()).To(Equal([]int{500, 200}), "the retry was signed anew")

		// Signed once, when submitted: the retry carries an hour-old
		// signature, and the listener refuses it.
		stale := &hook{retry: time.Hour, signOnce: true}
		_, once := sign(stale, stale)
		Expect(once.got()).To(Equal([]int{500, http.StatusUnauthorized}))
	})

	It("owes a confirmation when it is a Confirmer: a run that fails says whether its listener ever confirmed", func() {
		h := &hook{}
		c := &confirmedHook{hook: h, n: map[string]int{}}
		emu, err := emulator.New(emulator.Config{Clock: clk, Seed: 7, Providers: []emulator.Factory{plug(c, h)}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		sc, err := scenarios.ParseFor("confirm.yaml", []byte(`
name: hook refunded
provider: hook
steps:
  - send: {kind: order.paid, as: first}
  - expect: {message: first, own: {event: order.refunded}}
`), []string{"hook"})
		Expect(err).NotTo(HaveOccurred())
		silent := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(silent.Close)
		res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu, Targets: map[string]string{"hook": silent.URL}}, sc)
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.NeverPostedBack).To(BeTrue(), "acknowledged, never confirmed")

		confirming := httptest.NewServer(c.confirmingListener())
		DeferCleanup(confirming.Close)
		res = scenarios.Run(context.Background(), scenarios.Env{Emulator: emu, Targets: map[string]string{"hook": confirming.URL}}, sc)
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.NeverPostedBack).To(BeFalse(), "confirmed, and failed on something else")
	})

	It("plans a send for later through its host: journaled, armed on the clock, and sent at its time by the provider made after a restart", func() {
		startPlanner := func() (*emulator.Emulator, plannerHook, func()) {
			j, err := sqlitejournal.Open(path)
			Expect(err).NotTo(HaveOccurred())
			h := &hook{}
			p := plannerHook{h}
			emu, err := emulator.New(emulator.Config{Clock: clk, Seed: 7, Journal: j, Providers: []emulator.Factory{plug(p, h)}})
			Expect(err).NotTo(HaveOccurred())
			return emu, p, func() {
				Expect(emu.Shutdown(context.Background())).To(Succeed())
				Expect(j.Close()).To(Succeed())
			}
		}
		lst.script = []int{200}
		_, p, stop := startPlanner()
		Expect(p.plan(t0.Add(time.Hour), "order.shipped", lsrv.URL)).To(Succeed())
		Expect(clk.Pending()).To(BeNumerically(">=", 1))
		stop()

		emu, _, stop := startPlanner()
		defer stop()
		Expect(emu.Restored().Scheduled).To(Equal(1))
		Expect(lst.received()).To(BeEmpty())
		Expect(emu.Advance(time.Hour)).To(Succeed())
		Expect(lst.received()).To(ConsistOf(ContainSubstring(`"event":"order.shipped"`)))

		// A plan for a provider that is not there, or cannot send it, is refused.
		h := &hook{}
		other, err := emulator.New(emulator.Config{Clock: clk, Providers: []emulator.Factory{plug(h, h)}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = other.Shutdown(context.Background()) })
		Expect(h.host.Schedule(emulator.Planned{Provider: "hook", At: t0, Label: "x"})).To(MatchError(ContainSubstring("provider hook cannot send what it planned (it is no emulator.Scheduler)")))
		Expect(h.host.Schedule(emulator.Planned{Provider: "acme", At: t0, Label: "x"})).To(MatchError(ContainSubstring(`provider "acme": not registered`)))
	})

	It("runs in a scenario, its send step checked against what a plug-in takes", func() {
		emu, _, _, stop := start()
		defer stop()
		sc, err := scenarios.ParseFor("hook.yaml", []byte(`
name: hook retried
provider: hook
steps:
  - send: {kind: order.paid, set: {order: "A-1"}, as: first}
  - expect: {message: first, acked: false, ack_status: 500, history: Retrying}
  - advance: {by: 1m}
  - expect: {message: first, acked: true, history: Sent, own: {event: order.paid}}
`), []string{"hook"})
		Expect(err).NotTo(HaveOccurred())
		res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu, Targets: map[string]string{"hook": lsrv.URL}}, sc)
		Expect(res.Status).To(Equal(scenarios.Passed), "%+v", res)
		Expect(lst.received()[0]).To(ContainSubstring(`"order":"A-1"`))

		// Its own expectations are judged by it: a failure with its
		// evidence, and a name it does not know is the scenario's error.
		for own, want := range map[string]struct {
			status scenarios.Status
			msg    string
		}{
			"{event: order.refunded}": {scenarios.Failed, "message first: its event is order.paid, want order.refunded"},
			"{colour: blue}":          {scenarios.Error, `own: unknown expectation "colour": the hook judges event`},
		} {
			sc, err := scenarios.ParseFor("own.yaml", []byte("name: own\nprovider: hook\nsteps:\n  - send: {kind: order.paid, as: first}\n  - expect: {message: first, own: "+own+"}\n"), []string{"hook"})
			Expect(err).NotTo(HaveOccurred())
			res := scenarios.Run(context.Background(), scenarios.Env{Emulator: emu, Targets: map[string]string{"hook": lsrv.URL}}, sc)
			Expect(res.Status).To(Equal(want.status), own)
			Expect(res.Message).To(ContainSubstring(want.msg), own)
			Expect(res.NeverPostedBack).To(BeFalse(), "a plug-in's messages have no postback to miss: only PayPal's do")
		}

		_, err = scenarios.ParseFor("bad.yaml", []byte(`
name: bad
provider: hook
steps:
  - send: {kind: order.paid, charset: windows-1252}
`), []string{"hook"})
		Expect(err).To(MatchError(ContainSubstring("provider hook takes kind, set, copies, seed and as")))
		_, err = scenarios.Parse("unknown.yaml", []byte("name: x\nprovider: hook\nsteps:\n  - advance: {by: 1m}\n"))
		Expect(err).To(MatchError(ContainSubstring(`provider "hook"`)))
	})

	It("is refused with its reason when its name or a route is taken", func() {
		for _, p := range []emulator.Provider{&named{hook{}, "paypal"}, &named{hook{}, "Bad Name"}, &routed{hook{}, "GET /api/v1/messages"}, &routed{hook{}, "POST /elsewhere"},
			// The same route as the emulator's under other names, and a pattern ServeMux refuses.
			&routed{hook{}, "GET /api/v1/messages/{message}"}, &routed{hook{}, "GET /api/v1/{bad"}} {
			_, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Providers: []emulator.Factory{plug(p, &hook{})}})
			Expect(err).To(MatchError(emulator.ErrProvider), "%T %s", p, p.Name())
		}
		_, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Providers: []emulator.Factory{nil}})
		Expect(err).To(MatchError(emulator.ErrProvider))
		_, err = emulator.New(emulator.Config{Clock: clock.NewManual(t0), Providers: []emulator.Factory{
			func(emulator.Host) (emulator.Provider, error) { return nil, errors.New("no secret configured") }}})
		Expect(err).To(MatchError(ContainSubstring("no secret configured")))
	})
})

// named is a hook under another name; routed is one with another route.
type named struct {
	hook
	name string
}

func (n *named) Name() string { return n.name }

type routed struct {
	hook
	route string
}

func (r *routed) Name() string { return "routed" }

func (r *routed) Routes() []emulator.Route {
	var method, pattern string
	_, _ = fmt.Sscan(r.route, &method, &pattern)
	return []emulator.Route{{Method: method, Pattern: pattern, Handler: http.NotFoundHandler()}}
}
