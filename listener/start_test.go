package listener_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
)

// slowReplay is a store whose inbox replay, once read, waits for the
// spec: what arrives meanwhile is not in the list it returns.
type slowReplay struct {
	store.Store
	read, resume chan struct{}
}

func (s *slowReplay) PendingInbox(ctx context.Context) ([]store.InboxItem, error) {
	items, err := s.Store.PendingInbox(ctx)
	close(s.read)
	<-s.resume
	return items, err
}

var _ = Describe("Starting the reference listener", func() {
	It("processes a message accepted while it replays its inbox, not at the next restart", func() {
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 7, Logger: quiet()})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		DeferCleanup(func() { emu.Close(); api.Close() })
		st, err := sqlite.Open(filepath.Join(GinkgoT().TempDir(), "listener.db"))
		Expect(err).NotTo(HaveOccurred())
		slow := &slowReplay{Store: st, read: make(chan struct{}), resume: make(chan struct{})}
		lst, err := listener.NewWithStore(baseConfig(api.URL+"/cgi-bin/webscr", ""), slow)
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(lst.Handler())
		DeferCleanup(func() { srv.Close(); Expect(lst.Close()).To(Succeed()) })

		started := make(chan error, 1)
		go func() { started <- lst.Start(context.Background()) }()
		Eventually(slow.read).Should(BeClosed())
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: srv.URL + "/ipn/paypal", Params: emulator.Params{PayerEmail: customerEmail}})
		Expect(err).NotTo(HaveOccurred())
		emu.WaitIdle() // acknowledged: in the inbox, after the replay read it
		close(slow.resume)
		Eventually(started).Should(Receive(BeNil()))

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		Expect(lst.WaitIdle(ctx)).To(Succeed())
		t, err := lst.Transaction(context.Background(), "paypal", v.TxnID)
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Effects).To(HaveLen(1), "credited now")
	})
})
