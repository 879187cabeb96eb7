package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// screenshots is where each page's picture goes (build/, not committed).
var screenshots = filepath.Join("..", "..", "build", "screenshots")

// browser starts headless Chromium with the flags this machine needs (no
// background connections: nothing but loopback is reachable).
func browser() context.Context {
	path := chromium()
	if path == "" {
		if os.Getenv("CI") == "" {
			testenv.Skip("browser specs need Chromium (.ci/run installs Debian's chromium); set IPNLAB_CHROMIUM to its path")
		}
		Fail("no Chromium on this CI machine: .ci/run should have installed Debian's chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(GinkgoT().TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	DeferCleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it must not carry a timeout.
	Expect(chromedp.Do(ctx)).To(Succeed(), "starting Chromium")
	failOnScriptErrors(ctx)
	return ctx
}

// failOnScriptErrors fails the spec, when it ends, with every JavaScript
// exception the page threw and no code caught (a rejected promise among
// them): a script that throws halfway may leave a page that looks right
// while it has stopped doing part of its job.
func failOnScriptErrors(ctx context.Context) {
	var mu sync.Mutex
	var thrown []string
	Expect(chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			what := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				what += " " + d.Exception.Description
			}
			mu.Lock()
			thrown = append(thrown, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, what))
			mu.Unlock()
		}
	})).To(Succeed())
	DeferCleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		Expect(thrown).To(BeEmpty(), "JavaScript exceptions in the console")
	})
}

// tab opens another tab of the same browser.
func tab(b context.Context) context.Context {
	ctx, cancel := chromedp.NewContext(b)
	DeferCleanup(cancel)
	// The first run opens the tab, which lives as long as that run's
	// context: no timeout here either.
	Expect(chromedp.Do(ctx)).To(Succeed(), "opening a tab")
	failOnScriptErrors(ctx)
	return ctx
}

// do runs browser steps, each batch bounded.
func do(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	Expect(chromedp.Do(c, steps...)).To(Succeed())
}

// js evaluates an expression in the page.
func js[T any](ctx context.Context, expr string) T {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	Expect(err).NotTo(HaveOccurred(), expr)
	return out
}

// text is the text of the first node matching sel ("" if none), without
// waiting for it.
func text(ctx context.Context, sel string) func() string {
	return func() string {
		return js[string](ctx, fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").trim()`, sel))
	}
}

func count(ctx context.Context, sel string) func() int {
	return func() int { return js[int](ctx, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)) }
}

// pick chooses an option of a select as a user would (change event).
func pick(sel, value string) chromedp.Action[chromedp.Void] { return setValue(sel, value, "change") }

// fill replaces an input's text (as select-all and type would).
func fill(sel, value string) chromedp.Action[chromedp.Void] { return setValue(sel, value, "input") }

