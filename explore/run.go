package explore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// Config shapes an exploration.
type Config struct {
	// Conformance is the listener, its probe and the emulator's settings,
	// as conform takes them (business level: the probe is required).
	Conformance conformance.Config
	// Seed derives every history (0: drawn, and reported).
	Seed uint64
	// Histories and Duration bound the run: whichever comes first (a zero
	// one does not bound; both zero: 200 histories). Duration is a budget
	// the run keeps, shrinking included: no history starts after it, the
	// one running when it ends is cut and not judged, and shrinking stops
	// with the smallest history found so far.
	Histories int
	Duration  time.Duration
	// MaxEvents bounds a history's events (default 40).
	MaxEvents int
	// Customer is the listener's id of the payer (conformance's
	// PayerEmail), whose balances are checked after each history; ""
	// learns it: one payment from the payer is sent first, and the probe
	// names whom it credited.
	Customer string
	// MaxShrinks bounds the runs shrinking may make (default 300).
	MaxShrinks int
	// Out, if set, is the directory the shrunk scenario is written to.
	Out string
	// KeepGoing goes on after a violation, to the run's bounds, and
	// reports each distinct one (by invariant and shrunk history).
	KeepGoing bool
	// Ignore are invariants (Invariants) set aside: a known gap, not
	// checked, so that the others still are.
	Ignore []string
	// Progress, if set, hears after each history.
	Progress func(Progress)
}

// Progress is how far a run is. While a history runs, it is also heard
// every second with what that history has done: the last step its
// scenario finished (Step; the wait is on the next) and for how long it
// has run (Running).
type Progress struct {
	Histories, Events, Violations int
	Shrinking                     bool
	Step                          string
	Running                       time.Duration
}

// Report is a run's outcome.
type Report struct {
	Seed      uint64  `json:"seed"`
	Histories int     `json:"histories"`
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	// Violation is the first violation; Violations all the distinct ones
	// (more than one only with KeepGoing).
	Violation  *Violation  `json:"violation,omitempty"`
	Violations []Violation `json:"violations,omitempty"`
	// Ignored are the invariants the run set aside.
	Ignored []string `json:"ignored,omitempty"`
	Aborted string   `json:"aborted,omitempty"` // why it stopped early (a harness error)
	// Cut says which history the Duration budget cut, where, and that it
	// was not judged ("" when none was).
	Cut    string      `json:"cut,omitempty"`
	Config ReportLimit `json:"limits"`
	// Balances says whose balances were checked, or why none were;
	// Customer is whose ("" when none were).
	Balances string `json:"balances"`
	Customer string `json:"customer,omitempty"`
	// Runs are the histories run, in order (the JUnit report's cases).
	Runs []HistoryRun `json:"-"`
}

// HistoryRun is one history as it ran.
type HistoryRun struct {
	Seed    uint64
	Events  int
	Seconds float64
}

