package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
	"github.com/ipnlab/ipnlab/suites/conformance/webhookchecks"
)

// runOpts shape one run against the reference listener (or a mutant).
type runOpts struct {
	mutant, dir, addr, focus string
	seed                     uint64
	parallel                 int
}

// runReference starts a fresh reference listener on o.addr and runs the
// suite against it.
func runReference(o runOpts) (conformance.Report, error) {
	ln := freeListenerErr()
	l, err := flawed.New(listener.Config{
		VerifyURL:      "http://" + ln.Addr().String() + "/cgi-bin/webscr",
		ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
		Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}},
		DB:        filepath.Join(o.dir, fmt.Sprintf("%s-%d-%d.db", o.mutant, o.seed, time.Now().UnixNano())),
		Verify:    listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20, Timeout: 10 * time.Second},
		PayDo:     listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}},
		PayPalREST: listener.PayPalRESTConfig{WebhookID: labWebhookID, APIURL: "http://" + ln.Addr().String(),
			CertRoots: labCA().CertPath()},
		Mutant: o.mutant, Logger: quietLogger(),
	})
	if err != nil {
		return conformance.Report{}, err
	}
	if err := l.Start(context.Background()); err != nil {
		return conformance.Report{}, err
	}
	lln, err := net.Listen("tcp", o.addr)
	if err != nil {
		l.Close()
		return conformance.Report{}, err
	}
	srv := httptest.NewUnstartedServer(l.Handler())
	srv.Listener = lln
	srv.Start()
	defer func() { srv.Close(); l.Close() }()
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, srv.URL+"/ipn/paypal", srv.URL+"/ipn/paydo", srv.URL
	cfg.AckTimeout, cfg.PostbackWait, cfg.Settle, cfg.Name, cfg.Seed = time.Second, time.Second, 5*time.Second, "mutant "+o.mutant, o.seed
	cfg.Focus = o.focus
	if err := webhookchecks.Configure(&cfg, srv.URL+listener.PayPalRESTPath, labWebhookID, labCA()); err != nil {
		return conformance.Report{}, err
	}
	if o.parallel > 0 {
		cfg.Parallel = o.parallel
	}
	return conformance.RunAll(context.Background(), cfg, nil)
}

// labWebhookID is the webhook id the reference listener verifies REST
// webhooks with, and the emulator subscribes it under.
const labWebhookID = "WH-IPNLAB-CONFORMANCE"

// labCA is one CA for the process, issuing the REST signing
// certificates the reference listener checks (its cert_roots).
var labCA = sync.OnceValue(func() *intercept.CA {
	dir, err := os.MkdirTemp("", "ipnlab-conformance-ca-")
	if err != nil {
		panic(err)
	}
	ca, err := intercept.LoadOrCreate(dir)
	if err != nil {
		panic(err)
	}
	return ca
})

var _ = AfterSuite(func() { _ = os.RemoveAll(labCA().Dir()) })

// sweepSeeds is how many seeds a verdict must hold for. Under the race
// detector one seed shows the races; make test runs the full sweep
// without it as well.
func sweepSeeds() int {
	if raceDetector {
		return 1
	}
	return 20
}

// sweepShare shapes what a sweep runs against a listener with a known bug:
// seed #0 runs the whole catalog; seed #i the checks that name the bug
// plus every sweepShare-th other check, starting at i, so every other
// check still meets every bug on several seeds while a sweep costs about
// a third of running everything every time. A check's messages derive
// from the run's seed and its own ID alone, so its verdict in part of
// the catalog is its verdict in the whole ("A run's seed" holds that).
const sweepShare = 4

// sweepSelection is the focus of seed #i for a listener whose bug the
// targets name ("" runs everything), and the checks it selects.
func sweepSelection(i int, targets []string) (focus string, selected map[string]bool) {
	selected = map[string]bool{}
	for j, c := range conformance.Checks() {
		if i == 0 || j%sweepShare == i%sweepShare || slices.Contains(targets, c.ID) {
			selected[c.ID] = true
		}
	}
	if i == 0 {
		return "", selected
	}
	return strings.Join(slices.Sorted(maps.Keys(selected)), ","), selected
}

// only is the part of ids that sel selects.
func only(ids []string, sel map[string]bool) []string {
	var out []string
	for _, id := range ids {
		if sel[id] {
			out = append(out, id)
		}
	}
	return out
}

