package emulator

import (
	"fmt"
	"net/http"

	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
)

// The PayPal API: notifications, lifecycles, the IPN profile, verifier
// faults and the fixtures catalog.

func (e *Emulator) postNotification(w http.ResponseWriter, r *http.Request) error {
	var req SendRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	view, err := e.SendPayPal(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, view)
	return nil
}

func (e *Emulator) getProfile(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, e.paypal.Profile())
	return nil
}

func (e *Emulator) putProfile(w http.ResponseWriter, r *http.Request) error {
	var p paypal.Profile
	if err := readJSON(w, r, &p); err != nil {
		return err
	}
	if err := e.paypal.SetProfile(p); err != nil {
		return refused(err)
	}
	e.bus.Publish(events.Profile, e.clock.Now(), paypal.Provider, "", p)
	e.WaitIdle()
	writeJSON(w, http.StatusOK, e.paypal.Profile())
	return nil
}

func (e *Emulator) getFault(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id != "" {
		if _, ok := e.paypal.Message(id); !ok {
			return fmt.Errorf("message %s: %w", id, paypal.ErrNotFound)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"fault": e.paypal.Fault(id)})
	return nil
}

func (e *Emulator) putFault(w http.ResponseWriter, r *http.Request) error {
	var fr FaultRequest
	if err := readJSON(w, r, &fr); err != nil {
		return err
	}
	f, err := faultOf(fr)
	if err != nil {
		return badRequest("%v", err)
	}
	id := r.PathValue("id")
	if err := e.paypal.SetFault(id, &f); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"fault": f})
	return nil
}

func (e *Emulator) deleteFault(w http.ResponseWriter, r *http.Request) error {
	if err := e.paypal.SetFault(r.PathValue("id"), nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (e *Emulator) postLifecycle(w http.ResponseWriter, r *http.Request) error {
	var req LifecycleRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	plan, err := e.SendLifecycle(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, plan)
	return nil
}

func (e *Emulator) listLifecycles(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"lifecycles": generate.Lifecycles()})
	return nil
}

func (e *Emulator) listKinds(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"kinds": generate.Kinds(), "paydo_kinds": generate.PayDoKinds()})
	return nil
}
