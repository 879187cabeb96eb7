package explore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/explore"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
	"github.com/ipnlab/ipnlab/suites/conformance/webhookchecks"
)

// benchRun counts BenchmarkExplore's runs: each explores with seeds of
// its own, so -count N gives N independent samples.
var benchRun atomic.Uint64

// benchSeeds is how many seeds BenchmarkExplore explores each mutant from.
const benchSeeds = 5

// BenchmarkExplore explores every mutant of the gallery from benchSeeds
// seeds each, with explore's default budget (200 histories), and reports
// per mutant (in the log) the seeds it was found on and the median
// histories and seconds to the first violation; the figures are the
// medians over the mutants. On each mutant's first seed the violation is
// shrunk and its scenario replayed against a fresh listener: it must fail
// the same way.
func BenchmarkExplore(b *testing.B) {
	const atOnce = 4
	for b.Loop() {
		run := benchRun.Add(1)
		all := mutants.All()
		type result struct {
			histories, seconds []float64 // of the seeds it was found from
			replayed           string    // the first seed's replay: "" when it failed the same way
			err                error
		}
		results := make([]result, len(all))
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, atOnce)
		for i, m := range all {
			for s := range benchSeeds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					h, secs, replayed, err := exploreMutant(b, string(m.Name), uint64(1000*run+uint64(s)), s == 0)
					mu.Lock()
					defer mu.Unlock()
					r := &results[i]
					if err != nil {
						r.err = err
						return
					}
					if h > 0 {
						r.histories, r.seconds = append(r.histories, float64(h)), append(r.seconds, secs)
					}
					if s == 0 {
						r.replayed = replayed
					}
				}()
			}
		}
		wg.Wait()
		var hs, ss []float64
		everySeed, replays := 0, 0
		var table strings.Builder
		for i, m := range all {
			r := results[i]
			if r.err != nil {
				b.Fatalf("%s: %v", m.Name, r.err)
			}
			fmt.Fprintf(&table, "%-24s found from %d/%d seeds", m.Name, len(r.histories), benchSeeds)
			if len(r.histories) > 0 {
				mh, ms := median(r.histories), median(r.seconds)
				hs, ss = append(hs, mh), append(ss, ms)
				fmt.Fprintf(&table, ", median %.0f histories, %.1fs", mh, ms)
			}
			if len(r.histories) == benchSeeds {
				everySeed++
			}
			if r.replayed == "" {
				replays++
				table.WriteString("; replayed: fails the same way\n")
			} else {
				fmt.Fprintf(&table, "; replayed: %s\n", r.replayed)
			}
		}
		// Printed, not logged: the testing package cuts long logs short.
		fmt.Printf("explore against the mutant gallery (%d seeds each, default budget):\n%s", benchSeeds, table.String())
		b.ReportMetric(float64(len(all)), "mutants")
		b.ReportMetric(float64(everySeed), "mutants_found_every_seed")
		b.ReportMetric(float64(replays), "replays_same_way")
		if len(hs) > 0 {
			b.ReportMetric(median(hs), "median_histories")
			b.ReportMetric(median(ss), "median_seconds")
			b.ReportMetric(slices.Max(hs), "worst_median_histories")
		}
	}
}

// exploreMutant explores mutant from seed with the default budget and
// returns the histories and seconds to the first violation (0 when none
// was found). With replay, the violation is shrunk and its scenario run
// against a fresh listener of the same mutant; replayed says how it did
// not fail the same way ("" when it did).
func exploreMutant(b *testing.B, mutant string, seed uint64, replay bool) (histories int, seconds float64, replayed string, err error) {
	cfg, stop, err := benchListener(b, mutant)
	if err != nil {
		return 0, 0, "", err
	}
	defer stop()
	shrinks := 1 // timing runs: the first violation is what counts
	if replay {
		shrinks = 0 // the default
	}
	rep, err := explore.Run(context.Background(), explore.Config{Conformance: cfg, Seed: seed, MaxShrinks: shrinks})
	if err == nil && rep.Aborted != "" {
		err = fmt.Errorf("aborted: %s", rep.Aborted)
	}
	if err != nil || rep.Violation == nil {
		return 0, 0, "not found", err
	}
	v := rep.Violation
	if !replay {
		return rep.Histories, v.FoundAfter, "", nil
	}
	again, stopAgain, err := benchListener(b, mutant)
	if err != nil {
		return 0, 0, "", err
	}
	defer stopAgain()
	sc, err := scenarios.ParseFor("shrunk.yaml", []byte(v.Scenario), explore.Plugins)
	if err != nil {
		return 0, 0, "", fmt.Errorf("the shrunk scenario does not load: %v", err)
	}
	again.Level = conformance.Business
	s, err := conformance.NewSession(context.Background(), again)
	if err != nil {
		return 0, 0, "", err
	}
	defer s.Close()
	res := s.RunScenario(context.Background(), sc, seed, io.Discard)
	switch {
	case res.Status != scenarios.Failed:
		replayed = fmt.Sprintf("%s, not failed (%s)", res.Status, res.Message)
	case masked(res.Message) != masked(v.Broke):
		replayed = fmt.Sprintf("failed otherwise: %q, found %q", res.Message, v.Broke)
	}
	return rep.Histories, v.FoundAfter, replayed, nil
}