// sweepParallel is how many runs a sweep has going at once: fewer under
// the race detector, which makes each several times heavier. At 12, two
// cores were saturated enough that a listener verifying inside its handler
// (ack-after-verify) missed the 1 s ack window on checks it passes, which
// made its verdicts depend on the machine's load.
func sweepParallel() int {
	if raceDetector {
		return 6
	}
	return 48
}

// verdicts is one run's outcome: the checks that failed (or could not
// run) and those blocked by them.
type verdicts struct {
	failed, blocked []string
	err             error
	report          conformance.Report
}

func verdictsOf(rep conformance.Report, err error) verdicts {
	v := verdicts{err: err}
	for _, r := range rep.Checks {
		switch r.Status {
		case scenarios.Failed, scenarios.Error:
			v.failed = append(v.failed, r.ID)
		case scenarios.Blocked:
			v.blocked = append(v.blocked, r.ID)
		}
	}
	sort.Strings(v.failed)
	sort.Strings(v.blocked)
	return v
}

// sweep runs f for every (name, seed), many at a time (the runs wait on
// listeners and the wall clock far more than on the CPU), and returns the verdicts by name, in
// seed order.
func sweep(names []string, seeds int, f func(name string, i int, seed uint64) verdicts) map[string][]verdicts {
	out := map[string][]verdicts{}
	for _, n := range names {
		out[n] = make([]verdicts, seeds)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, sweepParallel())
	for s := range seeds {
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				out[n][s] = f(n, s, uint64(1000+s*7919))
			}()
		}
	}
	wg.Wait()
	return out
}

var _ = Describe("The mutant gallery", func() {
	It("fails, for every seed, exactly the checks that name each mutant's bug, and the reference listener none", func() {
		dir := memoryDir()
		names := []string{""}
		for _, m := range mutants.All() {
			names = append(names, string(m.Name))
		}
		seeds := sweepSeeds()
		selections := map[string][]map[string]bool{}
		for _, n := range names {
			selections[n] = make([]map[string]bool, seeds)
		}
		results := sweep(names, seeds, func(name string, i int, seed uint64) verdicts {
			o := runOpts{mutant: name, dir: dir, seed: seed, addr: "127.0.0.1:0"}
			if name != "" {
				// The reference listener meets the whole catalog on every seed.
				m, _ := mutants.Lookup(name)
				o.focus, selections[name][i] = sweepSelection(i, m.Targets)
			}
			return verdictsOf(runReference(o))
		})

		var table strings.Builder
		for _, m := range mutants.All() {
			name := string(m.Name)
			fmt.Fprintf(&table, "%-24s %s", name, strings.Join(results[name][0].failed, " "))
			if b := results[name][0].blocked; len(b) > 0 {
				fmt.Fprintf(&table, "  (blocked: %s)", strings.Join(b, " "))
			}
			table.WriteString("\n")
		}
		AddReportEntry(fmt.Sprintf("mutant verdicts over %d seeds (mutant, failing checks, blocked)", seeds), table.String(), ReportEntryVisibilityAlways)

		for _, v := range results[""] {
			Expect(v.err).NotTo(HaveOccurred())
			Expect(v.failed).To(BeEmpty(), "the reference listener failed")
			Expect(v.blocked).To(BeEmpty(), "the reference listener had blocked checks")
		}
		for _, m := range mutants.All() {
			want := slices.Sorted(slices.Values(m.Targets))
			for _, t := range want {
				_, known := conformance.Lookup(t)
				Expect(known).To(BeTrue(), "%s targets unknown check %s", m.Name, t)
			}
			name := string(m.Name)
			for i, v := range results[name] {
				Expect(v.err).NotTo(HaveOccurred(), name)
				Expect(v.failed).To(Equal(want), "%s, seed #%d: the failing checks must be exactly those that name its bug", name, i)
				Expect(v.blocked).To(Equal(only(results[name][0].blocked, selections[name][i])), "%s, seed #%d: blocked checks moved with the seed", name, i)
			}
		}
	})

	It("keeps the gallery in docs/conformance.md current", func() {
		doc, err := os.ReadFile("../../docs/conformance.md")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(doc)).To(ContainSubstring(conformance.Gallery()), "regenerate with: make docs")
	})
})