func setValue(sel, value, event string) chromedp.Action[chromedp.Void] {
	set := chromedp.Evaluate[string](fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q;
		s.dispatchEvent(new Event(%q, {bubbles: true})); return s.value; })()`, sel, value, event))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		got, err := set(ctx, t)
		if err == nil && got != value {
			err = fmt.Errorf("%s has no option %q", sel, value)
		}
		return err
	})
}

// simField is the value of a field in the Simulator's editor.
func simField(ctx context.Context, name string) string {
	GinkgoHelper()
	return js[string](ctx, fmt.Sprintf(`[...document.querySelectorAll("#sim-fields tbody tr")]
		.find(r => r.querySelector(".field-name").value === %q)?.querySelector(".field-value").value ?? ""`, name))
}

func open(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Navigate(url), chromedp.WaitVisible(`body[data-ready="true"]`))
}

func screenshot(ctx context.Context, name string) {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	Expect(err).NotTo(HaveOccurred())
	Expect(os.MkdirAll(screenshots, 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(screenshots, name+".png"), png, 0o644)).To(Succeed())
	AddReportEntry("screenshot", filepath.Join(screenshots, name+".png"))
}

// mangler acks every IPN and posts it back with mc_gross changed, as a
// listener that re-formats amounts would: PayPal answers INVALID.
func mangler(verifyURL string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		changed := regexp.MustCompile(`mc_gross=[^&]*`).ReplaceAll(body, []byte("mc_gross=0.01"))
		resp, err := http.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), changed...)))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		w.WriteHeader(http.StatusOK)
	}))
	DeferCleanup(srv.Close)
	return srv
}

// reencoder acks every IPN and posts it back re-encoded from its charset
// to UTF-8, as a listener that decodes and re-encodes does: INVALID.
func reencoder(verifyURL string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f, err := form.Parse(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cs, err := form.LookupCharset(f.Value("charset"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := form.Form{}
		for _, fd := range f {
			out = append(out, form.Field{Name: fd.Name, Value: cs.Decode(fd.Value)})
		}
		resp, err := http.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), out.Encode()...)))
		if err == nil {
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Fprintf(GinkgoWriter, "reencoder: posted back as UTF-8, answered %s\n", answer)
		}
		w.WriteHeader(http.StatusOK)
	}))
	DeferCleanup(srv.Close)
	return srv
}

// flaky answers 500 to its first request and 200 after.
func flaky() *httptest.Server {
	var mu sync.Mutex
	seen := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		mu.Lock()
		seen++
		first := seen == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	DeferCleanup(srv.Close)
	return srv
}

// lab is the emulator on a manual clock with the reference listener wired
// to it, as `ipnlab lab --clock manual` runs them.
func lab(token string) (*emulator.Server, string) {
	emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0), Seed: 42, APIToken: token,
		Scenarios: catalog.Runner{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
	l, err := listener.New(listener.Config{
		VerifyURL:      emu.VerifyURL(),
		ReceiverEmails: []string{emulator.DefaultReceiverEmail}, ReceiverIDs: []string{emulator.DefaultReceiverID},
		UnknownPayers: "create", DB: filepath.Join(GinkgoT().TempDir(), "ref.db"),
		// Quick verification retries, so the outage scenarios take
		// a second, not minutes.
		Verify: listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20, Timeout: 10 * time.Second},
		PayDo:  listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(l.Start(context.Background())).To(Succeed())
	ref := httptest.NewServer(l.Handler())
	DeferCleanup(func() { ref.Close(); l.Close() })
	Expect(emu.PayPal().SetProfile(paypal.Profile{NotifyURL: ref.URL + "/ipn/paypal", Enabled: true,
		ReceiverEmail: emulator.DefaultReceiverEmail, ReceiverID: emulator.DefaultReceiverID})).To(Succeed())
	Expect(emu.PayDo().RegisterCheckoutURL("default", ref.URL+"/ipn/paydo")).To(Succeed())
	Expect(emu.PayDo().RegisterTransferURL("default", ref.URL+"/ipn/paydo")).To(Succeed())
	emu.SetScenarioTarget(emulator.ScenarioTarget{Endpoints: map[string]string{"paypal": ref.URL + "/ipn/paypal", "paydo": ref.URL + "/ipn/paydo"}, ProbeURL: ref.URL})
	return emu, ref.URL
}

var _ = Describe("The web console", Ordered, func() {
	var (
		emu     *emulator.Server
		refURL  string
		history context.Context // a tab left on IPN History
		sim     context.Context // a tab on the Simulator
	)

	BeforeAll(func() {
		emu, refURL = lab("")
		b := browser()
		history, sim = b, tab(b)
	})

	It("sends from the Simulator, and the row appears in the History tab live", func() {
		do(history, open(emu.URL()+"/#/history"))
		Expect(count(history, "#history tbody tr")()).To(Equal(0))

		do(sim, open(emu.URL()+"/#/simulator"), chromedp.WaitVisible(`#sim-fields tbody tr`))
		Expect(js[[]string](sim, `[...document.querySelectorAll("#sim-fields .field-name")].map(i => i.value)`)).
			To(ContainElements("txn_type", "mc_gross", "txn_id", "charset"))
		txn := simField(sim, "txn_id")
		Expect(js[bool](sim, `(r => r.bottom <= innerHeight && r.top >= 0)(document.querySelector("#sim button[type=submit]").getBoundingClientRect())`)).
			To(BeTrue(), "the Send button stays in reach below the fields")
		Expect(js[string](sim, `document.querySelector("link[rel=icon]").href`)).To(HavePrefix("data:image/svg+xml"), "a favicon, not a 404")
		do(sim, pick(`#sim-charset`, "UTF-8"))
		Expect(simField(sim, "charset")).To(Equal("UTF-8"), "the charset field names the encoding")
		Expect(simField(sim, "txn_id")).To(Equal(txn), "changing the charset keeps the fields")
		m := mangler(emu.VerifyURL())
		do(sim,
			chromedp.Click(`#sim-add`),
			chromedp.SendKeys(`#sim-fields tbody tr:last-child .field-name`, "custom"),
			chromedp.SendKeys(`#sim-fields tbody tr:last-child .field-value`, "from the console"),
			chromedp.SendKeys(`#sim-url`, m.URL+"/ipn"),
			chromedp.Click(`#sim button[type=submit]`))
		// The handshake, as PayPal's simulator reports it.
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: INVALID value-changed — delivered \(HTTP 200\), but the postback was INVALID value-changed: `))
		screenshot(sim, "simulator")

		// The History tab was not touched: the row comes from the event feed.
		Eventually(count(history, "#history tbody tr")).Should(Equal(1))
		row := text(history, "#history tbody tr")()
		Expect(row).To(ContainSubstring("web_accept"))
		Expect(row).To(ContainSubstring("Sent"))
		Expect(row).To(ContainSubstring("200"))
		// A green "Sent 200" no longer hides an INVALID: the row says it, and stands out.
		Eventually(text(history, "#history tbody tr td:nth-child(2)")).Should(Equal("INVALID value-changed"))
		// Still marked new after the later events redrew the rows: a
		// mark that lasted one drawing was gone on a busy machine.
		Expect(count(history, "#history tbody tr.fresh")()).To(Equal(1), "a new row is marked")
		Expect(count(history, `#history tbody tr[data-outcome="invalid"]`)()).To(Equal(1))
		Expect(js[string](history, `getComputedStyle(document.querySelector("#history tbody tr td")).borderLeftStyle`)).To(Equal("solid"))
		screenshot(history, "history")
	})

	It("opens the message from the keyboard and shows the failing postback's differing field", func() {
		do(history, chromedp.Focus(`#history tbody a`), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`#view-message`))
		// The page starts with the reason, and links down to the field.
		Eventually(text(history, "#message-outcome")).Should(MatchRegexp(`^INVALID value-changed: delivered \(HTTP 200\), but the postback was INVALID value-changed: .* see field mc_gross$`))
		Expect(js[bool](history, `document.querySelector("#message-outcome").getBoundingClientRect().top < document.querySelector("#message-fields").getBoundingClientRect().top`)).To(BeTrue())
		Expect(js[bool](history, `document.activeElement.id === "message-title"`)).To(BeTrue(), "focus moves to the opened message")
		Expect(js[string](history, `getComputedStyle(document.querySelector("#message-title")).outlineStyle`)).To(Equal("none"), "no focus box around the title")
		do(history, chromedp.Click(`#message-outcome a`))
		Eventually(func() bool {
			return js[bool](history, `(r => r.top >= 0 && r.bottom <= innerHeight)(document.querySelector("#field-mc_gross").getBoundingClientRect())`)
		}).Should(BeTrue(), "the link scrolls to the differing field")
		Eventually(text(history, ".postback h4")).Should(HavePrefix("INVALID"))
		Expect(text(history, ".postback tr.diff th")()).To(Equal("mc_gross"))
		Expect(text(history, ".postback tr.diff td mark")()).To(Equal("0.01"))
		Expect(text(history, ".postback .finding.error")()).To(ContainSubstring("mc_gross"))
		Expect(text(history, "#message-summary")()).To(ContainSubstring("UTF-8"))
		Expect(js[[]string](history, `[...document.querySelectorAll("#message-fields tbody tr")].map(r => r.cells[0].textContent + "=" + r.cells[1].textContent)`)).
			To(ContainElement("custom=from the console"))
		screenshot(history, "message")
	})

	It("resends the message to its URL and to another", func() {
		Expect(count(history, "#message-attempts tbody tr")()).To(Equal(1))
		do(history, chromedp.Click(`#resend-one`))
		Eventually(count(history, "#message-attempts tbody tr")).Should(Equal(2))
		do(history,
			chromedp.SendKeys(`#resend-to input[name=url]`, refURL+"/ipn/paypal"),
			chromedp.Click(`#resend-to button[type=submit]`))
		Eventually(text(history, "#message-attempts tbody tr:last-child td:nth-child(5)")).Should(Equal(refURL + "/ipn/paypal"))
		Eventually(text(history, ".postback:last-of-type h4")).Should(HavePrefix("VERIFIED"))
		Expect(text(history, "#message-attempts tbody tr:last-child td:nth-child(2)")()).To(Equal("manual"))
	})

	It("advances the clock, and History follows the retry", func() {
		f := flaky()
		before := simField(sim, "txn_id")
		do(sim, chromedp.Click(`#sim-generate`))
		Eventually(func() string { return simField(sim, "txn_id") }).ShouldNot(Equal(before), "new values, a new transaction")
		do(sim, fill(`#sim-url`, f.URL+"/ipn"), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(ContainSubstring("not acknowledged — not acknowledged: HTTP 500 (attempt 1; next"))
		do(history, open(emu.URL()+"/#/history"))
		Eventually(text(history, "#history tbody tr:first-child td:nth-child(7)")).Should(Equal("Retrying"))
		Expect(text(history, "#clock-now")()).To(Equal("2026-11-20 12:00:00 UTC"))

		do(history, chromedp.Click(`button[data-advance="1m"]`))
		Eventually(text(history, "#clock-now")).Should(Equal("2026-11-20 12:01:00 UTC"))
		Eventually(text(history, "#history tbody tr:first-child td:nth-child(7)")).Should(Equal("Sent"))
		Expect(text(history, "#history tbody tr:first-child td:nth-child(9)")()).To(Equal("2"))

		do(history, chromedp.SendKeys(`#advance-by`, "2h"), chromedp.Click(`#clock-controls button[type=submit]`))
		Eventually(text(history, "#clock-now")).Should(Equal("2026-11-20 14:01:00 UTC"))
		do(history, chromedp.Click(`#run-idle`))
		Eventually(text(history, "#live")).Should(ContainSubstring("Ran until nothing was waiting"))
	})

	It("filters History by status and transaction id", func() {
		do(history, pick(`#filters select[name=status]`, "Sent"))
		Eventually(count(history, "#history tbody tr")).Should(Equal(2))
		txn := text(history, "#history tbody tr:first-child td:nth-child(6)")()
		do(history, chromedp.SendKeys(`#filters input[name=txn_id]`, txn))
		Eventually(count(history, "#history tbody tr")).Should(Equal(1))
		do(history, pick(`#filters select[name=provider]`, "paydo"))
		Eventually(text(history, "#history-count")).Should(Equal("0 messages"))
		do(history, chromedp.Click(`#filters button[type=reset]`))
		Eventually(count(history, "#history tbody tr")).Should(Equal(2))
	})

	It("resends every failed message since a time", func() {
		Expect(emu.Advance(4 * 24 * time.Hour)).To(Succeed())
		_, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: "http://127.0.0.1:1/closed"})
		Expect(err).NotTo(HaveOccurred())
		Expect(emu.Advance(5 * 24 * time.Hour)).To(Succeed())
		do(history, open(emu.URL()+"/#/history"))
		Eventually(text(history, "#history tbody tr:first-child td:nth-child(7)")).Should(Equal("Failed"))
		Expect(js[string](history, `document.querySelector("#resend-failed input[name=since]").value`)).
			To(MatchRegexp(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`), "24-hour UTC, as the page shows times")
		do(history, fill(`#resend-failed input[name=url]`, refURL+"/ipn/paypal"), chromedp.Click(`#resend-failed button[type=submit]`))
		Eventually(text(history, "#live")).Should(Equal("Resent 1 failed message"))
		Eventually(text(history, "#history tbody tr:first-child td:nth-child(7)")).Should(Equal("Sent"))
		Expect(text(history, "#history tbody tr:first-child .resent")()).To(Equal("resent"))
	})

	It("sends a PayDo message from the Simulator", func() {
		do(sim, chromedp.Click(`#sim input[name=provider][value=paydo]`), chromedp.WaitVisible(`#sim-body`))
		Expect(js[bool](sim, `document.querySelector("#sim-charset").offsetParent === null`)).To(BeTrue(), "PayDo has no charset to pick")
		Eventually(func() string { return js[string](sim, `document.querySelector("#sim-body").value`) }).Should(ContainSubstring(`"transaction"`))
		do(sim, fill(`#sim-url`, ""), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: delivered — delivered \(HTTP 200\)$`), func() string {
			msgs := emu.Engine().List(func(m *delivery.Message) bool { return m.Provider == "paydo" })
			return fmt.Sprintf("%+v", msgs)
		})
		// A checkout the listener also looked up says so, in every view.
		do(sim, pick(`#sim-kind`, "checkout"))
		Eventually(func() string { return js[string](sim, `document.querySelector("#sim-body").value`) }).Should(ContainSubstring(`"invoice"`))
		do(sim, chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: delivered, confirmed by lookup — delivered \(HTTP 200\), confirmed by lookup$`))
		do(history, open(emu.URL()+"/#/history"))
		Eventually(text(history, "#history tbody tr:first-child td:nth-child(2)")).Should(Equal("delivered, confirmed by lookup"))
		do(sim, pick(`#sim-kind`, "transfer"))
		Eventually(func() string { return js[string](sim, `document.querySelector("#sim-body").value`) }).ShouldNot(ContainSubstring(`"invoice"`))
		do(sim, fill(`#sim-body`, `{"transaction": `), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(HavePrefix("The JSON body does not parse"))
		do(sim, chromedp.Click(`#sim input[name=provider][value=paypal]`))
	})

	It("keeps the Simulator's line current from the events once it stops polling: a postback long after the send still shows", func() {
		var mu sync.Mutex
		var got []byte
		silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = b
			mu.Unlock()
		}))
		DeferCleanup(silent.Close)
		do(sim, open(emu.URL()+"/#/simulator"), chromedp.WaitVisible(`#sim-fields tbody tr`))
		_ = js[int](sim, `(window.followPollMs = 0)`)
		do(sim, fill(`#sim-url`, silent.URL+"/ipn"), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: no postback — delivered \(HTTP 200\), no postback yet$`))
		mu.Lock()
		body := got
		mu.Unlock()
		resp, err := http.Post(emu.VerifyURL(), "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: verified — delivered \(HTTP 200\) and verified$`))
		_ = js[int](sim, `(window.followPollMs = 30000)`)
		do(sim, fill(`#sim-url`, ""))
	})

	It("runs a lifecycle and a scenario from the catalog, against the lab's listener", func() {
		do(sim, pick(`#lifecycle-name`, "pay_refund"), chromedp.Click(`#lifecycle button[type=submit]`))
		Eventually(count(sim, "#lifecycle-result li")).Should(BeNumerically(">=", 2))
		Expect(text(sim, "#lifecycle-result li:first-child")()).To(MatchRegexp(`\(web_accept\) at .* [A-Z0-9]+$`))

		do(sim, pick(`#scenario-name`, "paypal-credit-once"), chromedp.Click(`#scenario button[type=submit]`))
		Eventually(text(sim, "#scenario-result .scenario-status")).Should(Equal("passed"), func() string { return text(sim, "#scenario-result")() })
		do(sim, pick(`#scenario-name`, "paypal-outage-503-page"), chromedp.Click(`#scenario button[type=submit]`))
		Eventually(text(sim, "#scenario-result .scenario-status"), 20*time.Second).Should(Equal("passed"), func() string { return text(sim, "#scenario-result")() })
		screenshot(sim, "simulator-catalog")
	})

	It("says in the Simulator whether the handshake was verified: verified for the reference listener, INVALID charset for a re-encoding one", func() {
		do(sim, open(emu.URL()+"/#/simulator"), chromedp.WaitVisible(`#sim-fields tbody tr`), fill(`#sim-url`, ""), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: verified — delivered \(HTTP 200\) and verified$`))
		screenshot(sim, "simulator-verified")

		r := reencoder(emu.VerifyURL())
		before := simField(sim, "verify_sign")
		do(sim, pick(`#sim-charset`, "windows-1252"), chromedp.Click(`#sim-generate`))
		Eventually(func() string { return simField(sim, "verify_sign") }).ShouldNot(Equal(before), "a new message, not a copy of the last")
		do(sim, chromedp.Click(`#sim-add`),
			chromedp.SendKeys(`#sim-fields tbody tr:last-child .field-name`, "memo"),
			chromedp.SendKeys(`#sim-fields tbody tr:last-child .field-value`, "Jörg"),
			fill(`#sim-url`, r.URL+"/ipn"), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(sim, "#sim-result")).Should(MatchRegexp(`^Sent \w+: INVALID charset — delivered \(HTTP 200\), but the postback was INVALID charset: `))
	})

	It("shows a message's seed whole, so that it regenerates the same message", func() {
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: refURL + "/ipn/paypal"})
		Expect(err).NotTo(HaveOccurred())
		Expect(uint64(v.Seed)).To(BeNumerically(">", uint64(1)<<53), "a seed JavaScript numbers would round")
		do(history, open(emu.URL()+"/#/messages/"+v.ID))
		Eventually(text(history, "#message-seed")).Should(Equal(strconv.FormatUint(uint64(v.Seed), 10)))
		seed, err := strconv.ParseUint(text(history, "#message-seed")(), 10, 64)
		Expect(err).NotTo(HaveOccurred())
		again, err := emu.PreviewPayPal(emulator.SendRequest{Kind: "web_accept", Seed: api.Seed(seed)})
		Expect(err).NotTo(HaveOccurred())
		Expect(again.Fields).To(ContainElement(emulator.TextField{Name: "txn_id", Value: v.TxnID}), "the seed on the page makes the same message")

		// The page's command makes it again through fixtures show, byte for byte.
		command := text(history, "#message-regenerate")()
		Expect(command).To(HavePrefix("ipnlab fixtures show web_accept --raw --seed " + strconv.FormatUint(seed, 10) + " --at "))
		bin, err := gexec.Build("github.com/ipnlab/ipnlab/cmd/ipnlab")
		Expect(err).NotTo(HaveOccurred())
		out, err := exec.Command(bin, strings.Fields(command)[1:]...).Output()
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(string(out))).To(Equal(v.Body))
	})

	It("shows the postbacks of no message the emulator sent, with the reason", func() {
		resp, err := http.Post(emu.VerifyURL(), "application/x-www-form-urlencoded",
			strings.NewReader("cmd=_notify-validate&txn_id=NOTSENT0000000000&verify_sign=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrSt"))
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		do(history, open(emu.URL()+"/#/history"))
		Eventually(text(history, "#unknown-title")).Should(Equal("Postbacks of no message the emulator sent (1)"))
		do(history, chromedp.Click(`#unknown-title`))
		Eventually(text(history, "#unknown-postbacks tbody tr td:last-child")).Should(HavePrefix("INVALID unknown-message: "))
	})

	It("keeps History's filters on one line in a 1400 px window", func() {
		wide := tab(history)
		do(wide, chromedp.EmulateViewport(1400, 900), open(emu.URL()+"/#/history"))
		Eventually(count(wide, "#history tbody tr")).Should(BeNumerically(">", 1))
		Expect(js[int](wide, `new Set([...document.querySelectorAll("#filters > *")].map(e => Math.round(e.getBoundingClientRect().bottom))).size`)).
			To(Equal(1), "every filter on one line")
		screenshot(wide, "history-wide")
	})

	It("keeps the Verdict column in view at 800 px, and gives the time filters examples from the clock", func() {
		medium := tab(history)
		do(medium, chromedp.EmulateViewport(800, 900), open(emu.URL()+"/#/history"))
		Eventually(count(medium, "#history tbody tr")).Should(BeNumerically(">", 1))
		Expect(text(medium, "#history thead th:nth-child(2)")()).To(Equal("Verdict"))
		Expect(js[bool](medium, `document.querySelector("#history tbody tr td:nth-child(2)").getBoundingClientRect().right <= window.innerWidth`)).To(BeTrue())
		now := emu.Clock().Now().UTC()
		Eventually(func() string {
			return js[string](medium, `document.querySelector("#filters [name=until]").placeholder`)
		}).
			Should(Equal(now.Format("2006-01-02 15:04:05")))
		Expect(js[string](medium, `document.querySelector("#filters [name=since]").placeholder`)).To(Equal(now.Add(-24 * time.Hour).Format("2006-01-02 15:04:05")))
	})

	It("fits a narrow window without the page scrolling sideways", func() {
		narrow := tab(history)
		do(narrow, chromedp.EmulateViewport(420, 900), open(emu.URL()+"/#/history"))
		Eventually(count(narrow, "#history tbody tr")).Should(BeNumerically(">", 1))
		Expect(count(narrow, "#history tbody tr.fresh")()).To(Equal(0), "nothing is new on a first load")
		Expect(js[bool](narrow, `document.documentElement.scrollWidth <= window.innerWidth`)).To(BeTrue())
		screenshot(narrow, "history-narrow")
		do(narrow, open(emu.URL()+"/#/simulator"))
		Expect(js[bool](narrow, `document.documentElement.scrollWidth <= window.innerWidth`)).To(BeTrue())
		screenshot(narrow, "simulator-narrow")
	})

	It("labels every form control", func() {
		for _, page := range []string{"history", "simulator"} {
			do(history, open(emu.URL()+"/#/"+page))
			unlabelled := js[[]string](history, `[...document.querySelectorAll("input, select, textarea")]
				.filter(c => c.type !== "hidden" && !c.closest("label") && !c.getAttribute("aria-label") && !(c.id && document.querySelector("label[for='" + c.id + "']")))
				.map(c => c.outerHTML)`)
			Expect(unlabelled).To(BeEmpty(), page)
		}
	})
})

