package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/junit"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/version"
)

// The JSON report says what it is, so that tools reading it can tell
// versions apart.
const (
	ReportAPIVersion = "conformance.ipnlab/v1"
	ReportKind       = "ConformanceReport"
)

// Report is a whole run.
type Report struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Tool is the ipnlab that made it: version and commit.
	Tool           version.Info `json:"tool"`
	Implementation struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	} `json:"implementation"`
	Seed  uint64 `json:"seed"`
	Level Level  `json:"level"`
	// Config is the configuration the run resolved, secrets redacted.
	Config map[string]any `json:"config"`
	// Replay is the command that runs the same checks again with the
	// same messages.
	Replay string `json:"replay,omitempty"`
	// Error is the harness error that stopped the run, or that left
	// nothing judged: the listener was not checked (exit 2).
	Error string `json:"error,omitempty"`
	// Intercept is what the listener had to use under --intercept: the
	// proxy URL and the CA certificate (nil without it).
	Intercept *scenarios.Intercept `json:"intercept,omitempty"`
	// Notices are what to check first when many checks fail for one
	// cause outside the listener's logic (e.g. it never posted back).
	Notices []string `json:"notices,omitempty"`
	Checks  []Result `json:"checks"`
	Summary Summary  `json:"summary"`
	Seconds float64  `json:"seconds"`
	// SimulatedSeconds is the emulator's clock time the checks moved
	// through (PayPal's retry days), next to the wall time they took.
	SimulatedSeconds float64 `json:"simulated_seconds"`
}

// Summary counts results.
type Summary struct {
	Passed  int `json:"passed"`
	Blocked int `json:"blocked"`
	// Failed counts the MUSTs not met; Warnings the SHOULDs (which do
	// not fail the run).
	Failed   int `json:"failed"`
	Warnings int `json:"warnings"`
	Skipped  int `json:"skipped"`
	Disabled int `json:"disabled"`
	Errors   int `json:"errors"`
}

// Conformant reports whether every required check that ran passed.
func (r Report) Conformant() bool {
	for _, c := range r.Checks {
		if c.Required && (c.Status == scenarios.Failed || c.Status == scenarios.Error || c.Status == scenarios.Blocked) {
			return false
		}
	}
	return true
}

