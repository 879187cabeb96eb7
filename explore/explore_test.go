package explore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/joshdk/go-junit"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"

	"github.com/ipnlab/ipnlab/explore"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// against starts the reference listener built as mutant ("" for the real
// one) and returns the conformance settings that reach it.
func against(mutant string) conformance.Config { return againstWrapped(mutant, nil) }

// againstWrapped is against with the listener's handler wrapped: a
// listener with a bug no mutant has, written around the reference one.
func againstWrapped(mutant string, wrap func(h http.Handler, verifyURL string) http.Handler) conformance.Config {
	cfg, _ := startListener(mutant, wrap)
	return cfg
}

// againstSQL is against("") read through its database with the probe map
// in mapFile instead of its probe API.
func againstSQL(mapFile string) conformance.Config {
	cfg, db := startListener("", nil)
	cfg.Probe, cfg.ProbeMap = "sql:sqlite:"+db, mapFile
	return cfg
}

// startListener starts the reference listener (as mutant, its handler
// wrapped) and returns the settings that reach it and its database.
func startListener(mutant string, wrap func(h http.Handler, verifyURL string) http.Handler) (conformance.Config, string) {
	db := filepath.Join(GinkgoT().TempDir(), "l.db")
	cfg, stop, err := referenceListener(db, mutant, wrap)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(stop)
	return cfg, db
}

