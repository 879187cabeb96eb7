package conformancespec_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
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
	specwait.Defaults()
	RunSpecs(t, "conformance as Ginkgo specs")
}

var _ = Describe("The documented Go entry point", func() {
	It("runs as docs/conformance.md shows it, with the zero fields defaulted, and every check runs and reports on its own after a failure", func() {
		snippet, err := os.ReadFile("testdata/docsnippet/ipn_test.go")
		Expect(err).NotTo(HaveOccurred())
		body := string(snippet[strings.Index(string(snippet), "func TestIPNConformance"):])
		doc, err := os.ReadFile("../../../docs/conformance.md")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(doc)).To(ContainSubstring(body), "docs/conformance.md shows testdata/docsnippet/ipn_test.go's test")

		// A listener with one bug: it drops empty fields from its postbacks.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed()) // the suite below listens here
		l, err := flawed.New(listener.Config{
			VerifyURL:      "http://" + addr + "/cgi-bin/webscr",
			ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
			DB: filepath.Join(GinkgoT().TempDir(), "mutant.db"), Mutant: "drop-empty-fields",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(l.Start(context.Background())).To(Succeed())
		srv := httptest.NewServer(l.Handler())
		defer func() { srv.Close(); l.Close() }()

		report := filepath.Join(GinkgoT().TempDir(), "report.json")
		cmd := exec.Command("go", "test", "-count=1", "./testdata/docsnippet", "-args", "-ginkgo.json-report="+report)
		cmd.Env = append(os.Environ(), "IPN_LISTENER="+srv.URL+"/ipn/paypal", "IPN_EMULATOR_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred(), "a listener with a bug fails the go test\n%s", out)
		raw, err := os.ReadFile(report)
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		var reports []types.Report
		Expect(json.Unmarshal(raw, &reports)).To(Succeed())
		Expect(reports).To(HaveLen(1))
		states := map[string]types.SpecState{}
		for _, s := range reports[0].SpecReports {
			if s.LeafNodeType == types.NodeTypeIt {
				id, _, _ := strings.Cut(s.LeafNodeText, ":")
				states[id] = s.State
			}
		}
		Expect(states).To(HaveLen(len(conformance.Checks())))
		for _, c := range conformance.Checks() {
			ranHere := c.Level == conformance.Protocol && c.Provider == "paypal" && !c.HasLabel("slow") && !c.HasLabel("intercept")
			switch {
			case c.ID == "PP-VERIFY-EMPTY-FIELDS":
				Expect(states[c.ID]).To(Equal(types.SpecStateFailed), c.ID)
			case ranHere:
				Expect(states[c.ID]).To(Equal(types.SpecStatePassed), "%s ran after the failure and passed\n%s", c.ID, out)
			default:
				Expect(states[c.ID]).To(Equal(types.SpecStateSkipped), c.ID)
			}
		}
	})
})
