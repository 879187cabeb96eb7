package sandbox_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
	"github.com/ipnlab/ipnlab/internal/webhooktest"
)

var _ = Describe("A plug-in provider in a sandbox", func() {
	It("is made anew for every account: a message sent through one account's route is in that account's History alone", func() {
		tally := webhooktest.New("tally")
		sb, err := sandbox.New(sandbox.Config{
			AdminToken: admin,
			Base: emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AckTimeout: 2 * time.Second,
				Providers: []emulator.Factory{tally.Factory}},
			NewClock: func() clock.Clock { return clock.NewManual(t0) },
		})
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(sb.Handler())
		DeferCleanup(func() { srv.Close(); sb.Close() })
		ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(ok.Close)
		_, tokA, _ := account(srv.URL, "team-a")
		_, tokB, _ := account(srv.URL, "team-b")
		Expect(len(tally.Made())).To(BeNumerically(">=", 2), "one provider per account")

		code, out := call(srv.URL, tokA, "POST", "/api/v1/tally/notifications", map[string]any{"kind": "tally.counted", "notify_url": ok.URL})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		id := out["messages"].([]any)[0].(map[string]any)["id"].(string)
		Expect(messageIDs(srv.URL, tokA)).To(ContainElement(id))
		Expect(messageIDs(srv.URL, tokB)).NotTo(ContainElement(id), "account team-a's message in team-b's History")
		code, _ = call(srv.URL, tokB, "GET", "/api/v1/messages/"+id, nil)
		Expect(code).To(Equal(http.StatusNotFound))
	})
})