var _ = Describe("The model", func() {
	It("is reproducible by seed, and every history it draws loads as a scenario", func() {
		for seed := uint64(1); seed <= 300; seed++ {
			h, err := explore.Generate(seed, 40, true)
			Expect(err).NotTo(HaveOccurred())
			again, _ := explore.Generate(seed, 40, true)
			Expect(again).To(Equal(h))
			Expect(len(h.Events)).To(BeNumerically("<=", 42))
			text := explore.Scenario(h, "x", "y", "C1")
			_, err = scenarios.Parse("x.yaml", []byte(text))
			Expect(err).NotTo(HaveOccurred(), text)

			hooks, err := explore.GenerateFor(seed, 40, explore.Grammar{PayDo: true, Webhooks: true})
			Expect(err).NotTo(HaveOccurred())
			again, _ = explore.GenerateFor(seed, 40, explore.Grammar{PayDo: true, Webhooks: true})
			Expect(again).To(Equal(hooks))
			text = explore.Scenario(hooks, "x", "y", "C1")
			_, err = scenarios.ParseFor("x.yaml", []byte(text), explore.Plugins)
			Expect(err).NotTo(HaveOccurred(), text)
		}
	})

	It("models PayPal REST webhooks: a capture credits once however delivered, a refund that comes first waits, a trap credits nothing", func() {
		webhooks := 0
		for seed := uint64(1); seed <= 300; seed++ {
			h, err := explore.GenerateFor(seed, 40, explore.Grammar{Webhooks: true})
			Expect(err).NotTo(HaveOccurred())
			outcomes := explore.Expected(h)
			for fi, f := range h.Families {
				if !f.Webhook {
					continue
				}
				webhooks++
				sent := map[string]bool{}
				for _, e := range h.Events {
					if e.Kind == explore.Send && e.Family == fi {
						sent[f.Steps[e.Step].Status] = true
					}
				}
				o := outcomes[fi]
				switch {
				case f.Trap == "forged" || f.Trap == "mock" || f.Trap == "foreign_cert":
					Expect(o).To(Equal(explore.Outcome{}), "a refused trap credits nothing")
					Expect(f.Name).To(Equal("webhook_capture"), "a refused trap's family is a capture alone")
				case !sent["COMPLETED"] && !sent["SALE"]:
					Expect(o).To(Equal(explore.Outcome{}), "%s: nothing completed, nothing credited", f.Name)
				case sent["REFUNDED"] || sent["SALE_REFUNDED"] || sent["REVERSED"] || sent["DISPUTE_LOST"]:
					// A chargeback's reversal and lost dispute are one debit.
					Expect(o).To(Equal(explore.Outcome{Effects: 2}), "%s: credited, then debited once, in whatever order", f.Name)
				default:
					Expect(o).To(Equal(explore.Outcome{Effects: 1, Net: f.Gross}), "%s: credited once", f.Name)
				}
			}
		}
		Expect(webhooks).To(BeNumerically(">", 100), "the grammar draws webhooks often enough to find their bugs")
	})

	It("follows the rules: a duplicate credits once, a lost Completed credits nothing, a refund waits for its payment", func() {
		h, err := explore.Generate(7, 40, false)
		Expect(err).NotTo(HaveOccurred())
		pay := explore.History{Families: []explore.Family{h.Families[0]}}
		pay.Families[0].Steps = []explore.Step{
			{Name: "pay", Status: "Completed", Amount: 5000, Kind: "web_accept"},
			{Name: "refund", Status: "Refunded", Amount: -1200, Child: true},
		}
		send := func(step int, f *explore.Fault, copies int) explore.Event {
			return explore.Event{Kind: explore.Send, Step: step, Fault: f, Copies: copies}
		}
		pay.Events = []explore.Event{send(1, nil, 0), send(0, nil, 0), send(0, nil, 0)}
		Expect(explore.Expected(pay)).To(Equal([]explore.Outcome{{Effects: 2, Net: 3800}}))
		pay.Events = []explore.Event{send(0, &explore.Fault{Kind: "invalid", Count: 1}, 0), send(1, nil, 0)}
		Expect(explore.Expected(pay)).To(Equal([]explore.Outcome{{}}))
		pay.Events = []explore.Event{send(0, &explore.Fault{Kind: "status500", Count: 1}, 0)}
		Expect(explore.Expected(pay)).To(Equal([]explore.Outcome{{Effects: 1, Net: 5000}}), "a listener retries a 500")
		pay.Events = []explore.Event{send(0, &explore.Fault{Kind: "status500", Count: 0}, 2)}
		Expect(explore.Expected(pay)).To(Equal([]explore.Outcome{{}}), "copies are the same bytes: every postback of them meets the fault")
		pay.Events = []explore.Event{send(0, &explore.Fault{Kind: "invalid", Count: 1}, 0), send(0, nil, 0)}
		Expect(explore.Expected(pay)).To(Equal([]explore.Outcome{{Effects: 1, Net: 5000}}), "the duplicate's postback is VERIFIED")
	})

	It("judges acknowledgements as the conformance checks do: a message no postback of which is answered may stay unacknowledged, for PayPal to resend", func() {
		h := explore.History{Families: []explore.Family{{Name: "pay", Steps: []explore.Step{{Name: "pay", Status: "Completed", Amount: 5000, Kind: "web_accept"}}}}}
		for _, tc := range []struct {
			fault *explore.Fault
			acked bool
		}{
			{nil, true},
			{&explore.Fault{Kind: "status500", Count: 1}, true},
			{&explore.Fault{Kind: "invalid", Count: 0}, true},
			{&explore.Fault{Kind: "status500", Count: 0}, false},
			{&explore.Fault{Kind: "drop", Count: 0}, false},
			{&explore.Fault{Kind: "garbage", Count: 0}, false},
		} {
			h.Events = []explore.Event{{Kind: explore.Send, Fault: tc.fault}}
			text := explore.Scenario(h, "x", "y", "")
			if tc.acked {
				Expect(text).To(ContainSubstring("{message: m1, acked: true}"), "%+v", tc.fault)
			} else {
				Expect(text).NotTo(ContainSubstring("acked: true"), "%+v", tc.fault)
			}
		}
	})

	It("adds the transactions' nets up into the payer's balances, by currency", func() {
		h := explore.History{Families: []explore.Family{
			{Name: "pay_refund", Steps: []explore.Step{{Name: "pay", Status: "Completed", Amount: 5000, Kind: "web_accept"}, {Name: "refund", Status: "Refunded", Amount: -1200, Child: true}}},
			{Name: "pay", Steps: []explore.Step{{Name: "pay", Status: "Completed", Amount: 700, Kind: "web_accept"}}},
			{Name: "paydo_checkout", PayDo: true, Gross: 900, Steps: []explore.Step{{Name: "state1", Status: "5"}, {Name: "state2", Status: "2"}}},
			{Name: "paydo_checkout", PayDo: true, Gross: 400, Steps: []explore.Step{{Name: "state1", Status: "3"}}},
		}}
		send := func(fi, step int) explore.Event { return explore.Event{Kind: explore.Send, Family: fi, Step: step} }
		h.Events = []explore.Event{send(0, 1), send(0, 0), send(1, 0), send(2, 0), send(2, 1), send(3, 0)}
		Expect(explore.BalanceChange(h)).To(Equal(map[string]generate.Money{"USD": 5000 - 1200 + 700, "EUR": 900}))
		text := explore.Scenario(h, "x", "y", "C1")
		Expect(text).To(ContainSubstring(`- expect: {customer: "C1", balance_change: {EUR: "9.00", USD: "45.00"}}`))
		Expect(explore.Scenario(h, "x", "y", "")).NotTo(ContainSubstring("balance_change"), "no customer: no balances")
	})
})

