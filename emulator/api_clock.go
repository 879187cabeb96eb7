package emulator

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// The clock API: reading it, advancing it, running it until idle.

func (e *Emulator) clockView() ClockView {
	v := ClockView{Now: e.clock.Now(), Mode: e.clock.Mode()}
	if ctl, ok := e.clock.(clock.Controller); ok {
		v.Pending = ctl.Pending()
	}
	return v
}

func (e *Emulator) getClock(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, e.clockView())
	return nil
}

func (e *Emulator) advanceClock(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Duration string `json:"duration"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	d, err := clock.ParseDuration(req.Duration)
	if err != nil {
		return badRequest("%v", err)
	}
	if err := e.Advance(d); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e.clockView())
	return nil
}

func (e *Emulator) runUntilIdle(w http.ResponseWriter, r *http.Request) error {
	req := struct {
		Limit string `json:"limit"`
	}{Limit: "30d"}
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	limit, err := clock.ParseDuration(req.Limit)
	if err != nil {
		return badRequest("limit: %v", err)
	}
	ctl, ok := e.clock.(clock.Controller)
	if !ok {
		return fmt.Errorf("run until idle: %w (it is %s)", clock.ErrNotManual, e.clock.Mode())
	}
	moved, err := ctl.RunUntilIdle(limit)
	e.report(e.saveClock(e.clock.Now()))
	e.bus.Publish(events.ClockAdvanced, e.clock.Now(), "", "", map[string]string{"by": moved.String()})
	if err != nil {
		return plugin.StatusError(http.StatusConflict, "the clock moved %s and stopped at %s: still scheduled past the %s limit: %s (raise the limit, or clock advance)",
			clock.FormatDuration(moved), e.clock.Now().UTC().Format(time.RFC3339), req.Limit, e.waiting())
	}
	writeJSON(w, http.StatusOK, e.clockView())
	return nil
}
