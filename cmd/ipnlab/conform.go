package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ipnlab/ipnlab/containers/undertest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
	"github.com/ipnlab/ipnlab/suites/conformance"
	// The PW- checks (PayPal REST webhooks), with --webhook-listener.
	_ "github.com/ipnlab/ipnlab/suites/conformance/webhookchecks"
)

// conformFlags binds the whole conformance config to flags; flags given
// win over IPNLAB_* variables, which win over --config.
func conformFlags(f *pflag.FlagSet, c *conformance.Config, configFile *string) {
	settingFlags(f, c, configFile)
	suiteFlags(f, c)
}

// settingFlags bind what one scenario run needs too (ipnlab run): the
// listener, the emulator, the merchant and the waits.
func settingFlags(f *pflag.FlagSet, c *conformance.Config, configFile *string) {
	d := conformance.Defaults()
	f.StringVar(configFile, "config", "", "YAML config (see docs/conformance.md)")
	f.StringVar(&c.Listener, "listener", "", "the listener's PayPal endpoint, e.g. http://127.0.0.1:8701/ipn/paypal")
	f.StringVar(&c.PayDoListener, "paydo-listener", "", "the listener's PayDo endpoint (enables the PayDo checks)")
	f.StringVar(&c.WebhookListener, "webhook-listener", "", "the listener's PayPal REST webhook endpoint (enables the PW- checks): its PayPal API URL must be the emulator's address, and it must trust ipnlab's CA (the ca: line of ipnlab ca) for the signing certificates")
	f.StringVar(&c.WebhookID, "webhook-id", d.WebhookID, "the webhook id the listener verifies REST webhooks with: the emulator subscribes --webhook-listener under it")
	f.StringVar(&c.Probe, "probe", "", "base URL of the listener's probe API (enables business checks), or sql:DSN to read its database with --probe-map (sql:sqlite:PATH, sql:postgres://..., sql:mysql://...)")
	f.StringVar(&c.ProbeMap, "probe-map", "", "with --probe sql:DSN: the YAML map of the SQL that answers the business checks (docs/probe.md)")
	f.StringVar(&c.Orders, "orders", "", "a shop that keeps orders: where the orders it pays come from: cmd:COMMAND, an http(s) URL, or sql (the probe map's open_order query); every payment then names a new order (docs/probe.md)")
	f.StringVar(&c.EmulatorAddr, "emulator-addr", d.EmulatorAddr, "where the emulator listens: the listener's verify URL must be http://ADDR/cgi-bin/webscr")
	f.StringVar(&c.APIToken, "api-token", "", apiTokenHelp)
	f.StringVar((*string)(&c.Level), "level", "", "protocol or business (default: business when --probe is given)")
	f.StringVar(&c.ReceiverEmail, "receiver-email", d.ReceiverEmail, "the merchant's receiver_email the listener accepts")
	f.StringVar(&c.ReceiverID, "receiver-id", d.ReceiverID, "the merchant's receiver_id")
	f.StringVar(&c.PayerEmail, "payer-email", d.PayerEmail, "a customer email the listener knows")
	f.StringVar(&c.UnacceptedCurrency, "unaccepted-currency", d.UnacceptedCurrency, "a currency the listener refuses")
	f.StringVar(&c.PayDoSource, "paydo-source", d.PayDoSource, "the local address PayDo notifications come from (allowlisted)")
	f.StringVar(&c.StrangerSource, "stranger-source", d.StrangerSource, "a local address the PayDo allowlist must refuse")
	f.StringVar(&c.PayDoToken, "paydo-token", d.PayDoToken, "the token PayDo's status lookup wants from the listener (Authorization: Bearer)")
	f.DurationVar(&c.AckTimeout, "ack-timeout", d.AckTimeout, "PayPal's ack window")
	f.DurationVar(&c.Settle, "settle", d.Settle, "longest wait for the listener to finish processing")
	f.DurationVar(&c.PostbackWait, "postback-wait", d.PostbackWait, "longest wait for a postback")
	f.Uint64Var(&c.Seed, "seed", 0, "seed for the generated messages (0: drawn, printed); the same seed sends every check the same messages")
	f.BoolVar(&c.Live, "live", false, "send messages as production does, without test_ipn=1 (for a listener configured as in production)")
	f.BoolVar(&c.Intercept, "intercept", false, interceptHelp)
	f.StringVar(&c.TLSAddr, "tls-addr", d.TLSAddr, "also serve the verifier over TLS here, with a certificate from ipnlab's CA for PayPal's hosts: the route without a proxy, for a client that reads no proxy variable (127.0.0.1:443, PayPal's host mapped to 127.0.0.1; --listener-image maps it)")
}