var _ = Describe("The JUnit report", func() {
	It("has a case per history, fails the one that broke the model, and says what could not be judged", func() {
		rep := explore.Report{
			Runs:      []explore.HistoryRun{{Seed: 1, Events: 3, Seconds: 0.2}, {Seed: 2, Events: 5, Seconds: 0.3}},
			Violation: &explore.Violation{HistorySeed: 2, Broke: "transaction X has 2 balance effect(s), want 1", History: "t1: pay of 5.00\nsend t1.pay x2\n", Replay: "ipnlab run f.yaml --listener L --probe P"},
			Balances:  "not checked: the probe does not read customers' balances (its SQL probe map has no balances query)",
			Aborted:   "explore: the listener went away",
		}
		path := filepath.Join(GinkgoT().TempDir(), "explore.xml")
		Expect(rep.WriteJUnit(path)).To(Succeed())
		suites, err := junit.IngestFile(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(suites).To(HaveLen(1))
		Expect(suites[0].Totals).To(MatchFields(IgnoreExtras, Fields{"Tests": Equal(4), "Passed": Equal(1), "Failed": Equal(1), "Error": Equal(1), "Skipped": Equal(1)}))
		failed := suites[0].Tests[1]
		Expect(failed.Name).To(Equal("history 2 (seed 2, 5 events)"))
		Expect(failed.Message).To(Equal("transaction X has 2 balance effect(s), want 1"))
		Expect(failed.Error.Error()).To(ContainSubstring("send t1.pay x2\nreplay: ipnlab run f.yaml"))
	})
})

var _ = Describe("Exploring", func() {
	It("finds nothing against the reference listener: it and the model agree", func() {
		// IPNLAB_EXPLORE_HISTORIES sets how many (make agreement: 10,000,
		// on two listeners side by side, the second sent PayPal REST
		// webhooks too); make test runs 12.
		total := 12
		if n, err := strconv.Atoi(os.Getenv("IPNLAB_EXPLORE_HISTORIES")); err == nil && n > 0 {
			total = n
		}
		workers := min(2, total)
		reports := make([]explore.Report, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			cfg, n := against(""), total/workers
			if w == 0 {
				n += total % workers
			} else {
				cfg = withWebhooks(cfg) // the second listener takes REST webhooks too
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				reports[w], errs[w] = explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: uint64(11 + w), Histories: n, MaxShrinks: 30})
			}()
		}
		wg.Wait()
		histories, events, seconds := 0, 0, 0.0
		for w, rep := range reports {
			Expect(errs[w]).NotTo(HaveOccurred())
			Expect(rep.Aborted).To(BeEmpty())
			Expect(rep.Violation).To(BeNil(), "%+v", rep.Violation)
			histories, events, seconds = histories+rep.Histories, events+rep.Events, max(seconds, rep.Seconds)
		}
		fmt.Fprintf(GinkgoWriter, "agreement: %d histories, %d events, %.0fs on %d listeners side by side: nothing found\n", histories, events, seconds, workers)
		Expect(histories).To(Equal(total))
		rep := reports[0]
		Expect(rep.Balances).To(Equal("customer C1's (learned from a payment from the payer)"), "it learns the payer's id through the probe and checks its balances")
	})

	It("reads the listener's database through a probe map, balances too when the map has a balances query", func() {
		rep, err := explore.Run(context.Background(), explore.Config{Conformance: againstSQL("../docs/probe-map-reference.yaml"), Seed: 21, Histories: 6})
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Passed()).To(BeTrue(), "%+v", rep)
		Expect(rep.Balances).To(Equal("customer C1's (learned from a payment from the payer)"))

		raw, err := os.ReadFile("../docs/probe-map-reference.yaml")
		Expect(err).NotTo(HaveOccurred())
		without, _, found := strings.Cut(string(raw), "\n# The customer's balances")
		Expect(found).To(BeTrue())
		mapFile := filepath.Join(GinkgoT().TempDir(), "map.yaml")
		Expect(os.WriteFile(mapFile, []byte(without), 0o644)).To(Succeed())
		rep, err = explore.Run(context.Background(), explore.Config{Conformance: againstSQL(mapFile), Seed: 21, Histories: 2})
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Passed()).To(BeTrue(), "%+v", rep)
		Expect(rep.Balances).To(HavePrefix("not checked: the probe does not read customers' balances"))
	})

	It("checks the balances of the customer it is given, and finds them moved when that is not the payer", func() {
		rep, err := explore.Run(context.Background(), explore.Config{Conformance: against(""), Customer: "C1", Seed: 21, Histories: 2})
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Passed()).To(BeTrue(), "%+v", rep)
		Expect(rep.Balances).To(Equal("customer C1's (given)"))
		// Someone else's balances do not move with the payer's payments.
		rep, err = explore.Run(context.Background(), explore.Config{Conformance: against(""), Customer: "C9", Seed: 21, Histories: 20})
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Violation).NotTo(BeNil())
		Expect(rep.Violation.Broke).To(MatchRegexp(`^customer C9's (USD|EUR) balance moved by 0\.00, want \d+\.\d\d$`))
	})

	It("finds a listener that asks the verifier twice about each delivery", func() {
		// It verifies in the handler and again in its worker: a flood
		// that costs nothing in money, so only no_flood sees it.
		twice := func(h http.Handler, verifyURL string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(raw))
				if strings.HasSuffix(r.URL.Path, "/ipn/paypal") {
					resp, err := http.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), raw...)))
					if err == nil {
						resp.Body.Close()
					}
				}
				h.ServeHTTP(w, r)
			})
		}
		rep, err := explore.Run(context.Background(), explore.Config{Conformance: againstWrapped("", twice), Seed: 11, Histories: 12, MaxShrinks: 100})
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Violation).NotTo(BeNil())
		Expect(rep.Violation.Broke).To(MatchRegexp(`answered VERIFIED or INVALID 2 times, but reached the listener 1 time`))
		Expect(rep.Violation.ShrunkEvents).To(Equal(1), rep.Violation.History)
	})

	It("finds the bug of each mutant it is given, shrinks the history, and the scenario it writes fails the same way when replayed", func() {
		// duplicate-refunds passed the catalog until explore found it (PP-DUPLICATE-REFUND).
		mutants := []string{"credit-pending", "no-duplicate-check", "refund-as-payment", "ignore-reversals", "duplicate-refunds", "paydo-first-status-wins"}
		reports := make([]explore.Report, len(mutants))
		errs := make([]error, len(mutants))
		dir := GinkgoT().TempDir()
		var wg sync.WaitGroup
		for i, m := range mutants {
			cfg := against(m)
			wg.Add(1)
			go func() {
				defer wg.Done()
				reports[i], errs[i] = explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: 5, Histories: 60, MaxShrinks: 60, Out: filepath.Join(dir, m)})
			}()
		}
		wg.Wait()
		for i, m := range mutants {
			Expect(errs[i]).NotTo(HaveOccurred(), m)
			v := reports[i].Violation
			Expect(v).NotTo(BeNil(), "%s: nothing found in %d histories", m, reports[i].Histories)
			AddReportEntry(m, v.Scenario)
			Expect(v.ShrunkEvents).To(BeNumerically("<=", v.Events))
			Expect(v.File).To(BeAnExistingFile())

			sc, err := scenarios.LoadFile(v.File)
			Expect(err).NotTo(HaveOccurred())
			s, err := conformance.NewSession(context.Background(), withBusiness(against(m)))
			Expect(err).NotTo(HaveOccurred())
			res := s.RunScenario(context.Background(), sc, 1, io.Discard)
			s.Close()
			Expect(res.Status).To(Equal(scenarios.Failed), "%s: the shrunk scenario does not fail when replayed", m)
		}
	})
})

