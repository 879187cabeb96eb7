package sandbox_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
)

// tally is a plug-in provider of the specs' own: a JSON webhook sent
// through POST /api/v1/tally/notifications, through exported API only.
type tally struct {
	host emulator.Host
	seq  *atomic.Int64 // shared by every instance: ids stay apart across accounts
}

func (t *tally) Name() string { return "tally" }

func (t *tally) Routes() []emulator.Route {
	return []emulator.Route{{Method: "POST", Pattern: "/api/v1/tally/notifications", Handler: emulator.APIHandler(func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			NotifyURL string `json:"notify_url"`
		}
		if err := emulator.ReadJSON(w, r, &req); err != nil {
			return err
		}
		id := fmt.Sprintf("TALLY%04d", t.seq.Add(1))
		if _, err := t.host.Engine.Submit(delivery.Submission{ID: id, Provider: t.Name(), Kind: "tally", URL: req.NotifyURL, Body: []byte(`{}`),
			Header: http.Header{"Content-Type": {"application/json"}}, Schedule: delivery.Backoff{Initial: time.Minute, Factor: 1, Max: time.Minute, MaxRetries: 1},
			Ack: delivery.Any2xx}); err != nil {
			return emulator.BadRequest("%v", err)
		}
		v, _ := t.host.View(id)
		emulator.WriteJSON(w, http.StatusCreated, v)
		return nil
	})}}
}

func (t *tally) Restore() (emulator.RestoredCounts, error) { return nil, nil }
func (t *tally) ClientFor(string) (*http.Client, error)    { return nil, nil }
func (t *tally) Describe(string, *emulator.MessageView)    {}
func (t *tally) Resend(id string, _ emulator.ResendRequest) error {
	_, err := t.host.Engine.Resend(id, "")
	return err
}
func (t *tally) Forget([]string) {}

var _ = Describe("A plug-in provider in a sandbox", func() {
	It("is made anew for every account: a message sent through one account's route is in that account's History alone", func() {
		seq := &atomic.Int64{}
		var made atomic.Int64
		sb, err := sandbox.New(sandbox.Config{
			AdminToken: admin,
			Base: emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AckTimeout: 2 * time.Second,
				Providers: []emulator.Factory{func(h emulator.Host) (emulator.Provider, error) {
					made.Add(1)
					return &tally{host: h, seq: seq}, nil
				}}},
			NewClock: func() clock.Clock { return clock.NewManual(t0) },
		})
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(sb.Handler())
		DeferCleanup(func() { srv.Close(); sb.Close() })
		ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(ok.Close)
		_, tokA, _ := account(srv.URL, "team-a")
		_, tokB, _ := account(srv.URL, "team-b")
		Expect(made.Load()).To(BeNumerically(">=", 2), "one provider per account")

		code, out := call(srv.URL, tokA, "POST", "/api/v1/tally/notifications", map[string]any{"notify_url": ok.URL})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		id := out["id"].(string)
		Expect(messageIDs(srv.URL, tokA)).To(ContainElement(id))
		Expect(messageIDs(srv.URL, tokB)).NotTo(ContainElement(id), "account team-a's message in team-b's History")
		code, _ = call(srv.URL, tokB, "GET", "/api/v1/messages/"+id, nil)
		Expect(code).To(Equal(http.StatusNotFound))
	})
})
