package conformancespec_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/suites/conformance"
	"github.com/ipnlab/ipnlab/suites/conformance/conformancespec"
)

// cfg is filled in BeforeSuite: Specs reads it when the specs run.
var cfg = conformance.Defaults()

var _ = BeforeSuite(func() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	l, err := listener.New(listener.Config{
		VerifyURL:      "http://" + ln.Addr().String() + "/cgi-bin/webscr",
		ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
		Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}},
		DB:        filepath.Join(GinkgoT().TempDir(), "ref.db"),
		Verify:    listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20},
		PayDo:     listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(l.Start(context.Background())).To(Succeed())
	srv := httptest.NewServer(l.Handler())
	DeferCleanup(func() { srv.Close(); l.Close() })
	cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL+"/ipn/paydo", srv.URL
	cfg.AckTimeout, cfg.LabelFilter = 2*time.Second, "!slow"
})

// Every check, as a spec of this suite: the reference listener passes them.
var _ = conformancespec.Specs(&cfg)

func TestConformanceSpecs(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "conformance as Ginkgo specs")
}
