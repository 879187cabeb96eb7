package emulator

import (
	"net/http"

	"github.com/ipnlab/ipnlab/generate"
)

// The catalog of what the built-in providers generate: kinds and
// lifecycles (GET /api/v1/fixtures/kinds, /lifecycles).

func (e *Emulator) listLifecycles(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"lifecycles": generate.Lifecycles()})
	return nil
}

func (e *Emulator) listKinds(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"kinds": generate.Kinds(), "paydo_kinds": generate.PayDoKinds()})
	return nil
}
