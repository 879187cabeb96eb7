package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/scenarios"
)

// Runner runs the bundled scenarios on a running emulator, for its console
// and control API (emulator.Config.Scenarios).
type Runner struct {
	// PayerEmail is a customer the listener knows (default
	// customer@example.com).
	PayerEmail string
	// Alias, if set, maps another name to a bundled scenario's ("" for
	// none): the conformance suite's check IDs (PP-VERIFY-UTF-8) name
	// the scenarios that judge them.
	Alias func(name string) string
}

// RunResult is a scenario's result with the log of its steps.
type RunResult struct {
	scenarios.Result
	Seconds float64  `json:"seconds"`
	Log     []string `json:"log"`
}

// Scenarios lists the bundled scenarios.
func (Runner) Scenarios() ([]emulator.ScenarioInfo, error) {
	names, err := Names()
	if err != nil {
		return nil, err
	}
	out := make([]emulator.ScenarioInfo, 0, len(names))
	for _, n := range names {
		sc, _ := Get(n)
		out = append(out, emulator.ScenarioInfo{Name: sc.Name, Description: sc.Description, Provider: sc.Provider, ManualClock: movesClock(sc)})
	}
	return out, nil
}

func movesClock(sc *scenarios.Scenario) bool {
	for _, st := range sc.Steps {
		if _, ok := st.(*scenarios.Advance); ok {
			return true
		}
	}
	return false
}

// Run runs one scenario, bundled or the caller's own, against its
// target, then clears the faults and the outage it may have left on the
// emulator.
func (r Runner) Run(ctx context.Context, emu *emulator.Emulator, req emulator.ScenarioRequest) (any, error) {
	sc, err := r.scenario(req)
	if err != nil {
		return nil, err
	}
	target := req.Target
	if _, manual := emu.Clock().(clock.Controller); movesClock(sc) && !manual {
		return nil, fmt.Errorf("it moves the clock, and this emulator's clock is %s: start it with --clock manual", emu.Clock().Mode())
	}
	if target.Endpoints[sc.Provider] == "" {
		return nil, fmt.Errorf("a %s scenario needs the listener's %s endpoint (endpoints.%s, or %s_url)", sc.Provider, sc.Provider, sc.Provider, sc.Provider)
	}
	env := scenarios.Env{Emulator: emu, Targets: target.Endpoints,
		PayerEmail: r.PayerEmail, AckTimeout: emu.AckTimeout(), Seed: req.Seed}
	if target.ProbeURL != "" {
		// Through the emulator's own client: its allowlist holds on the
		// address dialled, redirects are not followed.
		if env.Probe, err = scenarios.NewProbeWith(target.ProbeURL, emu.Outgoing()); err != nil {
			return nil, err
		}
	}
	var log bytes.Buffer
	env.Log = &log
	res := scenarios.Run(ctx, env, sc)
	_ = emu.PayPal().SetFault("", nil)
	emu.SetOutage(false)
	lines := strings.Split(strings.TrimRight(log.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = []string{}
	}
	return RunResult{Result: res, Seconds: res.Duration.Seconds(), Log: lines}, nil
}

// scenario is the one req names: its own YAML, which must bear that name,
// or a bundled one (by name, or by an alias such as a check ID).
func (r Runner) scenario(req emulator.ScenarioRequest) (*scenarios.Scenario, error) {
	if req.YAML != "" {
		sc, err := scenarios.Parse(req.Name, []byte(req.YAML))
		if err != nil {
			return nil, err
		}
		if sc.Name != req.Name {
			return nil, fmt.Errorf("the scenario given is named %q, the request %q", sc.Name, req.Name)
		}
		return sc, nil
	}
	name := req.Name
	if r.Alias != nil {
		if real := r.Alias(name); real != "" {
			name = real
		}
	}
	sc, err := Get(name)
	if errors.Is(err, errUnknown) {
		return nil, fmt.Errorf("%w: %w", emulator.ErrUnknownScenario, err)
	}
	return sc, err
}