// RunAll runs every check in a new session: Parallel at a time, then the
// checks that need the emulator to themselves, one by one. log, if set,
// gets each step (steps of concurrent checks interleave).
func RunAll(ctx context.Context, cfg Config, log io.Writer) (Report, error) {
	start := time.Now()
	s, err := NewSession(ctx, cfg)
	if err != nil {
		return Report{}, err
	}
	defer s.Close()
	rep := newReport(s.cfg, s.Seed())
	rep.Replay = s.cfg.replayRun(s.Seed())
	rep.Intercept = s.env.Intercept
	clockStart := s.emu.Clock().Now()
	checks := Checks()
	rep.Checks = make([]Result, len(checks))
	// Four phases: ordinary checks, Parallel at a time; then the checks
	// that keep the listener busy on purpose (a slow or failing verifier),
	// all together so that their waits overlap instead of stalling the
	// others; then the checks that move the clock, all together through
	// one gate, so that they see the same clock times as when run alone;
	// then the checks that need the emulator to themselves, one by one.
	var ordinary, busy, clocked, alone []int
	for i, c := range checks {
		switch s.phase(c) {
		case phaseAlone:
			alone = append(alone, i)
		case phaseClock:
			clocked = append(clocked, i)
		case phaseBusy:
			busy = append(busy, i)
		default:
			ordinary = append(ordinary, i)
		}
	}
	slices.SortStableFunc(ordinary, func(a, b int) int { return waits(checks[b]) - waits(checks[a]) })
	var logMu sync.Mutex
	var gate *clockGate
	run := func(i int) {
		c := checks[i]
		var w io.Writer
		if log != nil {
			w = &lockedWriter{mu: &logMu, w: log, prefix: c.ID + " "}
		}
		rep.Checks[i] = s.run(ctx, c, w, gate)
	}
	runAll(ordinary, s.cfg.Parallel, run)
	runAll(busy, max(len(busy), 1), run)
	gate = newClockGate(s.emu.Advance)
	for range clocked {
		gate.join()
	}
	runAll(clocked, max(len(clocked), 1), func(i int) {
		defer gate.leave()
		run(i)
	})
	gate = nil
	runAll(alone, 1, run)
	unblockWherePostedBack(rep.Checks, len(s.emu.PayPal().Postbacks("")) > 0)
	blockBySharedFindings(rep.Checks)
	for _, r := range rep.Checks {
		switch r.Status {
		case scenarios.Passed:
			rep.Summary.Passed++
		case scenarios.Blocked:
			rep.Summary.Blocked++
		case scenarios.Failed:
			if r.Warning() {
				rep.Summary.Warnings++
			} else {
				rep.Summary.Failed++
			}
		case scenarios.Skipped:
			rep.Summary.Skipped++
		case scenarios.Disabled:
			rep.Summary.Disabled++
		case scenarios.Error:
			rep.Summary.Errors++
		}
	}
	if n := s.ackedWithoutPostbacks(); n > 0 && rep.Intercept != nil && rep.Intercept.ProxyURL != "" {
		traffic, _ := s.emu.ProxyTraffic(time.Time{})
		rep.Notices = append(rep.Notices, fmt.Sprintf("your listener acknowledged %d PayPal messages but posted none of them back: %s",
			n, rep.Intercept.Story(traffic, 0, "during the run")))
	} else if n > 0 && rep.Intercept != nil && rep.Intercept.TLSURL != "" {
		rep.Notices = append(rep.Notices, fmt.Sprintf("your listener acknowledged %d PayPal messages but posted none of them back to %s: check that its machine maps PayPal's verify hosts to that address (port 443) and that it trusts %s",
			n, rep.Intercept.TLSURL, rep.Intercept.CA))
	} else if n > 0 {
		live := "it may drop sandbox messages (test_ipn=1): if it is configured as in production, run with --live"
		if cfg.Live {
			live = "it may drop messages without test_ipn=1: if it is configured for the sandbox, run without --live"
		}
		rep.Notices = append(rep.Notices, fmt.Sprintf("your listener acknowledged %d PayPal messages but posted none of them back to %s: check that its verify URL is that one, and %s", n, s.VerifyURL(), live))
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.SimulatedSeconds = s.emu.Clock().Now().Sub(clockStart).Seconds()
	if sum := rep.Summary; sum.Passed+sum.Failed+sum.Blocked+sum.Errors == 0 {
		err := fmt.Errorf("%w: %s", ErrNothingRan, strings.Join(rep.notRun(), "; "))
		rep.Error = err.Error()
		return rep, err
	}
	return rep, nil
}

func newReport(cfg Config, seed uint64) Report {
	rep := Report{APIVersion: ReportAPIVersion, Kind: ReportKind, Tool: version.Read(), Seed: seed, Level: cfg.Level, Config: cfg.Resolved()}
	rep.Implementation.Name, rep.Implementation.Version = cfg.Name, cfg.Version
	return rep
}

// HarnessFailure is the report of a run the harness could not make (a
// bad configuration, an unreachable listener, no Docker engine): no check
// judged, the error said, so that CI's report steps find their files and
// show why.
func HarnessFailure(cfg Config, err error) Report {
	rep := newReport(cfg, cfg.Seed)
	rep.Error = err.Error()
	rep.Summary.Errors = 1
	return rep
}

// notRun says why the checks that were not judged did not run, one line
// per reason ("23 check(s): business level needs the listener's probe").
func (r Report) notRun() []string {
	count := map[string]int{}
	var reasons []string
	for _, c := range r.Checks {
		if c.ran() {
			continue
		}
		if count[c.Message] == 0 {
			reasons = append(reasons, c.Message)
		}
		count[c.Message]++
	}
	lines := make([]string, len(reasons))
	for i, why := range reasons {
		lines[i] = fmt.Sprintf("%d check(s): %s", count[why], why)
	}
	return lines
}

// runAll runs f on each index, n at a time.
func runAll(idx []int, n int, f func(int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				f(i)
			}
		}()
	}
	for _, i := range idx {
		work <- i
	}
	close(work)
	wg.Wait()
}

// lockedWriter keeps concurrent checks' lines whole and labelled.
type lockedWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := io.WriteString(l.w, l.prefix); err != nil {
		return 0, err
	}
	return l.w.Write(p)
}

