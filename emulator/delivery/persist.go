package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// Journal kinds the engine writes.
const (
	KindMessage = "delivery.message"
	KindAttempt = "delivery.attempt"
)

// stored is a message's state in the journal; its finished attempts are
// records of their own (KindAttempt), so an attempt adds one small row.
type stored struct {
	Record     Message         `json:"record"` // Attempts left out
	Body       []byte          `json:"body"`
	ResendBody []byte          `json:"resend_body,omitempty"`
	Header     http.Header     `json:"header"`
	Schedule   Backoff         `json:"schedule"`
	Ack        AckPolicy       `json:"ack"`
	Route      string          `json:"route,omitempty"`
	Held       bool            `json:"held,omitempty"`
	Number     int             `json:"number"`
	Pending    []storedPending `json:"pending,omitempty"`
	Running    []Attempt       `json:"running,omitempty"`
}

type storedPending struct {
	Trigger Trigger   `json:"trigger"`
	URL     string    `json:"url"`
	At      time.Time `json:"at"`
}

func attemptKey(id string, n int) string { return fmt.Sprintf("%s/%06d", id, n) }

// saveLocked journals ent's state and the finished attempts given, in one
// atomic write.
func (e *Engine) saveLocked(ent *entry, finished ...Attempt) error {
	if e.cfg.Journal == nil {
		return nil
	}
	st := stored{
		Record: ent.rec, Body: ent.body, ResendBody: ent.resendBody, Header: ent.header,
		Ack: ent.ack, Route: ent.route, Held: ent.held, Number: ent.number, Running: ent.running,
	}
	st.Record.Attempts = nil
	if b, ok := ent.schedule.(Backoff); ok {
		st.Schedule = b
	}
	for _, p := range ent.pending {
		st.Pending = append(st.Pending, storedPending{Trigger: p.trig, URL: p.url, At: p.at})
	}
	value, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("journal message %s: %w", ent.rec.ID, err)
	}
	entries := []journal.Entry{{Kind: KindMessage, Key: ent.rec.ID, Value: value}}
	for _, a := range finished {
		av, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("journal attempt %s/%d: %w", ent.rec.ID, a.Number, err)
		}
		entries = append(entries, journal.Entry{Kind: KindAttempt, Key: attemptKey(ent.rec.ID, a.Number), Value: av})
	}
	if err := e.cfg.Journal.Write(entries...); err != nil {
		return fmt.Errorf("message %s: %w", ent.rec.ID, err)
	}
	return nil
}

// ClientFor returns the client that sends a restored message of provider
// with route (see Submission.Route); nil means the engine's default.
type ClientFor func(provider, route string) (*http.Client, error)

// ErrNotEmpty is returned by Restore on an engine that already has messages.
var ErrNotEmpty = errors.New("delivery engine already has messages")

// Interrupted is the error an attempt cut short by a crash is recorded with.
const Interrupted = "interrupted: the emulator stopped before the answer was recorded"

// Restore loads the journal's messages and resumes their pending attempts
// at their clock times (at once if that has passed). An attempt that was
// running when the emulator died is recorded as failed (Interrupted), never
// sent again as the same attempt; a scheduled one gets its next retry on
// the schedule, as any failed attempt does. It returns how many messages it
// loaded and how many attempts it queued.
func (e *Engine) Restore(clients ClientFor) (messages, queued int, err error) {
	j := e.cfg.Journal
	if j == nil {
		return 0, 0, errors.New("restore: the engine has no journal")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.msgs) > 0 {
		return 0, 0, fmt.Errorf("restore: %w", ErrNotEmpty)
	}
	err = j.Scan(KindMessage, func(id string, value []byte) error {
		var st stored
		if err := json.Unmarshal(value, &st); err != nil {
			return err
		}
		if err := st.Schedule.Validate(); err != nil {
			return err
		}
		ent := &entry{
			rec: st.Record, body: st.Body, resendBody: st.ResendBody, header: st.Header,
			schedule: st.Schedule, ack: st.Ack, route: st.Route, held: st.Held, number: st.Number,
			running: st.Running,
		}
		ent.rec.ID = id
		ent.client = e.cfg.Client
		if clients != nil {
			c, err := clients(ent.rec.Provider, ent.route)
			if err != nil {
				return fmt.Errorf("client for route %q: %w", ent.route, err)
			}
			if c != nil {
				ent.client = c
			}
		}
		for _, p := range st.Pending {
			ent.pending = append(ent.pending, &pending{trig: p.Trigger, url: p.URL, at: p.At})
		}
		e.msgs[id] = ent
		e.order = append(e.order, id)
		return nil
	})
	if err != nil {
		e.reset()
		return 0, 0, fmt.Errorf("restore: %w", err)
	}
	err = j.Scan(KindAttempt, func(key string, value []byte) error {
		id, _, _ := strings.Cut(key, "/")
		ent, ok := e.msgs[id]
		if !ok {
			return fmt.Errorf("attempt of unknown message %s", id)
		}
		var a Attempt
		if err := json.Unmarshal(value, &a); err != nil {
			return err
		}
		ent.rec.Attempts = append(ent.rec.Attempts, a)
		return nil
	})
	if err != nil {
		e.reset()
		return 0, 0, fmt.Errorf("restore: %w", err)
	}
	for _, id := range e.order {
		ent := e.msgs[id]
		for _, r := range slices.Clone(ent.running) {
			r.Error = Interrupted
			e.finishLocked(ent, r, r.Start) // its retry falls when it would have
		}
		e.refreshLocked(ent)
		for _, p := range ent.pending {
			e.armLocked(ent, p)
			queued++
		}
		if ent.finished() && e.cfg.HistoryLimit > 0 {
			ent.inDone, ent.doneAt = true, e.cfg.Clock.Now()
			e.done = append(e.done, id)
		}
	}
	return len(e.order), queued, nil
}

func (e *Engine) reset() {
	e.msgs = make(map[string]*entry)
	e.order = nil
}

// checkTarget reports a URL that cannot be delivered to or is not allowed.
func (e *Engine) checkTarget(raw string) error {
	if err := checkURL(raw); err != nil {
		return err
	}
	if e.cfg.Allow != nil {
		return e.cfg.Allow.CheckURL(raw)
	}
	return nil
}

// CheckTarget reports a URL this engine would refuse to deliver to.
func (e *Engine) CheckTarget(raw string) error { return e.checkTarget(raw) }
