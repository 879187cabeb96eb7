package main_test

import (
	"context"
	"io"
	"log/slog"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/internal/webhooktest"
)

var _ = Describe("ipnlab send NAME", func() {
	It("asks any provider the emulator runs for a message by kind: a Go program's plug-in, which the binary has never heard of", func() {
		ticket := webhooktest.New("ticket")
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)), Seed: 42, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Providers: []emulator.Factory{ticket.Factory}}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		lst := webhooktest.NewInbox()
		DeferCleanup(lst.Close)
		at := "--emulator=" + emu.URL()

		s := run("send", "ticket", at, "--kind", "ticket.opened", "--set", "desk=billing", "--set", "seats:=2", "--listener", lst.URL, "--wait")
		Expect(s).To(gexec.Exit(0), string(s.Err.Contents()))
		Expect(s.Out).To(gbytes.Say(`id=WH\w+ provider=ticket kind=ticket\.opened status="Sent"\n`))
		Expect(s.Out).To(gbytes.Say(`WH\w+: delivered \(HTTP 200\)`))
		Expect(lst.Bodies()).To(ConsistOf(MatchJSON(`{"id":"` + emu.Engine().List(nil)[0].ID + `","type":"ticket.opened","data":{"desk":"billing","seats":2}}`)))

		s = run("send", "tickt", at, "--kind", "ticket.opened")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`ipnlab send: unknown provider "tickt" \(did you mean "ticket"\?\): want paydo or paypal or ticket`))
		s = run("send", "ticket", at)
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`ipnlab send ticket: --kind is required`))
		s = run("send", "ticket", at, "--kind", "ticket.opened", "--copies", "5000")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`copies 5000: want 1 to 1000`))
		Expect(emu.Engine().List(nil)).To(HaveLen(1), "nothing sent by a refused request")
	})
})
