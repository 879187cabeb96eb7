package conformance_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// The probe contract as a probe in another language reads it: every
// parameter parses in one line, and a URL that serves no probe is named
// as such before any check runs.
var _ = Describe("The probe contract", func() {
	It("sends idle's wait as whole milliseconds, which a probe parses as an integer", func() {
		ln := freeListener()
		ref := referenceListener(ln)
		target, err := url.Parse(ref.URL)
		Expect(err).NotTo(HaveOccurred())
		forward := httputil.NewSingleHostReverseProxy(target)
		var waits []string
		// A probe written from docs/probe.md in Python: int(wait), and a
		// crash (HTTP 500) on anything else.
		strict := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/probe/v1/idle" {
				wait := r.URL.Query().Get("wait")
				waits = append(waits, wait)
				if _, err := strconv.Atoi(wait); err != nil {
					http.Error(w, "ValueError: invalid literal for int() with base 10: "+strconv.Quote(wait), http.StatusInternalServerError)
					return
				}
			}
			forward.ServeHTTP(w, r)
		}))
		DeferCleanup(strict.Close)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Probe = ln, ref.URL+"/ipn/paypal", strict.URL
		cfg.Focus, cfg.AckTimeout, cfg.Parallel = "PP-CREDIT-ONCE,PP-REFUND-FULL,PP-PENDING-ECHECK", 2*time.Second, 1
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		for _, id := range []string{"PP-CREDIT-ONCE", "PP-REFUND-FULL", "PP-PENDING-ECHECK"} {
			Expect(byID(rep)[id].Status).To(Equal(scenarios.Passed), "%s: %s", id, byID(rep)[id].Message)
		}
		Expect(waits).NotTo(BeEmpty())
		for _, w := range waits {
			Expect(w).To(MatchRegexp(`^\d+$`))
		}
	})

	It("stops before any check, saying so, when the probe URL serves no probe (501, or a web page)", func() {
		for _, answer := range []func(http.ResponseWriter){
			func(w http.ResponseWriter) { http.Error(w, "not implemented", http.StatusNotImplemented) },
			func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, "<html><body>Welcome to our shop</body></html>")
			},
		} {
			answer := answer
			shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/ipn" {
					w.WriteHeader(http.StatusOK)
					return
				}
				answer(w)
			}))
			cfg := conformance.Defaults()
			cfg.EmulatorListener, cfg.Listener, cfg.Probe = freeListener(), shop.URL+"/ipn", shop.URL
			_, err := conformance.RunAll(context.Background(), cfg, nil)
			shop.Close()
			Expect(err).To(MatchError(conformance.ErrHarness))
			Expect(err).To(MatchError(scenarios.ErrNoProbe))
			Expect(err.Error()).To(ContainSubstring("your listener serves no probe at this URL (" + shop.URL + "/probe/v1/idle?wait=0 answered HTTP "))
			Expect(err.Error()).To(HaveSuffix(": leave out --probe, or see docs/probe.md"))
		}
	})
})

var _ = Describe("Replay lines of a run that started its listener from an image", func() {
	It("start the image again with the paths as given, not the dead container's address, and name the binary as run", func() {
		ln := freeListener()
		ref := referenceListener(ln)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Focus, cfg.Seed = ln, ref.URL+"/ipn/paypal", "PP-ACK-GENUINE", 5
		cfg.Command = "./bin/ipnlab"
		cfg.Container = &conformance.Container{Listener: "/ipn/paypal", Flags: []string{"--listener-image", "shop:ci", "--listener-env", "DB_URL=postgres://shop:[redacted]@127.0.0.1/shop"}}
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Replay).To(Equal("./bin/ipnlab conform --seed 5 --listener /ipn/paypal --listener-image shop:ci --listener-env 'DB_URL=postgres://shop:[redacted]@127.0.0.1/shop' --focus PP-ACK-GENUINE"))
		Expect(rep.Replay).NotTo(ContainSubstring(ref.URL))
	})
})