// suiteFlags bind what only a suite run has: which checks, the reports.
func suiteFlags(f *pflag.FlagSet, c *conformance.Config) {
	d := conformance.Defaults()
	f.StringVar(&c.LabelFilter, "label-filter", "", `labels a check must have, "!label" to exclude (e.g. "paypal,!slow")`)
	f.StringVar(&c.Focus, "focus", "", "run only checks whose ID contains one of these (comma-separated)")
	f.StringVar(&c.Name, "name", d.Name, "the listener's name in reports")
	f.StringVar(&c.Version, "listener-version", "", "the listener's version in reports")
	// --version was this flag's name; it now means ipnlab's own version.
	renamed(f, "version", "listener-version")
	f.Lookup("version").Deprecated = "it names the listener's version: use --listener-version (ipnlab version prints ipnlab's)"
	f.StringVar(&c.JUnit, "junit", "", "write a JUnit XML report here")
	f.StringVar(&c.Report, "report", "", "write a JSON report here")
	f.BoolVarP(&c.Verbose, "verbose", "v", false, "print every scenario step")
	f.IntVar(&c.Parallel, "parallel", d.Parallel, "checks run at once (those that need the emulator alone run after); 0: 4, or 8 through a SQL probe, whose checks mostly wait")
}

// resolveConfig applies the precedence: defaults < file < env < flags.
// The flags given are replayed onto the config through a flag set bound
// to it by conformFlags itself, so no option can be left out.
func resolveConfig(cmd *cobra.Command, configFile string) (conformance.Config, error) {
	cfg := conformance.Defaults()
	onto := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	var ignored string
	conformFlags(onto, &cfg, &ignored) // the flags' defaults are Defaults()
	// On a bad file or variable, the flags are still applied: the report
	// paths they give must receive the error.
	var errs []error
	if configFile != "" {
		errs = append(errs, cfg.LoadFile(configFile))
	}
	if errs = append(errs, cfg.LoadEnv(os.LookupEnv)); errors.Join(errs...) != nil {
		cfg = conformance.Defaults()
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		dst := onto.Lookup(f.Name)
		if !f.Changed || f.Deprecated != "" || dst == nil {
			return // not given, an alias (its flag reads as changed), or not a config option
		}
		if err := dst.Value.Set(f.Value.String()); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", f.Name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, usageError{err}
	}
	cfg.Command = invokedAs()
	return cfg, nil
}

// invokedAs is how replay lines name this binary, so that they run as
// printed: "ipnlab" when that is what the PATH finds, else the path it
// was run as (./bin/ipnlab, as the README builds it).
func invokedAs() string {
	self, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	self, _ = filepath.EvalSymlinks(self)
	if onPath, err := exec.LookPath("ipnlab"); err == nil {
		if p, err := filepath.EvalSymlinks(onPath); err == nil {
			if abs, err := filepath.Abs(p); err == nil && abs == self {
				return "ipnlab"
			}
		}
	}
	if strings.ContainsRune(os.Args[0], filepath.Separator) {
		return os.Args[0]
	}
	return self
}

