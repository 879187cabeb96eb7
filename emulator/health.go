package emulator

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
)

// Health: /healthz, which fails when one of the emulator's loops is stuck.

func (e *Emulator) getHealth(w http.ResponseWriter, r *http.Request) error {
	if e.cfg.StoreHealth != nil {
		if err := e.cfg.StoreHealth(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "store lost", "detail": err.Error()})
			return nil
		}
	}
	if stuck := e.Stuck(healthBudget); len(stuck) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "stuck", "stuck": stuck,
			"detail": fmt.Sprintf("these parts of the emulator have held their lock for over %s: sends, deliveries or postbacks through them hang", healthBudget)})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "clock": e.clock.Mode(), "now": e.clock.Now(), "verify": e.paypal.Service().Mode()})
	return nil
}

// healthBudget is how long /healthz lets a lock stay taken before it
// calls its loop stuck: they are held for microseconds.
const healthBudget = time.Second

// Stuck names the emulator's parts (events, delivery, paypal, paydo,
// clock) whose lock cannot be taken within d: a wedged loop that every
// send, delivery or verification would hang on.
func (e *Emulator) Stuck(d time.Duration) []string {
	type part struct {
		name string
		free func(time.Duration) bool
	}
	parts := []part{{"events", e.bus.Responsive}, {"delivery", e.engine.Responsive}}
	for _, p := range e.providers {
		if r, ok := p.(interface{ Responsive(time.Duration) bool }); ok {
			parts = append(parts, part{p.Name(), r.Responsive})
		}
	}
	if m, ok := e.clock.(*clock.Manual); ok {
		parts = append(parts, part{"clock", m.Responsive})
	}
	stuck := make([]bool, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stuck[i] = !p.free(d)
		}()
	}
	wg.Wait()
	var out []string
	for i, p := range parts {
		if stuck[i] {
			out = append(out, p.name)
		}
	}
	return out
}
