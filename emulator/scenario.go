package emulator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// ScenarioInfo describes a scenario a ScenarioRunner can run.
type ScenarioInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Provider    string `json:"provider"`
	// ManualClock: the scenario moves the clock, so it runs only on an
	// emulator whose clock is manual.
	ManualClock bool `json:"manual_clock"`
}

// ScenarioTarget is the listener a scenario run sends to.
type ScenarioTarget struct {
	// Endpoints are the listener's endpoints, by provider name.
	Endpoints map[string]string `json:"endpoints,omitempty"`
	// ProbeURL is the listener's probe; without it only protocol-level
	// expectations are judged.
	ProbeURL string `json:"probe_url,omitempty"`
}

// ScenarioRequest is one scenario run: a catalog scenario by name, or
// the caller's own (YAML, a file of ipnlab run's) named so, against
// Target, its messages derived from Seed (0: drawn, reported).
type ScenarioRequest struct {
	Name   string
	YAML   string
	Seed   uint64
	Target ScenarioTarget
}

// ScenarioRunner runs scenarios against this emulator (the emulator
// cannot import the scenarios package, which builds on it; the command
// wires one in).
type ScenarioRunner interface {
	Scenarios() ([]ScenarioInfo, error)
	// Run runs one scenario and returns its result, ready for JSON. It
	// returns ErrUnknownScenario for a name it does not have.
	Run(ctx context.Context, emu *Emulator, req ScenarioRequest) (any, error)
}

// Empty tells a target that names no endpoint and no probe.
func (t ScenarioTarget) Empty() bool {
	for _, u := range t.Endpoints {
		if u != "" {
			return false
		}
	}
	return t.ProbeURL == ""
}

// scenarioBody is POST /api/v1/scenarios/{name}/run's body: the target,
// and optionally a seed and the scenario itself. paypal_url and paydo_url
// are short for endpoints.paypal and endpoints.paydo.
type scenarioBody struct {
	ScenarioTarget
	PayPalURL string   `json:"paypal_url"`
	PayDoURL  string   `json:"paydo_url"`
	Seed      api.Seed `json:"seed"`
	Scenario  string   `json:"scenario"`
}

// target is the body's target, its shorthands folded into Endpoints.
func (b scenarioBody) target() (ScenarioTarget, error) {
	t := ScenarioTarget{Endpoints: maps.Clone(b.Endpoints), ProbeURL: b.ProbeURL}
	for provider, u := range map[string]string{paypal.Provider: b.PayPalURL, paydo.Provider: b.PayDoURL} {
		if u == "" {
			continue
		}
		if other, ok := t.Endpoints[provider]; ok && other != u {
			return t, badRequest("%s_url %q and endpoints.%s %q disagree: give one", provider, u, provider, other)
		}
		if t.Endpoints == nil {
			t.Endpoints = map[string]string{}
		}
		t.Endpoints[provider] = u
	}
	return t, nil
}

// Endpointed is a Provider that knows where its messages go when a
// scenario run names no listener (PayPal: the profile's notify_url).
type Endpointed interface {
	DefaultEndpoint() string
}

// ErrUnknownScenario is returned for a scenario name a runner lacks.
var ErrUnknownScenario = errors.New("unknown scenario")

// scenarioGate runs one scenario at a time (scenarios set faults and
// outages on the whole emulator) and keeps the default target.
type scenarioGate struct {
	run    sync.Mutex
	mu     sync.Mutex
	target ScenarioTarget
}

// SetScenarioTarget names the listener scenarios run against when a
// request names none (ipnlab lab: its reference listener, with its probe).
func (e *Emulator) SetScenarioTarget(t ScenarioTarget) {
	e.scenarios.mu.Lock()
	e.scenarios.target = t
	e.scenarios.mu.Unlock()
}

// ScenarioTarget is the listener scenarios run against by default: the one
// set, else the account's IPN URL and PayDo's default registrations.
func (e *Emulator) ScenarioTarget() ScenarioTarget {
	e.scenarios.mu.Lock()
	t := e.scenarios.target
	e.scenarios.mu.Unlock()
	if !t.Empty() {
		t.Endpoints = maps.Clone(t.Endpoints)
		return t
	}
	for _, p := range e.providers {
		if d, ok := p.(Endpointed); ok {
			if u := d.DefaultEndpoint(); u != "" {
				if t.Endpoints == nil {
					t.Endpoints = map[string]string{}
				}
				t.Endpoints[p.Name()] = u
			}
		}
	}
	return t
}

func (e *Emulator) listScenarios(w http.ResponseWriter, r *http.Request) error {
	if e.cfg.Scenarios == nil {
		writeJSON(w, http.StatusOK, map[string]any{"scenarios": []ScenarioInfo{}, "target": e.ScenarioTarget()})
		return nil
	}
	list, err := e.cfg.Scenarios.Scenarios()
	if err != nil {
		return fmt.Errorf("list scenarios: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"scenarios": list, "target": e.ScenarioTarget()})
	return nil
}

func (e *Emulator) runScenario(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if e.cfg.Scenarios == nil {
		return apiError(http.StatusNotFound, "this emulator runs no scenarios (ipnlab serve and lab do)")
	}
	req := ScenarioRequest{Name: name, Target: e.ScenarioTarget()}
	if r.ContentLength != 0 {
		var body scenarioBody
		if err := readJSON(w, r, &body); err != nil {
			return err
		}
		target, err := body.target()
		if err != nil {
			return err
		}
		if !target.Empty() {
			req.Target = target
		}
		req.Seed, req.YAML = uint64(body.Seed), body.Scenario
	}
	target := req.Target
	if len(target.Endpoints) == 0 {
		return badRequest("no listener to run against: give endpoints, by provider (paypal_url and paydo_url are short for endpoints.paypal and endpoints.paydo)")
	}
	// Every URL a run will send to, the probe's too, keeps to the
	// allowlist (403 otherwise); the probe also dials through Outgoing.
	for _, u := range append(slices.Collect(maps.Values(target.Endpoints)), target.ProbeURL) {
		if u != "" {
			if err := e.CheckTarget(u); err != nil {
				return fmt.Errorf("scenario %s: %w", name, err)
			}
		}
	}
	if !e.scenarios.run.TryLock() {
		return apiError(http.StatusConflict, "a scenario is running; wait for its result")
	}
	defer e.scenarios.run.Unlock()
	res, err := e.cfg.Scenarios.Run(r.Context(), e, req)
	switch {
	case errors.Is(err, ErrUnknownScenario):
		return apiError(http.StatusNotFound, err.Error())
	case errors.Is(err, delivery.ErrNotAllowed):
		return fmt.Errorf("scenario %s: %w", name, err)
	case err != nil:
		return badRequest("scenario %s: %v", name, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
