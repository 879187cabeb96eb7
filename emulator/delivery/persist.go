package delivery

import (
	"bytes"
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
	KindContent = "delivery.content"
)

// stored is a message's state in the journal; its finished attempts are
// records of their own (KindAttempt), so an attempt adds one small row,
// and so is what it sends (KindContent), written once: the state is
// rewritten at every attempt, the bytes never change.
type stored struct {
	Record Message `json:"record"` // Attempts left out
	// Content inline: how journals written before KindContent hold it.
	storedContent
	Schedule Backoff         `json:"schedule"`
	Ack      AckPolicy       `json:"ack"`
	Route    string          `json:"route,omitempty"`
	Held     bool            `json:"held,omitempty"`
	Number   int             `json:"number"`
	Pending  []storedPending `json:"pending,omitempty"`
	Running  []Attempt       `json:"running,omitempty"`
}

// storedContent is what a message sends.
type storedContent struct {
	Body       []byte      `json:"body,omitempty"`
	ResendBody []byte      `json:"resend_body,omitempty"`
	Header     http.Header `json:"header,omitempty"`
}

// contentHead is the first line of a KindContent record; the body's own
// bytes follow it. Writing them raw (not base64 inside JSON), and the
// resend body as what it adds to the body, keeps the record near the
// body's size: it is most of what the journal writes per message.
type contentHead struct {
	Header       http.Header `json:"header,omitempty"`
	ResendSuffix []byte      `json:"resend_suffix,omitempty"` // ResendBody is Body + this
	ResendBody   []byte      `json:"resend_body,omitempty"`   // when it is not
}

func (c storedContent) marshal() ([]byte, error) {
	head := contentHead{Header: c.Header}
	if suffix, ok := bytes.CutPrefix(c.ResendBody, c.Body); ok && c.ResendBody != nil {
		head.ResendSuffix = suffix
	} else {
		head.ResendBody = c.ResendBody
	}
	line, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(line)+1+len(c.Body))
	return append(append(append(out, line...), '\n'), c.Body...), nil
}

func (c *storedContent) unmarshal(value []byte) error {
	line, body, ok := bytes.Cut(value, []byte{'\n'})
	if !ok {
		return errors.New("content record has no head line")
	}
	var head contentHead
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("content head: %w", err)
	}
	c.Body, c.Header, c.ResendBody = body, head.Header, head.ResendBody
	if head.ResendSuffix != nil {
		c.ResendBody = append(slices.Clip(body), head.ResendSuffix...)
	}
	return nil
}

type storedPending struct {
	Trigger Trigger   `json:"trigger"`
	URL     string    `json:"url"`
	At      time.Time `json:"at"`
}

func attemptKey(id string, n int) string { return fmt.Sprintf("%s/%06d", id, n) }

// saveLocked queues ent's state and the finished attempts given, to be
// written in one commit, and returns that commit (nil without a journal).
// It copies what it needs under the lock; marshalling and the disk commit
// happen on the journal writer's goroutine, so the lock is never held for
// a disk write. A caller that must have the record on disk before it goes
// on (Submit before it returns, an attempt before its request leaves)
// waits on the commit after letting the lock go.
func (e *Engine) saveLocked(ent *entry) *journal.Commit {
	if e.writer == nil {
		return nil
	}
	return e.writer.Queue(e.recordsLocked(ent, nil)...)
}

// saveNewLocked is saveLocked for a message just submitted: its content
// and the submitter's own records of it go in the same commit.
func (e *Engine) saveNewLocked(ent *entry, also []journal.Entry) *journal.Commit {
	if e.writer == nil {
		return nil
	}
	records := e.recordsLocked(ent, nil)
	content := storedContent{Body: ent.body, ResendBody: ent.resendBody, Header: ent.header}
	records = append(records, journal.Lazy{Kind: KindContent, Key: ent.rec.ID, Value: content.marshal})
	for _, r := range also {
		records = append(records, journal.Lazy{Kind: r.Kind, Key: r.Key, Delete: r.Delete, Value: journal.Bytes(r.Value)})
	}
	return e.writer.Queue(records...)
}

// postLocked is saveLocked for a change nobody waits for: an attempt's
// outcome (a crash before it is written leaves the attempt running in the
// journal, which Restore records as interrupted, never repeats).
func (e *Engine) postLocked(ent *entry, finished ...Attempt) {
	if e.writer != nil {
		e.writer.Post(e.recordsLocked(ent, finished)...)
	}
}

func (e *Engine) recordsLocked(ent *entry, finished []Attempt) []journal.Lazy {
	st := stored{
		Record: ent.rec, Ack: ent.ack, Route: ent.route, Held: ent.held, Number: ent.number, Running: slices.Clone(ent.running),
	}
	st.Record.Attempts = nil
	if st.Record.NextAttempt != nil {
		t := *st.Record.NextAttempt
		st.Record.NextAttempt = &t
	}
	if b, ok := ent.schedule.(Backoff); ok {
		st.Schedule = b
	}
	for _, p := range ent.pending {
		st.Pending = append(st.Pending, storedPending{Trigger: p.trig, URL: p.url, At: p.at})
	}
	id := ent.rec.ID
	records := []journal.Lazy{{Kind: KindMessage, Key: id, Value: func() ([]byte, error) {
		v, err := json.Marshal(st)
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", id, err)
		}
		return v, nil
	}}}
	for _, a := range finished {
		records = append(records, journal.Lazy{Kind: KindAttempt, Key: attemptKey(id, a.Number), Value: func() ([]byte, error) {
			v, err := json.Marshal(a)
			if err != nil {
				return nil, fmt.Errorf("attempt %s/%d: %w", id, a.Number, err)
			}
			return v, nil
		}})
	}
	return records
}

// waitSaved waits for a commit from saveLocked (nil: no journal).
func waitSaved(c *journal.Commit) error {
	if c == nil {
		return nil
	}
	return c.Wait()
}

func readContents(j journal.Journal) (map[string]storedContent, error) {
	contents := map[string]storedContent{}
	err := j.Scan(KindContent, func(id string, value []byte) error {
		var c storedContent
		if err := c.unmarshal(value); err != nil {
			return err
		}
		contents[id] = c
		return nil
	})
	return contents, err
}

// Bodies reads what the journal's messages send, by message id: a
// provider that journals its messages with a Submission keeps no copy of
// the body of its own and finds it here on restore.
func Bodies(j journal.Journal) (map[string][]byte, error) {
	contents, err := readContents(j)
	if err != nil {
		return nil, err
	}
	bodies := make(map[string][]byte, len(contents))
	for id, c := range contents {
		bodies[id] = c.Body
	}
	return bodies, nil
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
	var migrated []journal.Lazy
	contents, err := readContents(j)
	if err != nil {
		return 0, 0, fmt.Errorf("restore: %w", err)
	}
	err = j.Scan(KindMessage, func(id string, value []byte) error {
		var st stored
		if err := json.Unmarshal(value, &st); err != nil {
			return err
		}
		if err := st.Schedule.Validate(); err != nil {
			return err
		}
		if c, ok := contents[id]; ok {
			st.storedContent = c
		} else if st.Body == nil {
			return errors.New("no content: the journal lost what this message sends")
		} else {
			// Written inline by an older version: its own record from now
			// on, since the state is rewritten without it.
			migrated = append(migrated, journal.Lazy{Kind: KindContent, Key: id, Value: st.storedContent.marshal})
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
	if len(migrated) > 0 {
		if err := e.writer.Queue(migrated...).Wait(); err != nil {
			e.reset()
			return 0, 0, fmt.Errorf("restore: move contents to their records: %w", err)
		}
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