var _ = Describe("The web console with an API token", func() {
	It("asks for the token, says when it is wrong, and then works", func() {
		emu, _ := lab("s3cret")
		b := browser()
		do(b, chromedp.Navigate(emu.URL()+"/#/history"), chromedp.WaitVisible(`#token-dialog[open]`))
		do(b, chromedp.SendKeys(`#token-form input[name=token]`, "wrong"), chromedp.Click(`#token-form button`))
		Eventually(text(b, "#token-error")).Should(Equal("wrong API token"))
		do(b, chromedp.SendKeys(`#token-form input[name=token]`, "s3cret"), chromedp.Click(`#token-form button`),
			chromedp.WaitVisible(`body[data-ready="true"]`))
		Eventually(text(b, "#history-count")).Should(Equal("0 messages"))
		screenshot(b, "token")
	})
})

var _ = Describe("A message's postbacks in the web console", func() {
	var (
		emu  *emulator.Server
		page context.Context
	)
	BeforeEach(func() {
		emu, _ = lab("")
		page = browser()
	})

	It("shows what the listener was answered first: behind an injected fault, INVALID in red, the emulator's verdict after it, labelled", func() {
		Expect(emu.PayPal().SetFault("", &paypal.Fault{Kind: paypal.FaultInvalid, Count: 1})).To(Succeed())
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept"})
		Expect(err).NotTo(HaveOccurred())
		do(page, open(emu.URL()+"/#/messages/"+v.ID), chromedp.WaitVisible(`#view-message`))
		Eventually(text(page, ".postback h4")).Should(MatchRegexp(`^INVALID .* \(fault invalid injected; the emulator's verdict, not sent: VERIFIED\)$`))
		Expect(js[string](page, `document.querySelector(".postback h4 span").className`)).To(Equal("verdict-INVALID"))
		Expect(text(page, "#message-summary")()).To(ContainSubstring("Delivery"))
		Expect(js[string](page, `getComputedStyle(document.querySelector("#message-summary .status")).color`)).
			To(Equal(js[string](page, `getComputedStyle(document.querySelector("#message-summary")).color`)), "the delivery status is not painted as a verdict")
	})
})