func newConform() *cobra.Command {
	var (
		flags      conformance.Config
		configFile string
		printCat   bool
		printGal   bool
		img        imageFlags
	)
	c := &cobra.Command{
		Use:   "conform",
		Short: "Run the conformance suite against a listener (exit 0 conformant, 1 a check failed, 2 the harness could not run)",
		Long: `Run the conformance suite against your listener. ipnlab starts an emulator on
--emulator-addr; configure your listener's verify URL as
http://EMULATOR-ADDR/cgi-bin/webscr. Protocol checks need nothing else;
business checks read your listener's probe API (--probe, docs/probe.md).
Configuration: flags, then IPNLAB_* variables, then --config YAML.

A listener that hard-codes PayPal's verify URL needs no change: with
--intercept the emulator stands in for PayPal's hosts as an HTTPS proxy;
give the listener what 'ipnlab ca env' prints (HTTPS_PROXY and the CA).
A listener with no probe API: --probe sql:DSN --probe-map FILE reads its
database instead (docs/probe.md). Both, in a CI job:

  ipnlab conform --intercept --listener-image my-plugin:ci --listener /ipn \
    --probe sql:postgres://shop:$SHOP_DB_PASSWORD@127.0.0.1:5432/shop \
    --probe-map probe-map.yaml --junit conformance.xml

With --listener-image, ipnlab runs your listener's image itself (host
networking, removed afterwards); --listener, --paydo-listener and --probe
may then be paths on it (docs/ci.md). It sets in it:
  ` + strings.Join(undertest.EnvNames, "\n  "),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printCat {
				fmt.Fprint(cmd.OutOrStdout(), conformance.Catalog())
				return nil
			}
			if printGal {
				fmt.Fprint(cmd.OutOrStdout(), conformance.Gallery())
				return nil
			}
			began := time.Now()
			cfg, err := resolveConfig(cmd, configFile)
			if err != nil {
				return harnessFailed(cfg, err)
			}
			ctx, stop := interruptible(context.Background())
			defer stop()
			var log io.Writer
			if cfg.Verbose {
				log = cmd.ErrOrStderr()
			}
			if img.image == "" {
				if err := img.unused(cmd); err != nil {
					return harnessFailed(cfg, err)
				}
				return runConform(ctx, cmd, cfg, log, began)
			}
			lst, err := img.startImage(ctx, cmd, &cfg, log)
			if err != nil {
				return harnessFailed(cfg, err)
			}
			err = runConform(ctx, cmd, cfg, log, began)
			stopImage(cmd, lst, err != nil, log != nil)
			return err
		},
	}
	conformFlags(c.Flags(), &flags, &configFile)
	img.add(c)
	c.Flags().BoolVar(&printCat, "catalog", false, "print the check catalog (Markdown) and exit")
	c.Flags().BoolVar(&printGal, "gallery", false, "print the mutant gallery (Markdown) and exit")
	return c
}

// runConform runs the suite and writes its reports; the error is nil only
// for a conformant listener. A run that checked nothing still writes its
// reports (so CI's report steps find them), then exits 2.
func runConform(ctx context.Context, cmd *cobra.Command, cfg conformance.Config, log io.Writer, began time.Time) error {
	if err := ownEmulator(ctx, "conform", cfg); err != nil {
		return harnessFailed(cfg, err)
	}
	rep, err := conformance.RunAll(ctx, cfg, log)
	if err != nil && rep.Checks == nil {
		return harnessFailed(cfg, err)
	}
	rep.WriteConsole(cmd.OutOrStdout())
	// The summary's time is the checks'; the command's also starts the
	// emulator, the probe and any listener image.
	fmt.Fprintf(cmd.OutOrStdout(), "wall time %.1fs since the command started (the checks: %.1fs)\n", time.Since(began).Seconds(), rep.Seconds)
	if werr := writeReportFiles(cfg, rep); werr != nil {
		return werr
	}
	if err != nil {
		return usageError{err}
	}
	sum := rep.Summary
	if sum.Failed == 0 && sum.Blocked == 0 && sum.Errors > 0 {
		// No verdict against the listener: what stopped the checks was
		// the harness's or the probe's (a value it could not read).
		return exitError{code: exitHarness, msg: fmt.Sprintf("%d check(s) could not be judged: an error of the harness or the probe, not a verdict on the listener (see each check's message above)", sum.Errors)}
	}
	if !rep.Conformant() {
		msg := fmt.Sprintf("not conformant: %d required check(s) failed, %d blocked by them", sum.Failed, sum.Blocked)
		if sum.Errors > 0 {
			msg += fmt.Sprintf(", %d could not be judged (errors)", sum.Errors)
		}
		if w := sum.Warnings; w > 0 {
			msg += fmt.Sprintf(" (and %d SHOULD warning(s))", w)
		}
		return exitError{code: exitFailure, msg: msg}
	}
	return nil
}

