package emulator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/fixtures"
	"github.com/ipnlab/ipnlab/orderedjson"
)

// kindScheduled holds the sends planned for a later clock time (a
// lifecycle's later steps, PayDo's follow-ups with an interval), so that a
// restart re-arms them as it re-arms retries.
const kindScheduled = "emulator.scheduled"

// scheduledSend is one planned send, as the journal keeps it.
type scheduledSend struct {
	At    time.Time `json:"at"`
	Label string    `json:"label"` // for logs: "lifecycle chargeback step reversed"

	// PayPal: the exact bytes.
	Body      []byte `json:"body,omitempty"`
	Kind      string `json:"kind,omitempty"`
	NotifyURL string `json:"notify_url,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`

	// PayDo: the message and where it goes.
	PayDo *scheduledPayDo `json:"paydo,omitempty"`
}

type scheduledPayDo struct {
	Kind         string          `json:"kind"`
	Body         json.RawMessage `json:"body"`
	Amount       fixtures.Money  `json:"amount"`
	Currency     string          `json:"currency"`
	URL          string          `json:"url,omitempty"`
	Project      string          `json:"project,omitempty"`
	User         string          `json:"user,omitempty"`
	Source       string          `json:"source,omitempty"`
	ForwardedFor string          `json:"forwarded_for,omitempty"`
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
func (e *Emulator) schedule(s scheduledSend) error {
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

// arm sends s at its time (at once if it is past), then forgets it.
func (e *Emulator) arm(key string, s scheduledSend) {
	e.mu.Lock()
	if e.planned == nil {
		e.planned = map[string]scheduledSend{}
	}
	e.planned[key] = scheduledSend{At: s.At, Label: s.Label}
	e.mu.Unlock()
	e.clock.At(s.At, func() {
		e.mu.Lock()
		delete(e.planned, key)
		e.mu.Unlock()
		if err := e.sendScheduled(s); err != nil {
			e.log.Error("scheduled send failed", "what", s.Label, "error", fmt.Sprint(err))
		}
		if e.cfg.Journal != nil {
			e.report(e.cfg.Journal.Write(journal.Entry{Kind: kindScheduled, Key: key, Delete: true}))
		}
	})
}

// waiting says what is still scheduled on the clock, in words a user
// knows: planned sends (a lifecycle's later steps) and retries, the
// soonest first, at most five of each.
func (e *Emulator) waiting() string {
	e.mu.Lock()
	plans := make([]scheduledSend, 0, len(e.planned))
	for _, s := range e.planned {
		plans = append(plans, s)
	}
	e.mu.Unlock()
	slices.SortFunc(plans, func(a, b scheduledSend) int { return a.At.Compare(b.At) })
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

func (e *Emulator) sendScheduled(s scheduledSend) error {
	if s.PayDo == nil {
		_, err := e.send(paypal.Notification{Body: s.Body, Kind: s.Kind, NotifyURL: s.NotifyURL}, s.Seed)
		return err
	}
	p := s.PayDo
	body, err := orderedjson.Parse(p.Body)
	if err != nil {
		return fmt.Errorf("stored PayDo body: %w", err)
	}
	msg := fixtures.PayDoMessage{Kind: p.Kind, Body: body, Amount: p.Amount, Currency: p.Currency}
	_, err = e.paydo.Send(paydo.Notification{Message: msg, URL: p.URL, Project: p.Project, User: p.User, Source: p.Source, ForwardedFor: p.ForwardedFor})
	return err
}

// restoreScheduled re-arms the planned sends a journal kept; those whose
// time passed while the emulator was down go at once.
func (e *Emulator) restoreScheduled() (int, error) {
	if e.cfg.Journal == nil {
		return 0, nil
	}
	n := 0
	err := e.cfg.Journal.Scan(kindScheduled, func(key string, value []byte) error {
		var s scheduledSend
		if err := json.Unmarshal(value, &s); err != nil {
			return fmt.Errorf("scheduled send %s: %w", key, err)
		}
		e.arm(key, s)
		n++
		return nil
	})
	return n, err
}

// payDoScheduled is what schedule keeps of a PayDo notification.
func payDoScheduled(n paydo.Notification) (*scheduledPayDo, error) {
	body, err := json.Marshal(n.Message.Body)
	if err != nil {
		return nil, err
	}
	return &scheduledPayDo{Kind: n.Message.Kind, Body: body, Amount: n.Message.Amount, Currency: n.Message.Currency,
		URL: n.URL, Project: n.Project, User: n.User, Source: n.Source, ForwardedFor: n.ForwardedFor}, nil
}
