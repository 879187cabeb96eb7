package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/events"
)

var _ = Describe("Client", func() {
	var (
		cl  *client.Client
		ack *httptest.Server
		ctx = context.Background()
	)
	BeforeEach(func() {
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)), Seed: 1})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		ack = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
		DeferCleanup(func() { emu.Close(); api.Close(); ack.Close() })
		cl, err = client.New(api.URL)
		Expect(err).NotTo(HaveOccurred())
	})

	It("drives a message through its whole life", func() {
		Expect(cl.Health(ctx)).To(Succeed())
		m, err := cl.SendPayPal(ctx, emulator.SendRequest{Kind: "refund", NotifyURL: ack.URL, Params: emulator.Params{ParentTxnID: "1AB23456CD7890123"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Status).To(Equal("Retrying"))
		Expect(m.Fields).To(ContainElement(HaveField("Name", "parent_txn_id")))

		v, err := cl.Advance(ctx, "1d")
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Mode).To(Equal("manual"))
		rows, total, err := cl.History(ctx, url.Values{"status": {"Retrying"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(total).To(Equal(1))
		Expect(rows[0].AttemptCount).To(Equal(14)) // first + 13 retries inside 24 h
		Expect(rows[0].Outcome.State).To(Equal(api.Undelivered))
		Expect(rows[0].Outcome.OK()).To(BeFalse())

		_, err = cl.RunUntilIdle(ctx, "")
		Expect(err).NotTo(HaveOccurred())
		m, err = cl.Message(ctx, m.ID)
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Status).To(Equal("Failed"))
		Expect(m.Attempts[1].Duration).To(BeNumerically(">", 0))

		ids, refused, err := cl.ResendAll(ctx, emulator.ResendRequest{Since: "2026-01-01T00:00:00Z"})
		Expect(err).NotTo(HaveOccurred())
		Expect(ids).To(Equal([]string{m.ID}))
		Expect(refused).To(BeEmpty())

		evs, last, err := cl.Poll(ctx, 0, events.Resend, "", time.Second)
		Expect(err).NotTo(HaveOccurred())
		Expect(evs).To(HaveLen(1))
		Expect(last).To(BeNumerically(">", 0))
	})

	It("sets faults and the profile", func() {
		Expect(cl.SetFault(ctx, "", emulator.FaultRequest{Kind: "slow", Delay: "1s"})).To(Succeed())
		Expect(cl.ClearFault(ctx, "")).To(Succeed())
		p, err := cl.SetProfile(ctx, api.Profile{NotifyURL: ack.URL, Enabled: true, ReceiverEmail: "a@example.com"})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Enabled).To(BeTrue())
		kinds, err := cl.Kinds(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(len(kinds)).To(BeNumerically(">", 30))
	})

	It("returns the API's error message and status", func() {
		_, err := cl.Message(ctx, "NOPE")
		var ae *client.APIError
		Expect(errors.As(err, &ae)).To(BeTrue())
		Expect(ae.Status).To(Equal(404))
		Expect(ae.Message).To(ContainSubstring("no such message"))
	})

	It("says when no emulator answers, and refuses bad base URLs", func() {
		c, err := client.New("http://127.0.0.1:1")
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Health(ctx)).To(MatchError(client.ErrUnreachable))
		_, err = client.New("127.0.0.1:8700")
		Expect(err).To(MatchError(ContainSubstring("want http://host:port")))
	})
})