// harnessFailed writes the report files asked for, with the error that
// stopped the run in them (CI's report steps must find their files and
// show why), and returns err for exit 2.
func harnessFailed(cfg conformance.Config, err error) error {
	if werr := writeReportFiles(cfg, conformance.HarnessFailure(cfg, err)); werr != nil {
		err = errors.Join(err, werr)
	}
	return usageError{err}
}

// writeReportFiles writes the files asked for.
func writeReportFiles(cfg conformance.Config, rep conformance.Report) error {
	if cfg.Report != "" {
		if err := rep.WriteJSON(cfg.Report); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	if cfg.JUnit != "" {
		if err := rep.WriteJUnit(cfg.JUnit); err != nil {
			return fmt.Errorf("--junit: %w", err)
		}
	}
	return nil
}

func newRun() *cobra.Command {
	var (
		flags       conformance.Config
		configFile  string
		list        bool
		reference   bool
		emulatorURL string
	)
	c := &cobra.Command{
		Use:   "run FILE|NAME|CHECK-ID",
		Short: "Run one scenario (a YAML file, a bundled one by name, or the one a conformance check runs) against a listener, step by step",
		Args: func(c *cobra.Command, args []string) error {
			if list || reference {
				return noArgs(c, args)
			}
			return exactArgs(1)(c, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if reference {
				fmt.Fprint(cmd.OutOrStdout(), scenarios.Reference())
				return nil
			}
			if list {
				names, err := catalog.Names()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), strings.Join(names, "\n"))
				return nil
			}
			sc, err := loadScenario(args[0])
			if err != nil {
				return usageError{err}
			}
			cfg, err := resolveConfig(cmd, configFile)
			if err != nil {
				return err
			}
			ctx, stop := interruptible(context.Background())
			defer stop()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %s\n", sc.Name, sc.Description)
			running, err := runningEmulator(ctx, cfg, emulatorURL)
			if err != nil {
				return err
			}
			if running != nil {
				return runRemote(ctx, out, running, args[0], cfg)
			}
			s, err := conformance.NewSession(ctx, cfg)
			if err != nil {
				return usageError{err}
			}
			defer s.Close()
			start := time.Now()
			res := s.RunScenario(ctx, sc, cfg.Seed, out)
			return printRunResult(out, res.Status.String(), time.Since(start).Seconds(), uint64(res.Seed), res.Message, res.Evidence, s.ReplayScenario(args[0], uint64(res.Seed)))
		},
	}
	settingFlags(c.Flags(), &flags, &configFile)
	c.Flags().StringVar(&emulatorURL, "emulator", "", "run in the emulator already running at this URL (make run, serve, lab: its console shows the run); without it, an ipnlab emulator already on --emulator-addr is used")
	c.Flags().BoolVar(&list, "list", false, "list the bundled scenarios")
	c.Flags().BoolVar(&reference, "reference", false, "print the scenario format's reference (Markdown, docs/scenarios.md) and exit")
	return c
}

// loadScenario is the scenario ipnlab run names: a file (which may send
// PayPal REST webhooks), the scenario a check ID's check runs, or a
// bundled one by name.
func loadScenario(arg string) (*scenarios.Scenario, error) {
	if _, err := os.Stat(arg); err == nil {
		return scenarios.LoadFileFor(arg, []string{paypalrest.Provider})
	}
	if c, ok := conformance.Lookup(arg); ok && c.Steps != nil {
		return c.Steps, nil // a check whose scenario is not bundled (PW-)
	}
	if name := conformance.ScenarioOf(arg); name != "" {
		return catalog.Get(name)
	}
	return catalog.Get(arg)
}
