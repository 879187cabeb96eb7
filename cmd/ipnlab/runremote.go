package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/probe/sqlprobe"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// Running a scenario in an emulator that is already running (make run,
// serve, lab): the listener under test posts back to the emulator its
// verify URL names, so a run must send from that one when it is up, and
// its History and console then show the run.

// remoteSettings are the settings a run in a running emulator takes; the
// others (ack window, receiver, live, ...) are that emulator's own.
var remoteSettings = []string{"listener", "paydo-listener", "probe", "emulator-addr"}

// runningEmulator is the emulator ipnlab run drives instead of starting
// one: the one given (--emulator), or an ipnlab emulator already
// listening on cfg's emulator address; nil when that address is free.
func runningEmulator(ctx context.Context, cfg conformance.Config, given string) (*client.Client, error) {
	if given == "" {
		return emulatorOn(ctx, cfg)
	}
	c, err := client.New(given)
	if err != nil {
		return nil, usageError{fmt.Errorf("--emulator: %w", err)}
	}
	c = c.WithToken(cfg.APIToken)
	if _, err := c.Scenarios(ctx); err != nil {
		return nil, usageError{fmt.Errorf("--emulator %s: no ipnlab emulator answers there (make run, serve or lab start one): %w", given, err)}
	}
	return c, nil
}

// emulatorOn is the ipnlab emulator already listening on cfg's emulator
// address, or nil: the address is free, or taken by something else (the
// session then names it).
func emulatorOn(ctx context.Context, cfg conformance.Config) (*client.Client, error) {
	if cfg.EmulatorListener != nil {
		return nil, nil // the address is this command's own (a listener image's run)
	}
	ln, err := net.Listen("tcp", cfg.EmulatorAddr)
	if err == nil {
		ln.Close()
		return nil, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, nil
	}
	c, err := client.New("http://" + cfg.EmulatorAddr)
	if err != nil {
		return nil, nil
	}
	c = c.WithToken(cfg.APIToken)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Scenarios(ctx); err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == 401 {
			return nil, usageError{fmt.Errorf("the emulator running at %s wants its API token: give --api-token (or IPNLAB_API_TOKEN), or --emulator-addr ADDR for an emulator of this command's own", cfg.EmulatorAddr)}
		}
		return nil, nil
	}
	return c, nil
}

// ownEmulator fails when an ipnlab emulator already runs on cfg's
// emulator address: command (conform, explore) is not run in it, as it
// moves the clock and takes the verifier down for every message, which
// that emulator's own traffic (its listener, its console) would share.
func ownEmulator(ctx context.Context, command string, cfg conformance.Config) error {
	running, err := emulatorOn(ctx, cfg)
	if err != nil || running == nil {
		return err
	}
	return fmt.Errorf("%s is an ipnlab emulator already running (make run, serve or lab): %s needs one of its own, as it moves the clock and takes the verifier down for every message. Stop that one, or give --emulator-addr ADDR and point the listener's verify URL at http://ADDR/cgi-bin/webscr; ipnlab run NAME runs one scenario in the running one", cfg.EmulatorAddr, command)
}

// runRemote runs the scenario named (a bundled name, a check ID, or a
// file's, whose YAML it sends) in the running emulator, and prints what
// a run of its own prints.
func runRemote(ctx context.Context, out io.Writer, c *client.Client, arg string, cfg conformance.Config) error {
	var extra []string
	for _, name := range cfg.SettingsSet() {
		if !slices.Contains(remoteSettings, name) {
			extra = append(extra, "--"+name)
		}
	}
	if len(extra) > 0 {
		return usageError{fmt.Errorf("%s: the running emulator at %s has its own; a run in it takes --listener, --paydo-listener, --probe and --seed (or start one of this run's own with --emulator-addr ADDR)", strings.Join(extra, ", "), c.URL())}
	}
	if strings.HasPrefix(cfg.Probe, sqlprobe.Scheme) {
		return usageError{fmt.Errorf("--probe %s: a run in the running emulator at %s reads an HTTP probe only; start one of this run's own with --emulator-addr ADDR to read the database", cfg.Probe, c.URL())}
	}
	name, run := arg, client.ScenarioRun{PayPalURL: cfg.Listener, PayDoURL: cfg.PayDoListener, ProbeURL: cfg.Probe, Seed: api.Seed(cfg.Seed)}
	if raw, err := os.ReadFile(arg); err == nil {
		sc, err := loadScenario(arg)
		if err != nil {
			return usageError{err}
		}
		name, run.Scenario = sc.Name, string(raw)
	}
	fmt.Fprintf(out, "running in the emulator at %s (already running: its History and console show this run)\n", c.URL())
	res, err := c.RunScenario(ctx, name, run)
	if err != nil {
		return exitError{code: exitHarness, msg: fmt.Sprintf("run %s in %s: %v", arg, c.URL(), err)}
	}
	for _, l := range res.Log {
		fmt.Fprintln(out, l)
	}
	replay := cfg.ReplayScenario(arg, uint64(res.Seed))
	if !strings.Contains(replay, "--emulator-addr") {
		replay += " --emulator " + c.URL()
	}
	return printRunResult(out, res.Status, res.Seconds, uint64(res.Seed), res.Message, res.Evidence, replay)
}

// printRunResult prints a scenario's outcome the same way wherever it ran
// (the status line, its evidence, a replay line when it did not pass)
// and turns it into the command's exit.
func printRunResult(out io.Writer, status string, seconds float64, seed uint64, message string, evidence []string, replay string) error {
	fmt.Fprintf(out, "%s in %.2fs (seed %d)", status, seconds, seed)
	if message != "" {
		fmt.Fprintf(out, ": %s", message)
	}
	fmt.Fprintln(out)
	for _, e := range evidence {
		fmt.Fprintln(out, "  "+e)
	}
	switch status {
	case "failed":
		fmt.Fprintf(out, "replay: %s\n", replay)
		return exitError{code: exitFailure, msg: "scenario failed"}
	case "error":
		fmt.Fprintf(out, "replay: %s\n", replay)
		return exitError{code: exitHarness, msg: "scenario could not run"}
	}
	return nil
}
