package emulator

import (
	"net/http"

	"github.com/ipnlab/ipnlab/generate"
)

// The PayPal API: notifications, lifecycles, the IPN profile, verifier
// faults and the fixtures catalog.

func (e *Emulator) listLifecycles(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"lifecycles": generate.Lifecycles()})
	return nil
}

func (e *Emulator) listKinds(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"kinds": generate.Kinds(), "paydo_kinds": generate.PayDoKinds()})
	return nil
}
