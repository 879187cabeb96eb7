package emulator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
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
	PayPalURL string `json:"paypal_url,omitempty"`
	PayDoURL  string `json:"paydo_url,omitempty"`
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

// scenarioBody is POST /api/v1/scenarios/{name}/run's body: the target,
// and optionally a seed and the scenario itself.
type scenarioBody struct {
	ScenarioTarget
	Seed     api.Seed `json:"seed"`
	Scenario string   `json:"scenario"`
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
	if t != (ScenarioTarget{}) {
		return t
	}
	projects, users := e.paydo.Registrations()
	t.PayPalURL, t.PayDoURL = e.paypal.Profile().NotifyURL, projects["default"]
	if t.PayDoURL == "" {
		t.PayDoURL = users["default"]
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
		return &apiError{http.StatusNotFound, "this emulator runs no scenarios (ipnlab serve and lab do)"}
	}
	req := ScenarioRequest{Name: name, Target: e.ScenarioTarget()}
	if r.ContentLength != 0 {
		var body scenarioBody
		if err := readJSON(w, r, &body); err != nil {
			return err
		}
		if body.ScenarioTarget != (ScenarioTarget{}) {
			req.Target = body.ScenarioTarget
		}
		req.Seed, req.YAML = uint64(body.Seed), body.Scenario
	}
	target := req.Target
	if target.PayPalURL == "" && target.PayDoURL == "" {
		return badRequest("no listener to run against: give paypal_url (and paydo_url for PayDo scenarios)")
	}
	// Every URL a run will send to, the probe's too, keeps to the
	// allowlist (403 otherwise); the probe also dials through Outgoing.
	for _, u := range []string{target.PayPalURL, target.PayDoURL, target.ProbeURL} {
		if u != "" {
			if err := e.CheckTarget(u); err != nil {
				return fmt.Errorf("scenario %s: %w", name, err)
			}
		}
	}
	if !e.scenarios.run.TryLock() {
		return &apiError{http.StatusConflict, "a scenario is running; wait for its result"}
	}
	defer e.scenarios.run.Unlock()
	res, err := e.cfg.Scenarios.Run(r.Context(), e, req)
	switch {
	case errors.Is(err, ErrUnknownScenario):
		return &apiError{http.StatusNotFound, err.Error()}
	case errors.Is(err, delivery.ErrNotAllowed):
		return fmt.Errorf("scenario %s: %w", name, err)
	case err != nil:
		return badRequest("scenario %s: %v", name, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
