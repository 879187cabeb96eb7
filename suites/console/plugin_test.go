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
})
