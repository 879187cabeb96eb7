package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/internal/webhooktest"
)

var _ = Describe("A plug-in provider's messages in the web console", func() {
	It("are listed in History and shown with the facts their provider adds", func() {
		ticket := webhooktest.New("ticket")
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0), Seed: 42, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Providers: []emulator.Factory{ticket.Factory}}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		lst := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(lst.Close)

		sent, err := ticket.Latest().Notify(emulator.Notify{Kind: "ticket.opened", NotifyURL: lst.URL, Set: map[string]any{"desk": "billing"}})
		Expect(err).NotTo(HaveOccurred())
		emu.WaitIdle()
		page := browser()
		do(page, open(emu.URL()+"/#/history"))
		Eventually(count(page, "#history tbody tr")).Should(Equal(1))
		Expect(text(page, "#history tbody tr")()).To(ContainSubstring("ticket.opened"))

		do(page, open(emu.URL()+"/#/messages/"+sent[0].ID), chromedp.WaitVisible(`#view-message`))
		Eventually(text(page, "#message-summary")).Should(ContainSubstring("Event"))
		Expect(text(page, "#message-summary")()).To(ContainSubstring("ticket.opened"))
		Expect(text(page, "#message-raw")()).To(ContainSubstring(`"desk":"billing"`))
	})

	It("are sent from the Simulator, whose panel for a provider it has no panel of its own for takes a kind and what the provider takes as set", func() {
		ticket := webhooktest.New("ticket")
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0), Seed: 42, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Providers: []emulator.Factory{ticket.Factory}}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		lst := webhooktest.NewInbox()
		DeferCleanup(lst.Close)

		page := browser()
		do(page, open(emu.URL()+"/#/simulator"), chromedp.WaitVisible(`#sim-fields tbody tr`))
		Expect(text(page, "#sim-providers")()).To(Equal("Provider PayPal PayDo ticket"))
		do(page, chromedp.Click(`#sim-providers input[value="ticket"]`), chromedp.WaitVisible(`#sim-set`))
		Expect(js[bool](page, `document.querySelector("#sim-fields").closest("[data-for]").hidden`)).To(BeTrue(), "PayPal's fields are PayPal's")
		Expect(js[bool](page, `document.querySelector("#sim-generate").hidden`)).To(BeTrue(), "nothing to preview: the provider makes its message when asked")

		do(page, fill(`#sim-set`, `{"desk": "sales"}`), fill(`#sim-url`, lst.URL), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(page, "#sim-result")).Should(Equal("Name a kind: ticket lists none, so it takes any"))
		do(page, fill(`#sim-kind-name`, "ticket.closed"), fill(`#sim-set`, `["desk"]`), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(page, "#sim-result")).Should(HavePrefix("Set must be a JSON object"))
		do(page, fill(`#sim-set`, `{"desk": "sales"}`), chromedp.Click(`#sim button[type=submit]`))
		Eventually(text(page, "#sim-result")).Should(MatchRegexp(`^Sent WH\w+: delivered — delivered \(HTTP 200\)$`))
		screenshot(page, "simulator-plugin")
		Expect(lst.Bodies()).To(ConsistOf(And(ContainSubstring(`"type":"ticket.closed"`), ContainSubstring(`"data":{"desk":"sales"}`))))

		// Back on PayPal, its own panel again.
		do(page, chromedp.Click(`#sim-providers input[value="paypal"]`), chromedp.WaitVisible(`#sim-fields`))
		Expect(js[bool](page, `document.querySelector("#sim-set").closest("[data-for]").hidden`)).To(BeTrue())
		Expect(text(page, "#sim-kind")()).To(ContainSubstring("web_accept"))
	})
})
