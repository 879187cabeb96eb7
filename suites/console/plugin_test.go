package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// ticket is a provider the console has never heard of: one JSON webhook
// per call, with facts of its own in its message views.
type ticket struct {
	host emulator.Host
	mu   sync.Mutex
	seq  int
	desk map[string]string // message id -> desk
}

func (t *ticket) Name() string                              { return "ticket" }
func (t *ticket) Routes() []emulator.Route                  { return nil }
func (t *ticket) Restore() (emulator.RestoredCounts, error) { return nil, nil }
func (t *ticket) ClientFor(string) (*http.Client, error)    { return nil, nil }
func (t *ticket) Resend(id string, r emulator.ResendRequest) error {
	_, err := t.host.Engine.Resend(id, r.URL)
	return err
}
func (t *ticket) Forget([]string) {}

func (t *ticket) Describe(id string, v *emulator.MessageView) {
	body, _ := t.host.Engine.Body(id)
	t.mu.Lock()
	desk := t.desk[id]
	t.mu.Unlock()
	v.Body, v.Charset = string(body), "UTF-8"
	v.Details = append(v.Details, emulator.Detail{Label: "Desk", Value: desk})
}

func (t *ticket) send(url, desk string) emulator.MessageView {
	t.mu.Lock()
	t.seq++
	id := "TICKET" + strconv.Itoa(t.seq)
	t.desk[id] = desk
	t.mu.Unlock()
	body, err := json.Marshal(map[string]string{"id": id, "desk": desk})
	Expect(err).NotTo(HaveOccurred())
	_, err = t.host.Engine.Submit(delivery.Submission{ID: id, Provider: t.Name(), Kind: "ticket.opened", URL: url, Body: body,
		Header:   http.Header{"Content-Type": {"application/json"}},
		Schedule: delivery.Backoff{Initial: time.Minute, Factor: 1, Max: time.Minute, MaxRetries: 3}})
	Expect(err).NotTo(HaveOccurred())
	v, ok := t.host.View(id)
	Expect(ok).To(BeTrue())
	return v
}

var _ = Describe("A plug-in provider's messages in the web console", func() {
	It("are listed in History and shown with the facts their provider adds", func() {
		t := &ticket{desk: map[string]string{}}
		emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0), Seed: 42, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Providers: []emulator.Factory{func(h emulator.Host) (emulator.Provider, error) { t.host = h; return t, nil }}}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()) })
		lst := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(lst.Close)

		v := t.send(lst.URL, "billing")
		emu.WaitIdle()
		page := browser()
		do(page, open(emu.URL()+"/#/history"))
		Eventually(count(page, "#history tbody tr")).Should(Equal(1))
		Expect(text(page, "#history tbody tr")()).To(ContainSubstring("ticket.opened"))

		do(page, open(emu.URL()+"/#/messages/"+v.ID), chromedp.WaitVisible(`#view-message`))
		Eventually(text(page, "#message-summary")).Should(ContainSubstring("Desk"))
		Expect(text(page, "#message-summary")()).To(ContainSubstring("billing"))
	})
})
