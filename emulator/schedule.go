package emulator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// kindScheduled holds the sends planned for a later clock time (a
// lifecycle's later steps, PayDo's follow-ups with an interval), so that a
// restart re-arms them as it re-arms retries.
const kindScheduled = "emulator.scheduled"

// Scheduler is a Provider that plans sends (Host.Schedule); SendScheduled
// sends one from the payload it planned it with.
type Scheduler interface {
	SendScheduled(payload json.RawMessage) error
}

// journaledPlan is a planned send as the journal keeps it: a Planned, or,
// in a journal written before providers planned their own sends, PayPal's
// bytes at the top level or PayDo's message under "paydo" (read as the
// payloads the two plan with now).
type journaledPlan struct {
	Planned
	LegacyPayDo json.RawMessage `json:"paydo,omitempty"`
}

// planned is what a journal entry of kindScheduled plans.
func (j journaledPlan) planned(raw []byte) Planned {
	p := j.Planned
	switch {
	case p.Provider != "":
	case len(j.LegacyPayDo) > 0:
		p.Provider, p.Payload = paydo.Provider, j.LegacyPayDo
	default: // PayPal's fields are its payload's, at the top level
		p.Provider, p.Payload = paypal.Provider, raw
	}
	return p
}

// scheduleKey is a planned send's journal key: its clock time (keys sort
// by it), the emulator run's own random id and a count within the run.
// A count alone starts again at 1 after a restart, and a manual clock
// resumes at the same time: a lifecycle planned then took the keys of
// one planned before the restart, and overwrote it.
func (e *Emulator) scheduleKey(at time.Time) string {
	return fmt.Sprintf("%020d-%s-%d", at.UnixNano(), e.runID, e.scheduleSeq.Add(1))
}

// schedule journals s, then arms it on the clock.
func (e *Emulator) schedule(s Planned) error {
	p, ok := e.Provider(s.Provider)
	if !ok {
		return fmt.Errorf("schedule %s: provider %q: %w", s.Label, s.Provider, ErrNoProvider)
	}
	if _, ok := p.(Scheduler); !ok {
		return fmt.Errorf("schedule %s: provider %s cannot send what it planned (it is no emulator.Scheduler)", s.Label, s.Provider)
	}
	key := e.scheduleKey(s.At)
	if e.cfg.Journal != nil {
		v, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if err := e.cfg.Journal.Write(journal.Entry{Kind: kindScheduled, Key: key, Value: v}); err != nil {
			return fmt.Errorf("schedule %s: %w", s.Label, err)
		}
	}
	e.arm(key, s)
	return nil
}

// armedPlan is a planned send armed on the clock.
type armedPlan struct {
	Planned
	timer clock.Timer
}

// arm sends s at its time (at once if it is past), then forgets it.
func (e *Emulator) arm(key string, s Planned) {
	e.mu.Lock()
	if e.plansStopped {
		e.mu.Unlock()
		return
	}
	if e.planned == nil {
		e.planned = map[string]armedPlan{}
	}
	e.planned[key] = armedPlan{Planned: Planned{At: s.At, Label: s.Label}}
	e.mu.Unlock()
	// A time already past fires at once, maybe before At returns: the
	// timer is filed after, if the plan is still waiting.
	t := e.clock.At(s.At, func() {
		e.mu.Lock()
		_, waiting := e.planned[key]
		delete(e.planned, key)
		stopped := e.plansStopped
		e.mu.Unlock()
		if !waiting || stopped {
			return
		}
		if err := e.sendScheduled(s); err != nil {
			e.log.Error("scheduled send failed", "what", s.Label, "error", fmt.Sprint(err))
		}
		if e.cfg.Journal != nil {
			e.report(e.cfg.Journal.Write(journal.Entry{Kind: kindScheduled, Key: key, Delete: true}))
		}
	})
	e.mu.Lock()
	if a, ok := e.planned[key]; ok {
		a.timer = t
		e.planned[key] = a
	}
	e.mu.Unlock()
}

// stopPlans disarms every planned send; the journal keeps them for the
// next start.
func (e *Emulator) stopPlans() {
	e.mu.Lock()
	e.plansStopped = true
	var timers []clock.Timer
	for _, a := range e.planned {
		if a.timer != nil {
			timers = append(timers, a.timer)
		}
	}
	e.mu.Unlock()
	for _, t := range timers {
		t.Stop()
	}
}

// waiting says what is still scheduled on the clock, in words a user
// knows: planned sends (a lifecycle's later steps) and retries, the
// soonest first, at most five of each.
func (e *Emulator) waiting() string {
	e.mu.Lock()
	plans := make([]Planned, 0, len(e.planned))
	for _, s := range e.planned {
		plans = append(plans, s.Planned)
	}
	e.mu.Unlock()
	slices.SortFunc(plans, func(a, b Planned) int { return a.At.Compare(b.At) })
	var parts []string
	for i, s := range plans {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more planned", len(plans)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s at %s", s.Label, s.At.UTC().Format(time.RFC3339)))
	}
	retrying := e.engine.List(func(m *delivery.Message) bool { return m.NextAttempt != nil })
	slices.SortFunc(retrying, func(a, b delivery.Message) int { return a.NextAttempt.Compare(*b.NextAttempt) })
	for i, m := range retrying {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more retries", len(retrying)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("message %s (%s) retries at %s", m.ID, m.Kind, m.NextAttempt.UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, "; ")
}

// sendScheduled hands a planned send to its provider.
func (e *Emulator) sendScheduled(s Planned) error {
	p, ok := e.Provider(s.Provider)
	if !ok {
		return fmt.Errorf("provider %q: %w", s.Provider, ErrNoProvider)
	}
	sch, ok := p.(Scheduler)
	if !ok {
		return fmt.Errorf("provider %s cannot send what it planned (it is no emulator.Scheduler)", s.Provider)
	}
	return sch.SendScheduled(s.Payload)
}

// restoreScheduled re-arms the planned sends a journal kept; those whose
// time passed while the emulator was down go at once.
func (e *Emulator) restoreScheduled() (int, error) {
	if e.cfg.Journal == nil {
		return 0, nil
	}
	n := 0
	err := e.cfg.Journal.Scan(kindScheduled, func(key string, value []byte) error {
		var j journaledPlan
		if err := json.Unmarshal(value, &j); err != nil {
			return fmt.Errorf("scheduled send %s: %w", key, err)
		}
		e.arm(key, j.planned(value))
		n++
		return nil
	})
	return n, err
}
