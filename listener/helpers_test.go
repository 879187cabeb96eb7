package listener_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/listener"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const customerEmail = "customer@example.com"

// rig is an in-process emulator and a reference listener wired together.
type rig struct {
	emu  *emulator.Emulator
	api  *httptest.Server
	lst  *listener.Listener
	lsrv *httptest.Server
	cfg  listener.Config
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func baseConfig(verifyURL, db string) listener.Config {
	return listener.Config{
		VerifyURL:      verifyURL,
		ReceiverEmails: []string{emulator.DefaultReceiverEmail},
		ReceiverIDs:    []string{emulator.DefaultReceiverID},
		Customers:      []listener.Customer{{ID: "C1", Email: customerEmail}},
		DB:             db,
		Workers:        4,
		Verify:         listener.VerifyConfig{Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Attempts: 4, Timeout: 5 * time.Second},
		PayDo:          listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		Logger:         quiet(),
	}
}

func newRig(mutate ...func(*listener.Config)) *rig {
	r := &rig{}
	var err error
	r.emu, err = emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 7, Logger: quiet()})
	Expect(err).NotTo(HaveOccurred())
	r.api = httptest.NewServer(r.emu)
	r.cfg = baseConfig(r.api.URL+"/cgi-bin/webscr", filepath.Join(GinkgoT().TempDir(), "listener.db"))
	for _, m := range mutate {
		m(&r.cfg)
	}
	r.start()
	DeferCleanup(func() {
		r.lsrv.Close()
		Expect(r.lst.Close()).To(Succeed())
		r.emu.Close()
		r.api.Close()
	})
	return r
}

// start opens a listener on the rig's config (and database) and serves it.
func (r *rig) start() {
	var err error
	r.lst, err = listener.New(r.cfg)
	Expect(err).NotTo(HaveOccurred())
	Expect(r.lst.Start(context.Background())).To(Succeed())
	if r.lsrv == nil {
		r.lsrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.lst.Handler().ServeHTTP(w, req) }))
	}
}

func (r *rig) paypalURL() string { return r.lsrv.URL + "/ipn/paypal" }
func (r *rig) paydoURL() string  { return r.lsrv.URL + "/ipn/paydo" }

func (r *rig) idle() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	Expect(r.lst.WaitIdle(ctx)).To(Succeed())
}

// pay sends a PayPal message to the listener and waits until it is processed.
func (r *rig) pay(req emulator.SendRequest) emulator.MessageView {
	if req.NotifyURL == "" {
		req.NotifyURL = r.paypalURL()
	}
	if req.Params.PayerEmail == "" && req.Raw == "" && req.RawBase64 == "" {
		req.Params.PayerEmail = customerEmail
	}
	v, err := r.emu.SendPayPal(req)
	Expect(err).NotTo(HaveOccurred())
	r.idle()
	return v
}

func (r *rig) advance(d time.Duration) {
	Expect(r.emu.Advance(d)).To(Succeed())
	r.idle()
}

func (r *rig) txn(provider, id string) listener.ProbeTransaction {
	p, err := r.lst.Transaction(context.Background(), provider, id)
	Expect(err).NotTo(HaveOccurred(), "%s %s", provider, id)
	return p
}

func (r *rig) balance(currency string) string {
	b, err := r.lst.Store().Balances(context.Background(), "C1")
	Expect(err).NotTo(HaveOccurred())
	v, sign := b[currency], ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

func field(v emulator.MessageView, name string) string {
	for _, f := range v.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func (r *rig) post(url, contentType, body string) *http.Response {
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func ctxBG() context.Context { return context.Background() }

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
