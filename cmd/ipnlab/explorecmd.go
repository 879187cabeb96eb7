package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/explore"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// newExplore is ipnlab explore: randomized histories against a model.
func newExplore() *cobra.Command {
	var (
		flags      conformance.Config
		configFile string
		ecfg       explore.Config
		report     string
		junitPath  string
		progress   bool
	)
	c := &cobra.Command{
		Use:   "explore --listener URL --probe URL|sql:... [--seed N] [--histories N | --duration D]",
		Short: "Send randomized payment histories and check the listener's ledger against a model; shrink what breaks it to a scenario",
		Long: `Draw random payment histories (payments, pending ones that clear or fail,
fraud holds, payment reviews, authorizations and captures, full and
partial refunds, chargebacks, Mass Pay, PayDo checkouts and transfers;
delivered in any order, duplicated, as concurrent copies, through
verifier faults, listener outages and clock jumps), run each against the
listener, and compare what its probe says it did (each transaction's
effects, the payer's balances) and how it posted back with what a correct
listener does. The first history that differs is shrunk to the smallest
that still differs and written as a scenario (--out) that ipnlab run
replays. Exit 0: nothing found; 1: a violation; 2: bad input, or the
harness could not run. See docs/explore.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveConfig(cmd, configFile)
			if err != nil {
				return err
			}
			if cfg.Probe == "" {
				return usageError{errors.New("--probe is required: explore checks the listener's ledger")}
			}
			if ecfg.Histories < 0 || ecfg.Duration < 0 || ecfg.MaxEvents < 0 {
				return usageError{errors.New("--histories, --duration and --max-events must not be negative")}
			}
			for _, inv := range ecfg.Ignore {
				if !slices.Contains(explore.Invariants, inv) {
					return usageError{fmt.Errorf("--ignore %q: want one of %s", inv, strings.Join(explore.Invariants, ", "))}
				}
			}
			ecfg.Conformance, ecfg.Seed = cfg, cfg.Seed
			out := cmd.OutOrStdout()
			if progress {
				ecfg.Progress = func(p explore.Progress) {
					if p.Shrinking {
						fmt.Fprint(cmd.ErrOrStderr(), ".")
						return
					}
					if p.Step != "" {
						// A history running long: what it has done, so the
						// wait is explained (the next step is waited on).
						fmt.Fprintf(cmd.ErrOrStderr(), "\rhistories %d, events %d, violations %d; history %d running %.0fs, last step done: %s\x1b[K", p.Histories, p.Events, p.Violations, p.Histories+1, p.Running.Seconds(), p.Step)
						return
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "\rhistories %d, events %d, violations %d\x1b[K", p.Histories, p.Events, p.Violations)
				}
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			if err := ownEmulator(ctx, "explore", cfg); err != nil {
				return usageError{err}
			}
			rep, err := explore.Run(ctx, ecfg)
			if progress {
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if err != nil {
				return exitError{code: exitHarness, msg: err.Error()}
			}
			if report != "" {
				raw, _ := json.MarshalIndent(rep, "", "  ")
				if err := os.WriteFile(report, append(raw, '\n'), 0o644); err != nil {
					return exitError{code: exitHarness, msg: fmt.Sprintf("--report: %v", err)}
				}
			}
			if junitPath != "" {
				if err := rep.WriteJUnit(junitPath); err != nil {
					return exitError{code: exitHarness, msg: fmt.Sprintf("--junit: %v", err)}
				}
			}
			if len(rep.Ignored) > 0 {
				fmt.Fprintf(out, "set aside (--ignore): %s\n", strings.Join(rep.Ignored, ", "))
			}
			if rep.Cut != "" {
				fmt.Fprintf(out, "budget kept: %s\n", rep.Cut)
			}
			switch {
			case len(rep.Violations) > 0:
				for i, v := range rep.Violations {
					fmt.Fprintf(out, "VIOLATION %d of %d (%s), after %.1fs, in the history of seed %d\n  broke: %s\n  shrunk from %d to %d events in %d runs:\n",
						i+1, len(rep.Violations), v.Invariant, v.FoundAfter, v.HistorySeed, v.Broke, v.Events, v.ShrunkEvents, v.Shrinks)
					for _, line := range strings.Split(strings.TrimRight(v.History, "\n"), "\n") {
						fmt.Fprintln(out, "    "+line)
					}
					if v.ShrinkCut {
						fmt.Fprintln(out, "  (shrinking stopped at the --duration budget: the smallest found by then, not the smallest there is)")
					}
					if v.File != "" {
						fmt.Fprintf(out, "  scenario: %s\n  replay:   %s\n", v.File, v.Replay)
					} else {
						fmt.Fprintf(out, "  scenario (--out DIR writes it to a file):\n%s", v.Scenario)
					}
				}
				fmt.Fprintf(out, "%d histories, %d events, %.1fs (seed %d); set a known one aside with --ignore INVARIANT\n", rep.Histories, rep.Events, rep.Seconds, rep.Seed)
				return exitError{code: exitFailure, msg: "the listener broke the model"}
			case rep.Aborted != "":
				return exitError{code: exitHarness, msg: "stopped: " + rep.Aborted}
			case rep.Histories == 0:
				// Nothing judged is not a pass.
				return exitError{code: exitHarness, msg: fmt.Sprintf("no history finished within --duration %s: give it longer", ecfg.Duration)}
			}
			fmt.Fprintf(out, "OK: %d histories, %d events, %.1fs, nothing the model disagrees with (seed %d)\n  balances: %s\n", rep.Histories, rep.Events, rep.Seconds, rep.Seed, rep.Balances)
			return nil
		},
	}
	f := c.Flags()
	settingFlags(f, &flags, &configFile)
	f.IntVar(&ecfg.Histories, "histories", 0, "how many histories (0 with no --duration: 200)")
	f.DurationVar(&ecfg.Duration, "duration", 0, "stop after this long (wall time)")
	f.IntVar(&ecfg.MaxEvents, "max-steps", 40, "most events in one history")
	f.StringVar(&ecfg.Out, "out", "", "write the shrunk scenario of a violation into this directory")
	f.StringVar(&report, "report", "", "write the JSON report here")
	f.StringVar(&junitPath, "junit", "", "write a JUnit XML report here (a case per history)")
	f.StringVar(&ecfg.Customer, "customer-id", "", "the listener's id of the payer (--payer-email), whose balances each history checks (default: learned from the probe's effects)")
	f.BoolVar(&progress, "progress", false, "show histories, events and violations on stderr as they go")
	f.BoolVar(&ecfg.KeepGoing, "keep-going", false, "go on after a violation to the run's bounds, and report each distinct one (by invariant and shrunk history)")
	f.StringSliceVar(&ecfg.Ignore, "ignore", nil, "set an invariant aside, a known gap, so that the others are still checked: "+strings.Join(explore.Invariants, ", ")+" (repeat or comma-separate)")
	return c
}