var _ = Describe("Exploring a listener of PayPal REST webhooks", func() {
	It("finds the webhook mutants whose histories are rarest, shrinks each, and the scenario it writes fails the same way when replayed", func() {
		// The four that need the rarest draws: an escaped body, a refund
		// before its capture, an attacker's certificate, an approved
		// order (ipnlab's own run of all of them: docs/explore.md).
		names := []string{"webhook-reserialized-body", "webhook-drop-early-refunds", "webhook-cert-from-any-url", "webhook-reject-unknown-type"}
		reports := make([]explore.Report, len(names))
		errs := make([]error, len(names))
		dir := GinkgoT().TempDir()
		var wg sync.WaitGroup
		for i, m := range names {
			cfg := withWebhooks(against(m))
			wg.Add(1)
			go func() {
				defer wg.Done()
				reports[i], errs[i] = explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: 5, Histories: explore.DefaultHistories, MaxShrinks: 30, Out: filepath.Join(dir, m)})
			}()
		}
		wg.Wait()
		for i, m := range names {
			Expect(errs[i]).NotTo(HaveOccurred(), m)
			v := reports[i].Violation
			Expect(v).NotTo(BeNil(), "%s: nothing found in %d histories", m, reports[i].Histories)
			AddReportEntry(m, v.Scenario)
			Expect(v.Scenario).To(ContainSubstring("provider: paypalrest"))
			sc, err := scenarios.LoadFileFor(v.File, explore.Plugins)
			Expect(err).NotTo(HaveOccurred())
			s, err := conformance.NewSession(context.Background(), withBusiness(withWebhooks(against(m))))
			Expect(err).NotTo(HaveOccurred())
			res := s.RunScenario(context.Background(), sc, 1, io.Discard)
			s.Close()
			Expect(res.Status).To(Equal(scenarios.Failed), "%s: the shrunk scenario does not fail when replayed", m)
		}
	})
})

func withBusiness(c conformance.Config) conformance.Config {
	c = c.WithDefaults()
	c.Level = conformance.Business
	return c
}