// ReportLimit are the bounds a run had.
type ReportLimit struct {
	Histories int     `json:"histories,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	MaxEvents int     `json:"max_events"`
}

// Violation is a history whose listener ended other than the model says,
// shrunk.
type Violation struct {
	// HistorySeed replays the original history (Generate(HistorySeed, MaxEvents, PayDo)).
	HistorySeed uint64 `json:"history_seed"`
	// Events are the original history's and the shrunk one's.
	Events, ShrunkEvents int `json:"-"`
	// Broke is the invariant the listener broke, as the scenario's failed
	// expectation says it ("transaction X has 2 balance effect(s), want 1").
	Broke string `json:"broke"`
	// Invariant names it (Invariants): what --ignore takes.
	Invariant string `json:"invariant"`
	// History is the shrunk history, one event per line.
	History string `json:"history"`
	// Scenario is the shrunk history as a scenario (YAML), and File where
	// it was written.
	Scenario string `json:"scenario"`
	File     string `json:"file,omitempty"`
	// Replay is the command that replays File against the listener.
	Replay string `json:"replay,omitempty"`
	// Shrinks is how many runs shrinking made.
	Shrinks int `json:"shrinks"`
	// FoundAfter is the wall time from the run's start to the end of the
	// history that broke the model (shrinking not counted), in seconds.
	FoundAfter float64 `json:"found_after_seconds"`
	// ShrinkCut is set when the Duration budget ended shrinking: the
	// history is the smallest found by then, not the smallest there is.
	ShrinkCut bool `json:"shrink_cut,omitempty"`
}

// found are the run's violations (a report written before Violations
// existed has only Violation).
func (r Report) found() []Violation {
	if len(r.Violations) == 0 && r.Violation != nil {
		return []Violation{*r.Violation}
	}
	return r.Violations
}

// Passed reports whether no history broke the model.
func (r Report) Passed() bool { return r.Violation == nil && r.Aborted == "" }

// DefaultHistories bounds a run given no bound: enough that each mutant
// of the gallery is found from every seed BenchmarkExplore tries (the
// rarest need a lifecycle drawn in about one history in fifteen).
const DefaultHistories = 200

// ErrHarness wraps what stops a run that is not the listener's fault.
var ErrHarness = errors.New("explore")

// Run draws histories until one breaks the model (then shrinks it) or the
// bounds are reached.
func Run(ctx context.Context, cfg Config) (rep Report, err error) {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 40
	}
	if cfg.MaxShrinks <= 0 {
		cfg.MaxShrinks = 300
	}
	if cfg.Histories == 0 && cfg.Duration == 0 {
		cfg.Histories = DefaultHistories
	}
	if cfg.Seed == 0 {
		cfg.Seed = generate.NewSeed()
	}
	ignore := map[string]bool{}
	for _, inv := range cfg.Ignore {
		if !slices.Contains(Invariants, inv) {
			return Report{}, fmt.Errorf("%w: --ignore %q: want one of %s", ErrHarness, inv, strings.Join(Invariants, ", "))
		}
		ignore[inv] = true
	}
	cc := cfg.Conformance.WithDefaults()
	cc.Level = conformance.Business
	if cc.Probe == "" {
		return Report{}, fmt.Errorf("%w: a probe is required: explore checks the listener's ledger", ErrHarness)
	}
	s, err := conformance.NewSession(ctx, cc)
	if err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrHarness, err)
	}
	defer s.Close()
	prog := &progress{report: cfg.Progress}
	runs := &runner{s: s, seed: cfg.Seed, customer: cfg.Customer, ignore: ignore, log: prog}
	rep = Report{Seed: cfg.Seed, Config: ReportLimit{Histories: cfg.Histories, Seconds: cfg.Duration.Seconds(), MaxEvents: cfg.MaxEvents}, Ignored: cfg.Ignore}
	seen := map[string]bool{} // distinct violations: invariant and shrunk shape
	start := time.Now()
	defer func() { rep.Seconds = time.Since(start).Seconds() }()
	// The budget: what runs after it is cut, and judged by no one.
	budget, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Duration > 0 {
		budget, cancel = context.WithDeadline(ctx, start.Add(cfg.Duration))
	}
	defer cancel()
	defer prog.watch()()
	rep.Balances, err = runs.payer(budget)
	if budget.Err() != nil && ctx.Err() == nil {
		rep.Balances, rep.Cut = "", fmt.Sprintf("the payment that learns the payer's id was cut at the --duration budget (%s): no history ran", cfg.Duration)
		return rep, nil
	}
	if err != nil {
		rep.Aborted = err.Error()
		return rep, nil
	}
	rep.Customer = runs.customer
	for i := 0; cfg.Histories == 0 || i < cfg.Histories; i++ {
		if budget.Err() != nil && ctx.Err() == nil {
			break
		}
		if err := ctx.Err(); err != nil {
			rep.Aborted = err.Error()
			return rep, nil
		}
		seed := generate.DeriveSeed(cfg.Seed, fmt.Sprint("history-", i))
		h, err := GenerateFor(seed, cfg.MaxEvents, Grammar{PayDo: cc.PayDoListener != "", Orders: cc.Orders != "", Webhooks: cc.WebhookListener != ""})
		if err != nil {
			return rep, fmt.Errorf("%w: history %d: %v", ErrHarness, i, err)
		}
		if cc.Orders != "" {
			// An order shop (--orders): every payment names an order of
			// its own; a payer's Mass Pay top-up names none and credits a
			// customer, which an order shop does not keep.
			h = withoutTopUps(h)
			if len(h.Events) == 0 {
				continue
			}
		}
		prog.begin(rep.Histories+1, rep.Events, len(rep.Violations))
		res, err := runs.run(budget, h)
		if budget.Err() != nil && ctx.Err() == nil {
			// Cut: a wait the deadline ended may have judged too early.
			rep.Cut = fmt.Sprintf("history %d (seed %d) was cut at the --duration budget (%s) after %.1fs of it (last step done: %s): not judged",
				rep.Histories+1, seed, cfg.Duration, res.Duration.Seconds(), cmp.Or(prog.lastStep(), "none"))
			break
		}
		rep.Histories++
		rep.Events += len(h.Events)
		rep.Runs = append(rep.Runs, HistoryRun{Seed: seed, Events: len(h.Events), Seconds: res.Duration.Seconds()})
		if err != nil {
			rep.Aborted = err.Error()
			return rep, nil
		}
		prog.end(rep.Histories, rep.Events, len(rep.Violations))
		if res.Status != scenarios.Failed {
			continue
		}
		found := time.Since(start).Seconds()
		v := shrink(budget, runs, h, res.Message, cfg)
		v.ShrinkCut = budget.Err() != nil && ctx.Err() == nil
		v.FoundAfter = found
		v.HistorySeed, v.Events = seed, len(h.Events)
		key := v.Invariant + "|" + digits.ReplaceAllString(v.History, "#")
		if seen[key] {
			continue // the same finding again
		}
		seen[key] = true
		if cfg.Out != "" {
			if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
				return rep, fmt.Errorf("%w: %v", ErrHarness, err)
			}
			v.File = filepath.Join(cfg.Out, fmt.Sprintf("explore-%d.yaml", seed))
			if err := os.WriteFile(v.File, []byte(v.Scenario), 0o644); err != nil {
				return rep, fmt.Errorf("%w: %v", ErrHarness, err)
			}
			// Every setting the run had (probe map, intercept, the
			// emulator's address ...), the password left out.
			v.Replay = s.ReplayScenario(v.File, cfg.Seed)
		}
		rep.Violations = append(rep.Violations, v)
		rep.Violation = &rep.Violations[0]
		prog.end(rep.Histories, rep.Events, len(rep.Violations))
		if !cfg.KeepGoing {
			return rep, nil
		}
	}
	return rep, nil
}

// runner runs histories on one session, each run with a seed of its own
// (fresh transaction ids).
type runner struct {
	s      *conformance.Session
	seed   uint64
	n      int
	ignore map[string]bool // invariants set aside
	// lastInvariant is the invariant the last failed run broke.
	lastInvariant string
	// customer is the payer's id at the listener, whose balances each
	// history checks ("": none's).
	customer string
	// log hears each history's steps as they begin.
	log io.Writer
}

// payerProbe is one payment from the payer: whom the listener credits.
const payerProbe = `name: explore-payer
description: one payment from the payer, to learn the listener's id of it
provider: paypal
steps:
  - send: {as: pay, kind: web_accept, params: {gross: "1.00", currency: USD}}
  - expect: {txn: "${pay.txn_id}", effects: 1}
`

// payer settles whose balances the histories check: the given customer,
// or the one a payment from the payer credits. It says which for the
// report, or why none; an error is the harness's.
func (r *runner) payer(ctx context.Context) (string, error) {
	if _, ok := scenarios.BalancesOf(r.s.Probe()); !ok {
		r.customer = ""
		return "not checked: the probe does not read customers' balances (its SQL probe map has no balances query)", nil
	}
	if r.customer != "" {
		return fmt.Sprintf("customer %s's (given)", r.customer), nil
	}
	sc, err := scenarios.Parse("explore-payer.yaml", []byte(payerProbe))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrHarness, err)
	}
	res := r.s.RunScenario(ctx, sc, generate.DeriveSeed(r.seed, "payer"), io.Discard)
	switch {
	case res.Status == scenarios.Error:
		return "", fmt.Errorf("%w: a payment from the payer: %s", ErrHarness, res.Message)
	case res.Status != scenarios.Passed || len(res.Customers) != 1:
		// The histories will say what is wrong with payments; balances
		// need to know whose they are.
		return fmt.Sprintf("not checked: a payment from the payer did not credit one customer (%s; customers named: %v)", res.Message, res.Customers), nil
	}
	r.customer = res.Customers[0]
	return fmt.Sprintf("customer %s's (learned from a payment from the payer)", r.customer), nil
}

// run runs h as a scenario; an error is the harness's (a scenario that
// does not load, a step the emulator refused).
func (r *runner) run(ctx context.Context, h History) (scenarios.Result, error) {
	text := ScenarioIgnoring(h, fmt.Sprintf("explore-%d", h.Seed), "a randomized history", r.customer, r.ignore)
	sc, err := scenarios.ParseFor(fmt.Sprintf("explore-%d.yaml", h.Seed), []byte(text), Plugins)
	if err != nil {
		return scenarios.Result{}, fmt.Errorf("%w: history %d does not load: %v\n%s", ErrHarness, h.Seed, err, text)
	}
	r.n++
	log := io.Writer(io.Discard)
	if r.log != nil {
		log = r.log
	}
	res := r.s.RunScenario(ctx, sc, generate.DeriveSeed(r.seed, fmt.Sprint("run-", r.n)), log)
	if res.Status == scenarios.Error {
		return res, fmt.Errorf("%w: history %d: %s", ErrHarness, h.Seed, res.Message)
	}
	r.lastInvariant = invariantOf(sc, res)
	return res, nil
}

// invariantOf names the invariant a failed run broke, from the
// expectation that failed.
func invariantOf(sc *scenarios.Scenario, res scenarios.Result) string {
	for _, st := range sc.Steps {
		e, ok := st.(*scenarios.Expect)
		if !ok || st.Line() != res.Step {
			continue
		}
		switch {
		case e.Acked != nil:
			return InvAcked
		case e.AnyVerified:
			return InvVerified
		case e.NoFlood:
			return InvNoFlood
		case e.Customer != "":
			return InvBalances
		case e.Order != "":
			return InvOrders
		case e.PayerName != "" && strings.Contains(res.Message, "payer name"):
			return InvPayerName
		}
		return InvEffects
	}
	return ""
}

// Plugins are the plug-in providers a history's scenario may send with:
// PayPal's REST webhooks.
var Plugins = []string{paypalrest.Provider}

// digits are what differs between two runs of the same finding.
var digits = regexp.MustCompile(`[0-9]+`)

// shrink makes h smaller while it still fails: whole transactions first,
// then single events, then shorter clock jumps, then copies and faults,
// as long as runs are left.
func shrink(ctx context.Context, r *runner, h History, broke string, cfg Config) Violation {
	runs := 0
	invariant := r.lastInvariant // shrinking keeps to the finding it shrinks
	// A candidate counts as failing when it fails twice, each run with
	// fresh ids: a listener's workers may take two messages sent one
	// after the other in either order, so a failure can hang on timing,
	// and the history kept must fail when it is replayed.
	fails := func(c History) (bool, string) {
		var msg string
		for range 2 {
			if runs >= cfg.MaxShrinks || ctx.Err() != nil {
				return false, ""
			}
			runs++
			if cfg.Progress != nil {
				cfg.Progress(Progress{Shrinking: true})
			}
			res, err := r.run(ctx, c)
			if err != nil || ctx.Err() != nil || res.Status != scenarios.Failed || r.lastInvariant != invariant {
				return false, "" // fixed, or another finding
			}
			msg = res.Message
		}
		return true, msg
	}
	for changed := true; changed; {
		changed = false
		for fi := len(h.Families) - 1; fi >= 0 && len(h.Families) > 1; fi-- {
			if c := withoutFamily(h, fi); len(c.Events) > 0 {
				if ok, msg := fails(c); ok {
					h, broke, changed = c, msg, true
				}
			}
		}
		for i := len(h.Events) - 1; i >= 0; i-- {
			c := h
			c.Events = append(append([]Event(nil), h.Events[:i]...), h.Events[i+1:]...)
			if ok, msg := fails(c); ok {
				h, broke, changed = c, msg, true
			}
		}
		for i, e := range h.Events {
			// A shorter clock jump: the delay that matters is the
			// smallest that still breaks it.
			if shorter, ok := shorterJump[e.By]; ok && e.Kind == Advance {
				c := h
				c.Events = append([]Event(nil), h.Events...)
				c.Events[i].By = shorter
				if ok, msg := fails(c); ok {
					h, broke, changed = c, msg, true
				}
			}
		}
		for i, e := range h.Events {
			if e.Copies > 1 || e.Fault != nil {
				c := h
				c.Events = append([]Event(nil), h.Events...)
				c.Events[i].Copies, c.Events[i].Fault = 0, nil
				if ok, msg := fails(c); ok {
					h, broke, changed = c, msg, true
				}
			}
		}
	}
	desc := "found by ipnlab explore (seed of the history " + fmt.Sprint(h.Seed) + "); broke: " + broke
	text := fmt.Sprintf("# Found by ipnlab explore and shrunk: replay with ipnlab run FILE --listener ... --probe ...\n# The listener broke: %s\n# History:\n#   %s\n",
		broke, strings.ReplaceAll(strings.TrimSpace(h.String()), "\n", "\n#   ")) + ScenarioIgnoring(h, fmt.Sprintf("explore-%d", h.Seed), desc, r.customer, r.ignore)
	return Violation{Broke: broke, Invariant: invariant, History: h.String(), Scenario: text, ShrunkEvents: len(h.Events), Shrinks: runs}
}

// shorterJump is the next shorter clock jump shrinking tries.
var shorterJump = map[string]string{"4d": "1d", "1d": "1h"}

// withoutTopUps is h without its Mass Pay top-ups.
func withoutTopUps(h History) History {
	for fi := len(h.Families) - 1; fi >= 0; fi-- {
		if h.Families[fi].MassPay == "topup" {
			h = withoutFamily(h, fi)
		}
	}
	return h
}

// withoutFamily is h without family fi and its events.
func withoutFamily(h History, fi int) History {
	c := History{Seed: h.Seed}
	c.Families = append(append([]Family(nil), h.Families[:fi]...), h.Families[fi+1:]...)
	for _, e := range h.Events {
		switch {
		case e.Kind == Send && e.Family == fi:
			continue
		case e.Kind == Send && e.Family > fi:
			e.Family--
		}
		c.Events = append(c.Events, e)
	}
	return c
}
