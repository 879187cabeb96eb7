package conformance_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// runAgainst runs the whole suite against the reference listener built
// as mutant ("" for the real one), on its own emulator.
func runAgainst(mutant, dir string) (conformance.Report, error) {
	ln := freeListenerErr()
	l, err := listener.New(listener.Config{
		VerifyURL:      "http://" + ln.Addr().String() + "/cgi-bin/webscr",
		ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
		Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}},
		DB:        filepath.Join(dir, mutant+"x.db"),
		Verify:    listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20, Timeout: 10 * time.Second},
		PayDo:     listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		Mutant:    mutant, Logger: quietLogger(),
	})
	if err != nil {
		return conformance.Report{}, err
	}
	if err := l.Start(context.Background()); err != nil {
		return conformance.Report{}, err
	}
	srv := serve(l)
	defer func() { srv.Close(); l.Close() }()
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL+"/ipn/paydo", srv.URL
	cfg.AckTimeout, cfg.PostbackWait, cfg.Settle, cfg.Name = 2*time.Second, time.Second, 5*time.Second, "mutant "+mutant
	return conformance.RunAll(context.Background(), cfg, nil)
}

var _ = Describe("The mutant gallery", func() {
	It("catches every mutant with the checks it targets, and the reference listener with none", func() {
		dir := GinkgoT().TempDir()
		all := mutants.All()
		type outcome struct {
			failed []string
			err    error
		}
		results := make([]outcome, len(all))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8) // runs wait on listeners, not on CPU
		for i, m := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				rep, err := runAgainst(m.Name, dir)
				results[i].err = err
				for _, r := range rep.Checks {
					if r.Status == scenarios.Failed || r.Status == scenarios.Error {
						results[i].failed = append(results[i].failed, r.ID)
					}
				}
			}()
		}
		wg.Wait()

		var table strings.Builder
		killed := 0
		for i, m := range all {
			Expect(results[i].err).NotTo(HaveOccurred(), m.Name)
			caught := true
			for _, t := range m.Targets {
				_, known := conformance.Lookup(t)
				Expect(known).To(BeTrue(), "%s targets unknown check %s", m.Name, t)
				caught = caught && slices.Contains(results[i].failed, t)
			}
			if caught {
				killed++
			}
			sort.Strings(results[i].failed)
			fmt.Fprintf(&table, "%-24s %-7v %s\n", m.Name, caught, strings.Join(results[i].failed, " "))
		}
		fmt.Fprintf(&table, "kill rate: %d/%d (%.0f%%)\n", killed, len(all), 100*float64(killed)/float64(len(all)))
		AddReportEntry("mutant kill table (mutant, caught by its targets, failing checks)", table.String(), ReportEntryVisibilityAlways)
		for i, m := range all {
			for _, t := range m.Targets {
				Expect(results[i].failed).To(ContainElement(t), "%s must be caught by %s; failing: %v", m.Name, t, results[i].failed)
			}
		}
		Expect(killed).To(Equal(len(all)))

		rep, err := runAgainst("", dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Summary.Failed + rep.Summary.Errors).To(BeZero())
	})

	It("keeps the gallery in docs/conformance.md current", func() {
		doc, err := os.ReadFile("../../docs/conformance.md")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(doc)).To(ContainSubstring(conformance.Gallery()), "regenerate with: make docs")
	})
})