// ids are the transaction ids in a message: each run draws its own.
var ids = regexp.MustCompile(`\b[A-Z0-9]{12,}\b|\b[0-9a-f-]{20,}\b`)

func masked(msg string) string { return ids.ReplaceAllString(msg, "ID") }

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// signingCA is one CA for the process, issuing the REST signing
// certificates the reference listener trusts.
var signingCA = sync.OnceValue(func() *intercept.CA {
	dir, err := os.MkdirTemp("", "ipnlab-explore-ca-")
	if err != nil {
		panic(err)
	}
	ca, err := intercept.LoadOrCreate(dir)
	if err != nil {
		panic(err)
	}
	return ca
})

// withWebhooks is cfg sending PayPal REST webhooks too, to the reference
// listener's endpoint: histories then draw captures, refunds, traps.
func withWebhooks(cfg conformance.Config) conformance.Config {
	url := strings.TrimSuffix(cfg.Listener, listener.PayPalPath) + listener.PayPalRESTPath
	if err := webhookchecks.Configure(&cfg, url, conformance.DefaultWebhookID, signingCA()); err != nil {
		panic(err)
	}
	return cfg
}

// benchListener starts the reference listener built as mutant, sent
// PayPal REST webhooks too when the mutant's bug is about them (a check
// of theirs names it): the other mutants meet the grammar a listener of
// IPN and PayDo meets.
func benchListener(b *testing.B, mutant string) (conformance.Config, func(), error) {
	cfg, stop, err := referenceListener(filepath.Join(b.TempDir(), mutant+".db"), mutant, nil)
	if m, ok := mutants.Lookup(mutant); err == nil && ok && slices.ContainsFunc(m.Targets, func(t string) bool { return strings.HasPrefix(t, "PW-") }) {
		cfg = withWebhooks(cfg)
	}
	return cfg, stop, err
}

// referenceListener starts the reference listener built as mutant ("" for
// the real one), its database at db and its handler wrapped (nil: as it
// is), and returns the conformance settings that reach it and what stops
// it.
func referenceListener(db, mutant string, wrap func(h http.Handler, verifyURL string) http.Handler) (conformance.Config, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return conformance.Config{}, nil, err
	}
	verifyURL := "http://" + ln.Addr().String() + "/cgi-bin/webscr"
	l, err := flawed.New(listener.Config{
		VerifyURL:      verifyURL,
		ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
		Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}},
		DB:        db,
		Verify:    listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20, Timeout: 10 * time.Second},
		PayDo:     listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		PayPalREST: listener.PayPalRESTConfig{WebhookID: conformance.DefaultWebhookID, APIURL: "http://" + ln.Addr().String(),
			CertRoots: signingCA().CertPath()},
		Mutant: mutant, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil {
		err = l.Start(context.Background())
	}
	if err != nil {
		ln.Close()
		return conformance.Config{}, nil, err
	}
	h := l.Handler()
	if wrap != nil {
		h = wrap(h, verifyURL)
	}
	srv := httptest.NewServer(h)
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL+"/ipn/paydo", srv.URL
	cfg.AckTimeout, cfg.PostbackWait, cfg.Settle = 2*time.Second, time.Second, 10*time.Second
	return cfg, func() { srv.Close(); l.Close() }, nil
}