// WriteConsole prints the results grouped by level and provider.
func (r Report) WriteConsole(w io.Writer) {
	fmt.Fprintf(w, "ipnlab conformance: %s (seed %d, level %s)\n", strings.TrimSpace(r.Implementation.Name+" "+r.Implementation.Version), r.Seed, r.Level)
	if in := r.Intercept; in != nil && in.ProxyURL != "" {
		fmt.Fprintf(w, "intercepting PayPal's verify hosts: the listener needs HTTPS_PROXY=%s and to trust %s (ipnlab ca env --proxy %s prints what each stack reads)\n",
			in.ProxyURL, in.CA, in.ProxyURL)
	}
	if in := r.Intercept; in != nil && in.TLSURL != "" {
		fmt.Fprintf(w, "serving PayPal's verify hosts over TLS at %s: a listener without a proxy needs their names mapped to its host and to trust %s\n", in.TLSURL, in.CA)
	}
	for _, n := range r.Notices {
		fmt.Fprintf(w, "\n!! %s\n", n)
	}
	// What ran, by group; what did not, one line per reason after.
	group := ""
	for _, c := range r.Checks {
		if !c.ran() {
			continue
		}
		if g := string(c.Level) + " / " + c.Provider; g != group {
			group = g
			fmt.Fprintf(w, "\n%s\n", g)
		}
		mark := map[scenarios.Status]string{scenarios.Passed: "ok  ", scenarios.Failed: "FAIL", scenarios.Blocked: "BLKD", scenarios.Error: "ERR "}[c.Status]
		if c.Warning() {
			mark = "warn"
		}
		fmt.Fprintf(w, "  %s %-32s %s\n", mark, c.ID, c.Check.Requirement)
		for _, n := range c.NotJudged {
			fmt.Fprintf(w, "       not judged: %s\n", n)
		}
		if c.Status == scenarios.Failed || c.Status == scenarios.Error || c.Status == scenarios.Blocked {
			fmt.Fprintf(w, "       %s\n", c.Message)
			for _, e := range c.Evidence {
				fmt.Fprintf(w, "         %s\n", e)
			}
			if c.Replay != "" {
				fmt.Fprintf(w, "       replay: %s\n", c.Replay)
			}
		}
	}
	if lines := r.notRun(); len(lines) > 0 {
		fmt.Fprintf(w, "\nnot run\n")
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	s := r.Summary
	fmt.Fprintf(w, "\n%d passed, %d failed, %d warnings, %d blocked, %d skipped, %d disabled, %d errors in %.1fs (%s of provider time simulated)\n",
		s.Passed, s.Failed, s.Warnings, s.Blocked, s.Skipped, s.Disabled, s.Errors, r.Seconds, time.Duration(r.SimulatedSeconds*float64(time.Second)).Round(time.Second))
}

// WriteJSON writes the report as JSON.
func (r Report) WriteJSON(path string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// WriteJUnit writes the report as JUnit XML, one suite per level/provider.
func (r Report) WriteJUnit(path string) error {
	out := junit.Suites{Name: "ipnlab conformance", Time: junit.Millis(r.Seconds)}
	index := map[string]int{}
	spans := map[int][2]float64{} // each suite's first start and last end, in seconds of the run
	for _, c := range r.Checks {
		if c.Status == scenarios.Disabled {
			// Not selected (--focus, --label-filter): not part of this
			// run's tests. The JSON report lists them.
			continue
		}
		name := "ipnlab conformance " + string(c.Level) + " " + c.Provider
		i, ok := index[name]
		if !ok {
			i = len(out.Suites)
			index[name] = i
			out.Suites = append(out.Suites, junit.Suite{Name: name})
		}
		jc := junit.Case{Name: c.ID + ": " + c.Check.Requirement, Classname: name, Time: junit.Millis(c.Seconds)}
		text := strings.Join(c.Evidence, "\n")
		for _, n := range c.NotJudged {
			text += "\nnot judged: " + n
		}
		text = strings.TrimPrefix(text, "\n")
		if c.Replay != "" {
			text += "\nreplay: " + c.Replay
		}
		body := &junit.Message{Message: c.Message, Text: text}
		switch c.Status {
		case scenarios.Failed:
			if c.Warning() {
				// A SHOULD not met: the case passed, with the warning
				// beside it (a skip would say it never ran).
				jc.Properties = &junit.Properties{Property: []junit.Property{{Name: "warning", Value: "SHOULD not met"}}}
				jc.SystemOut = "SHOULD not met: " + c.Message + "\n" + body.Text
			} else {
				jc.Failure = body
			}
		case scenarios.Blocked:
			// Not judged, and not a pass: CI shows it as failing, naming
			// the check to fix first.
			jc.Failure = &junit.Message{Message: "blocked by " + strings.Join(c.BlockedBy, ", ") + ": " + c.Message, Text: body.Text}
		case scenarios.Error:
			jc.Error = body
		case scenarios.Skipped:
			jc.Skipped = body
		case scenarios.Passed:
			if len(c.NotJudged) > 0 {
				jc.SystemOut = "passed on what the probe answers; not judged: " + strings.Join(c.NotJudged, "; ")
			}
		}
		out.Suites[i].Add(jc)
		if c.ran() {
			span, seen := spans[i]
			if !seen || c.Started < span[0] {
				span[0] = c.Started
			}
			span[1] = max(span[1], c.Started+c.Seconds)
			spans[i] = span
		}
	}
	if r.Error != "" {
		// The harness error as a case of its own, so that CI shows the
		// run red and says why, whatever ran before it.
		harness := junit.Suite{Name: "ipnlab conformance harness"}
		harness.Add(junit.Case{Name: "harness: the run started and judged checks", Classname: harness.Name,
			Error: &junit.Message{Message: r.Error, Text: r.Error}})
		out.Suites = append(out.Suites, harness)
	}
	// A suite's time is the wall time its checks took, which ran side by
	// side: not the sum of their times.
	for i := range out.Suites {
		if span, ok := spans[i]; ok {
			out.Suites[i].Time = junit.Millis(span[1] - span[0])
		}
	}
	return junit.Write(path, out)
}