// withoutTimings is a report as JSON with its wall-clock figures zeroed.
func withoutTimings(rep conformance.Report) string {
	rep.Seconds = 0
	for i := range rep.Checks {
		rep.Checks[i] = untimed(rep.Checks[i])
	}
	raw, err := json.MarshalIndent(rep, "", " ")
	Expect(err).NotTo(HaveOccurred())
	return string(raw)
}

// untimed is a result without what wall time decides: its timings, and
// the interleaving of a race's copies (when each was answered and posted
// back, in milliseconds).
func untimed(c conformance.Result) conformance.Result {
	c.Seconds, c.Started = 0, 0
	c.Evidence = slices.DeleteFunc(slices.Clone(c.Evidence), func(line string) bool { return interleaving.MatchString(line) })
	return c
}

var interleaving = regexp.MustCompile(`^  \+[0-9.]+ ms `)

var _ = Describe("A run's seed", func() {
	It("gives the same report, but for timings, twice in a row, and the same verdict and evidence to a check run one at a time or alone", func() {
		dir := GinkgoT().TempDir()
		type runs struct {
			first, again, inTurn conformance.Report
			alone                map[string][]verdicts
			err                  error
		}
		mutants := []string{"", "plus-space", "ignored-500", "implicit-200"}
		got := make([]runs, len(mutants))
		var wg sync.WaitGroup
		for i, mutant := range mutants {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := &got[i]
				// The three runs at once, each on ports of its own:
				// reports are compared with the addresses left out.
				o := runOpts{mutant: mutant, dir: dir, addr: "127.0.0.1:0", seed: 4242}
				var runs sync.WaitGroup
				var errs [3]error
				runs.Go(func() { r.first, errs[0] = runReference(o) })
				runs.Go(func() { r.again, errs[1] = runReference(o) })
				runs.Go(func() {
					one := o
					one.parallel = 1
					r.inTurn, errs[2] = runReference(one)
				})
				runs.Wait()
				if r.err = errors.Join(errs[:]...); r.err != nil {
					return
				}
				// Each check that did not pass, alone (--focus), all at
				// once on ports of their own: replay lines are compared
				// with the address left out.
				var judged []string
				for _, c := range r.first.Checks {
					if c.Status != scenarios.Passed && c.Status != scenarios.Disabled && c.Status != scenarios.Skipped {
						judged = append(judged, c.ID)
					}
				}
				r.alone = sweep(judged, 1, func(id string, _ int, _ uint64) verdicts {
					rep, err := runReference(runOpts{mutant: mutant, dir: dir, addr: "127.0.0.1:0", seed: 4242, focus: id})
					return verdicts{err: err, report: rep}
				})
			}()
		}
		wg.Wait()
		for i, mutant := range mutants {
			r := got[i]
			Expect(r.err).NotTo(HaveOccurred(), mutant)
			Expect(addressless(withoutTimings(r.again))).To(Equal(addressless(withoutTimings(r.first))), "mutant %q: the same seed gave another report", mutant)
			for _, c := range r.first.Checks {
				c = untimed(c)
				c.Replay = addressless(c.Replay)
				inTurn := untimed(byID(r.inTurn)[c.ID])
				inTurn.Replay = addressless(inTurn.Replay)
				Expect(inTurn).To(Equal(c), "mutant %q: %s with --parallel 1 differs", mutant, c.ID)
				if c.Status == scenarios.Passed || c.Status == scenarios.Disabled || c.Status == scenarios.Skipped {
					continue
				}
				Expect(r.alone[c.ID][0].err).NotTo(HaveOccurred())
				alone := untimed(byID(r.alone[c.ID][0].report)[c.ID])
				alone.Replay = addressless(alone.Replay)
				Expect(alone).To(Equal(c), "mutant %q: %s run alone (--focus) differs", mutant, c.ID)
			}
		}
	})
})

// memoryDir is a temporary directory in memory when the machine has one
// (/dev/shm): hundreds of listener databases sync every commit, and the
// sweeps measure verdicts, not the disk.
func memoryDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "ipnlab-sweep-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		return dir
	}
	return GinkgoT().TempDir()
}

var anyAddress = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// addressless is s with every loopback address written ADDR: runs on
// ports of their own compare equal.
func addressless(s string) string { return anyAddress.ReplaceAllString(s, "ADDR") }
