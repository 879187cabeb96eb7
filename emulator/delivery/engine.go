package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal"

	"github.com/ipnlab/ipnlab/emulator/watchdog"
)

// AckPolicy says which HTTP answers acknowledge a delivery.
type AckPolicy int

const (
	// Only200 acknowledges on HTTP 200 alone (PayPal's and PayDo's rule).
	Only200 AckPolicy = iota
	// Any2xx also takes 201-299, recording a note that strict mode would not.
	Any2xx
)

// Sentinel errors callers branch on.
var (
	ErrNotFound  = errors.New("no such message")
	ErrDuplicate = errors.New("message id already used")
	ErrClosed    = errors.New("delivery engine closed")
	ErrNotHeld   = errors.New("message is not held")
)

// DefaultAckTimeout: no answer within 30 s is a failure (PayPal's
// figure, and a common one).
const DefaultAckTimeout = 30 * time.Second

// DefaultResponseLimit is how much of a listener's answer is recorded.
const DefaultResponseLimit = 4 << 10

// Config configures an Engine.
type Config struct {
	Clock clock.Clock
	// Client sends the deliveries. The default never follows redirects
	// (a 302 is not an ack), uses no proxy and keeps connections alive.
	Client *http.Client
	// AckTimeout bounds each attempt on the wall clock: it limits a real
	// network exchange, which a manual clock does not see.
	AckTimeout time.Duration
	// ResponseLimit is how many bytes of each answer are recorded.
	ResponseLimit int
	// OnEvent, if set, is called after every change, outside the engine's
	// locks, in the order the changes happened for each message.
	OnEvent func(Event)
	// Journal, if set, records every message, attempt and pending attempt
	// so Restore can resume them after a restart. Each attempt is written
	// before it starts, so one cut short by a crash is known, not repeated.
	// Writes go through a journal.Writer (this one if it is one, else one
	// of the engine's own), never under the engine's lock.
	Journal journal.Journal
	// OnError hears of journal writes that failed outside a caller's
	// request (during attempts); Submit and Resend return theirs.
	OnError func(error)
	// HistoryLimit bounds the finished messages (Sent or Failed, nothing
	// queued) kept, in memory and in the journal; the oldest go first.
	// 0 keeps them all. A long-lived shared emulator needs a bound.
	HistoryLimit int
	// EvictAfter is how long (clock time) a finished message stays past
	// HistoryLimit, so a listener's late postback is still verified
	// (default 1 h; EvictAtOnce: no grace, for a clock that does not move
	// while messages pile up, as in ipnlab load).
	EvictAfter time.Duration
	// Hold, if set, keeps a finished message past HistoryLimit a while
	// longer while it returns true (ipnlab load holds those still awaiting
	// their first postback); eviction, oldest first, waits for it, but
	// never past twice HistoryLimit: memory stays bounded when a listener
	// falls behind for good.
	Hold func(id string) bool
	// OnEvict hears of the messages HistoryLimit dropped, outside the
	// engine's locks, so providers can drop what they keep of them.
	OnEvict func(ids []string)
	// Stamp, if set, may give each attempt another header and body as it
	// leaves, outside the engine's locks: a provider that signs with a
	// timestamp makes its signature fresh on every retry. header is the
	// message's, shared: Stamp returns a changed copy, never changes it;
	// m carries no attempts. An error fails the attempt with it (and the
	// schedule goes on).
	Stamp func(m Message, a Attempt, header http.Header, body []byte) (http.Header, []byte, error)
	// Allow limits delivery targets (nil: any). It is checked when a target
	// is given; the clients given here must check it on connection too
	// (NewTransport does).
	Allow *Allowlist
}

// EventType names what changed.
type EventType string

// Event types.
const (
	EventQueued  EventType = "queued"  // a message was submitted
	EventAttempt EventType = "attempt" // an attempt finished
	EventResend  EventType = "resend"  // a manual resend was queued
)

// Event tells an observer what changed; Message is a snapshot taken then.
type Event struct {
	Type    EventType
	Message Message
	Attempt *Attempt
}

// Submission is a notification handed to the engine.
type Submission struct {
	ID       string
	Provider string
	Kind     string
	TxnID    string
	URL      string
	Body     []byte
	// ResendBody, if set, is sent on manual resends (PayPal adds resend=true).
	ResendBody []byte
	Header     http.Header
	Schedule   Schedule
	Ack        AckPolicy
	// Hold keeps the message in History as Held, unsent, until Release
	// or a manual Resend.
	Hold bool
	// Client, if set, sends this message instead of the engine's client
	// (PayDo's deliveries leave from their own source address).
	Client *http.Client
	// Route names Client for the journal: after a restart, Restore asks
	// its ClientFor for the client of (Provider, Route).
	Route string
	// Burst, if set, holds the first delivery back, connected and written
	// but for its last byte, until every member of the burst is ready,
	// so that they reach the listener together (not kept in a journal:
	// after a restart the message is delivered alone).
	Burst *Burst
	// Records go to the journal in the same commit as the message: the
	// provider's own record of it (what its verifier must know after a
	// restart), so one is never on disk without the other.
	Records []journal.Entry
}

// Engine delivers submissions and keeps their records.
type Engine struct {
	cfg Config

	writer     *journal.Writer // nil without a journal
	ownsWriter bool

	mu    sync.Mutex
	msgs  map[string]*entry
	order []string
	// reserved holds the ids of submissions waiting for their journal
	// commit, so a second Submit of the same id is refused meanwhile.
	reserved map[string]bool
	closed   bool
	outage   bool // every attempt fails as if the listener were down

	// wg counts armed and running attempts, so Shutdown can wait for them.
	wg       sync.WaitGroup
	inFlight map[*Attempt]context.CancelCauseFunc

	done    []string // finished messages, oldest first, for HistoryLimit
	dropped int      // ids in order whose message was evicted
}

type entry struct {
	rec        Message
	body       []byte
	resendBody []byte
	header     http.Header
	schedule   Schedule
	ack        AckPolicy
	client     *http.Client
	route      string
	held       bool
	pending    []*pending // attempts waiting for their time
	running    []Attempt  // attempts started and not finished
	number     int        // attempts started
	inDone     bool       // listed in Engine.done
	doneAt     time.Time  // clock time it was listed
	burst      *Burst     // its first delivery's, until it is made
}

// pending is an attempt waiting for its clock time.
type pending struct {
	trig  Trigger
	url   string
	at    time.Time
	timer clock.Timer // nil once the engine is closed
}

// NewEngine returns an engine; cfg.Clock is required.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Clock == nil {
		return nil, errors.New("delivery: a clock is required")
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.ResponseLimit <= 0 {
		cfg.ResponseLimit = DefaultResponseLimit
	}
	switch {
	case cfg.EvictAfter == 0:
		cfg.EvictAfter = time.Hour
	case cfg.EvictAfter < 0:
		cfg.EvictAfter = 0
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(NewTransport(nil, nil, cfg.Allow))
	}
	e := &Engine{cfg: cfg, msgs: make(map[string]*entry), reserved: map[string]bool{}, inFlight: make(map[*Attempt]context.CancelCauseFunc)}
	if cfg.Journal != nil {
		if w, ok := cfg.Journal.(*journal.Writer); ok {
			e.writer = w
		} else {
			e.writer, e.ownsWriter = journal.NewWriter(cfg.Journal, cfg.OnError), true
		}
	}
	return e, nil
}

// EvictAtOnce is an EvictAfter with no grace: a finished message past
// HistoryLimit leaves at once.
const EvictAtOnce time.Duration = -1

// Submit records a message and sends it now (or holds it).
func (e *Engine) Submit(s Submission) (Message, error) {
	if s.ID == "" {
		return Message{}, errors.New("submit: message id is empty")
	}
	if s.Schedule == nil {
		return Message{}, fmt.Errorf("submit %s: no schedule", s.ID)
	}
	if !s.Hold {
		if err := e.checkTarget(s.URL); err != nil {
			return Message{}, fmt.Errorf("submit %s: %w", s.ID, err)
		}
	}
	if _, ok := s.Schedule.(Backoff); !ok && e.cfg.Journal != nil {
		return Message{}, fmt.Errorf("submit %s: a journal can only keep Backoff schedules, got %T", s.ID, s.Schedule)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return Message{}, ErrClosed
	}
	if _, dup := e.msgs[s.ID]; dup || e.reserved[s.ID] {
		e.mu.Unlock()
		return Message{}, fmt.Errorf("submit %s: %w", s.ID, ErrDuplicate)
	}
	ent := &entry{
		rec: Message{
			ID: s.ID, Provider: s.Provider, Kind: s.Kind, TxnID: s.TxnID, URL: s.URL,
			Created: e.cfg.Clock.Now(), Status: Queued,
		},
		body: s.Body, resendBody: s.ResendBody, header: s.Header,
		schedule: s.Schedule, ack: s.Ack, held: s.Hold, client: s.Client, route: s.Route, burst: s.Burst,
	}
	if ent.client == nil {
		ent.client = e.cfg.Client
	}
	if s.Hold && s.Burst != nil {
		s.Burst.Leave() // held: it leaves when released, alone
		ent.burst = nil
	}
	if s.Hold {
		ent.rec.Status = Held
	} else {
		// Queued before it is journaled, so a crash right after Submit
		// still delivers it on restart.
		ent.pending = []*pending{{trig: Initial, url: ent.rec.URL, at: ent.rec.Created}}
	}
	saved := e.saveNewLocked(ent, s.Records)
	if saved != nil {
		// On disk before it is listed or sent: a message a caller was told
		// of survives a crash.
		e.reserved[s.ID] = true
		e.mu.Unlock()
		err := saved.Wait()
		e.mu.Lock()
		delete(e.reserved, s.ID)
		if err != nil {
			e.mu.Unlock()
			return Message{}, fmt.Errorf("submit %s: %w", s.ID, err)
		}
	}
	e.msgs[s.ID] = ent
	e.order = append(e.order, s.ID)
	snap := ent.snapshot()
	e.mu.Unlock()
	// Observers hear of the message before any attempt of it.
	e.emit(Event{Type: EventQueued, Message: snap})
	if !s.Hold {
		e.mu.Lock()
		e.armLocked(ent, ent.pending[0])
		e.mu.Unlock()
	}
	return snap, nil
}

// Release sends a held message to url, as PayPal does when notifications
// are switched back on.
func (e *Engine) Release(id, url string) error {
	if err := e.checkTarget(url); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	e.mu.Lock()
	ent, ok := e.msgs[id]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("release %s: %w", id, ErrNotFound)
	}
	if !ent.held {
		e.mu.Unlock()
		return fmt.Errorf("release %s: %w", id, ErrNotHeld)
	}
	ent.held = false
	ent.rec.URL = url
	ent.rec.Status = Queued
	p := e.queueLocked(ent, Initial, url, e.cfg.Clock.Now())
	if err := e.commitThenArm(ent, p, e.saveLocked(ent)); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

// commitThenArm lets the lock go, waits for saved (a commit from
// saveLocked of ent with p queued) and then arms p, so a caller told its
// attempt is queued can rely on it after a crash. If the commit failed, p
// is taken back out and the error returned. Called with the lock held;
// returns without it.
func (e *Engine) commitThenArm(ent *entry, p *pending, saved *journal.Commit) error {
	if saved != nil {
		e.mu.Unlock()
		err := saved.Wait()
		e.mu.Lock()
		if err != nil {
			takeLocked(ent, p)
			e.refreshLocked(ent)
			e.mu.Unlock()
			return err
		}
	}
	if slices.Contains(ent.pending, p) { // an ack meanwhile may have dropped it
		e.armLocked(ent, p)
	}
	e.mu.Unlock()
	return nil
}

// Held lists the messages waiting for Release, oldest first.
func (e *Engine) Held() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, id := range e.order {
		if ent, ok := e.msgs[id]; ok && ent.held {
			ids = append(ids, id)
		}
	}
	return ids
}

// Resend queues a manual attempt of message id to url ("" for the URL of
// its first delivery). It does not change the retry schedule: an ack stops
// it, a failure leaves it as it was.
func (e *Engine) Resend(id, url string) (Message, error) {
	e.mu.Lock()
	ent, ok := e.msgs[id]
	if !ok {
		e.mu.Unlock()
		return Message{}, fmt.Errorf("resend %s: %w", id, ErrNotFound)
	}
	if url == "" {
		url = ent.rec.URL
	}
	if err := e.checkTarget(url); err != nil {
		e.mu.Unlock()
		return Message{}, fmt.Errorf("resend %s: %w", id, err)
	}
	if ent.held {
		ent.held = false
		ent.rec.URL = url
	}
	ent.rec.Resent = true
	p := e.queueLocked(ent, Manual, url, e.cfg.Clock.Now())
	e.refreshLocked(ent)
	snap := ent.snapshot()
	if err := e.commitThenArm(ent, p, e.saveLocked(ent)); err != nil {
		return Message{}, fmt.Errorf("resend %s: %w", id, err)
	}
	e.emit(Event{Type: EventResend, Message: snap})
	return snap, nil
}

// Get returns a snapshot of message id.
func (e *Engine) Get(id string) (Message, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.msgs[id]
	if !ok {
		return Message{}, false
	}
	return ent.snapshot(), true
}

// Running is the number of message id's latest attempt under way, or 0.
func (e *Engine) Running(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.msgs[id]
	if !ok || len(ent.running) == 0 {
		return 0
	}
	return ent.running[len(ent.running)-1].Number
}

// Body returns the bytes of message id's first delivery.
func (e *Engine) Body(id string) ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.msgs[id]
	if !ok {
		return nil, false
	}
	return ent.body, true
}

// List returns snapshots of the messages keep accepts, oldest first. keep
// may be nil.
func (e *Engine) List(keep func(*Message) bool) []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Message, 0, len(e.msgs))
	for _, id := range e.order {
		ent, ok := e.msgs[id]
		if !ok {
			continue
		}
		if keep == nil || keep(&ent.rec) {
			out = append(out, ent.snapshot())
		}
	}
	return out
}

// QueueStats is the retry queue at one moment.
type QueueStats struct {
	Waiting int       // attempts armed for a clock time
	Running int       // attempts under way
	Held    int       // messages held unsent (IPN off)
	Oldest  time.Time // the earliest armed attempt's time; zero when none
}

// Queue counts the queue. It walks every message in History, so it is
// for scrapes and dashboards, not for a hot path.
func (e *Engine) Queue() QueueStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	var q QueueStats
	for _, ent := range e.msgs {
		q.Waiting += len(ent.pending)
		q.Running += len(ent.running)
		if ent.held {
			q.Held++
		}
		for _, p := range ent.pending {
			if q.Oldest.IsZero() || p.at.Before(q.Oldest) {
				q.Oldest = p.at
			}
		}
	}
	return q
}

// SetOutage makes every attempt fail without a request, as if the
// listener were down, until it is switched off.
func (e *Engine) SetOutage(down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outage = down
}

// Close stops every scheduled attempt and waits for running ones. Pending
// attempts stay in the journal, for Restore.
func (e *Engine) Close() { _ = e.Shutdown(context.Background()) }

// Shutdown stops scheduling attempts and waits for running ones until ctx
// ends; then it cuts them short. An attempt cut short is recorded as failed
// ("emulator shutting down") and its retry stays queued in the journal.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	for _, ent := range e.msgs {
		for _, p := range ent.pending {
			e.disarmLocked(p)
		}
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		e.cancelInFlight(errShutdown)
		<-done
		err = fmt.Errorf("delivery shutdown: attempts cut short: %w", ctx.Err())
	}
	e.flushJournal()
	return err
}

// flushJournal waits for every queued write and stops the engine's own
// writer. Failed writes were returned to their callers or reported.
func (e *Engine) flushJournal() {
	switch {
	case e.writer == nil:
	case e.ownsWriter:
		_ = e.writer.Close()
	default:
		_ = e.writer.Flush()
	}
}

var errShutdown = errors.New("emulator shutting down")

// OutageError is the error of an attempt made during a simulated outage
// (SetOutage): it never reached the listener.
const OutageError = "listener down (simulated outage)"

// NotJournaledError starts the error of an attempt that was not made
// because the store did not record it as running.
const NotJournaledError = "not sent: the store did not record this attempt"

// StampError starts the error of an attempt its provider could not stamp
// or sign (Config.Stamp): it was not sent.
const StampError = "not sent: the provider could not stamp this attempt"

// queueLocked adds an attempt of ent at clock time at to its queue; the
// caller journals the entry, then arms the attempt.
func (e *Engine) queueLocked(ent *entry, trig Trigger, url string, at time.Time) *pending {
	p := &pending{trig: trig, url: url, at: at}
	ent.pending = append(ent.pending, p)
	if trig != Manual {
		next := at
		ent.rec.NextAttempt = &next
	}
	return p
}

// armLocked sets p's timer, unless the engine is closed (then p waits in
// the journal for a restart).
func (e *Engine) armLocked(ent *entry, p *pending) {
	if e.closed {
		return
	}
	e.wg.Add(1)
	p.timer = e.cfg.Clock.At(p.at, func() {
		defer e.wg.Done()
		e.attempt(ent, p)
	})
}

// disarmLocked stops p's timer; a stopped callback never runs, so it no
// longer counts as work in progress.
func (e *Engine) disarmLocked(p *pending) {
	if p.timer != nil && p.timer.Stop() {
		e.wg.Done()
	}
	p.timer = nil
}

// takeLocked removes p from ent's queue, reporting whether it was there.
func takeLocked(ent *entry, p *pending) bool {
	i := slices.Index(ent.pending, p)
	if i < 0 {
		return false
	}
	ent.pending = slices.Delete(ent.pending, i, i+1)
	return true
}

func (e *Engine) attempt(ent *entry, p *pending) {
	e.mu.Lock()
	if e.closed || !takeLocked(ent, p) {
		e.mu.Unlock()
		return
	}
	trig, url := p.trig, p.url
	ent.number++
	a := Attempt{Number: ent.number, Trigger: trig, URL: url, Start: e.cfg.Clock.Now()}
	body := ent.body
	if trig == Manual && ent.resendBody != nil {
		body = ent.resendBody
	}
	header, ack, client, down, burst := ent.header, ent.ack, ent.client, e.outage, ent.burst
	ent.burst = nil // the first delivery only
	if trig == Retry {
		ent.rec.Retries++
	}
	if trig != Manual {
		ent.rec.NextAttempt = nil
	}
	ent.running = append(ent.running, a)
	var stampOn Message
	if e.cfg.Stamp != nil {
		stampOn = ent.rec // what the message is; its attempts are not for Stamp
		stampOn.Attempts, stampOn.NextAttempt = nil, nil
	}
	saved := e.saveLocked(ent)
	ctx, cancel := context.WithCancelCause(context.Background())
	e.inFlight[&a] = cancel
	e.mu.Unlock()
	// Running on disk before the request leaves: a crash from here on is
	// an interrupted attempt after restart, never a silent repeat. One the
	// store did not take never leaves: a process that lost its store
	// (another now writes it) must not deliver what no record shows.
	unsaved := waitSaved(saved)
	e.report(unsaved)

	switch {
	case unsaved != nil:
		a.Error = fmt.Sprintf("%s: %v", NotJournaledError, unsaved)
		if burst != nil {
			burst.Leave()
		}
	case down:
		a.Error = OutageError
		if burst != nil {
			burst.Leave()
		}
	default:
		if e.cfg.Stamp != nil {
			var err error
			if header, body, err = e.cfg.Stamp(stampOn, a, header, body); err != nil {
				a.Error = fmt.Sprintf("%s: %v", StampError, err)
				if burst != nil {
					burst.Leave()
				}
				break
			}
		}
		e.post(ctx, client, &a, url, header, body, ack, burst)
	}
	cancel(nil)

	e.mu.Lock()
	delete(e.inFlight, &a)
	if next := e.finishLocked(ent, a, e.cfg.Clock.Now()); next != nil {
		e.armLocked(ent, next)
	}
	snap := ent.snapshot()
	evicted := e.retireLocked(ent)
	e.mu.Unlock()
	e.emit(Event{Type: EventAttempt, Message: snap, Attempt: &a})
	e.evicted(evicted)
}

// resending reports a manual resend queued or running.
func (ent *entry) resending() bool {
	return slices.ContainsFunc(ent.pending, func(p *pending) bool { return p.trig == Manual }) ||
		slices.ContainsFunc(ent.running, func(a Attempt) bool { return a.Trigger == Manual })
}

// finished reports a message nothing more will happen to unless asked.
func (ent *entry) finished() bool {
	return !ent.held && len(ent.pending) == 0 && len(ent.running) == 0 && len(ent.rec.Attempts) > 0
}

// finishLocked records attempt a's outcome: an ack stops the schedule, a
// failure of a scheduled attempt queues the next retry, counted from end;
// the caller arms it.
func (e *Engine) finishLocked(ent *entry, a Attempt, end time.Time) *pending {
	if i := slices.IndexFunc(ent.running, func(r Attempt) bool { return r.Number == a.Number }); i >= 0 {
		ent.running = slices.Delete(ent.running, i, i+1)
	}
	if len(ent.running) == 0 {
		ent.running = nil // a million waiting messages would each keep an empty array
	}
	var next *pending
	if a.Acked {
		if ent.rec.AckedAt == nil {
			t := a.Start
			ent.rec.AckedAt = &t
		}
		ent.pending = slices.DeleteFunc(ent.pending, func(p *pending) bool {
			if p.trig != Manual {
				e.disarmLocked(p)
			}
			return p.trig != Manual
		})
		ent.rec.NextAttempt = nil
	} else if a.Trigger != Manual && ent.rec.AckedAt == nil {
		if wait, ok := ent.schedule.Next(ent.rec.Retries + 1); ok {
			at := end.Add(wait)
			a.NextAttempt = &at
			next = e.queueLocked(ent, Retry, ent.rec.URL, at)
		}
	}
	ent.rec.LastCode = a.StatusCode
	ent.rec.Attempts = append(ent.rec.Attempts, a)
	e.refreshLocked(ent)
	e.postLocked(ent, a)
	return next
}

// cancelInFlight cuts every running HTTP exchange short with cause.
func (e *Engine) cancelInFlight(cause error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, cancel := range e.inFlight {
		cancel(cause)
	}
}

func (e *Engine) report(err error) {
	if err != nil && e.cfg.OnError != nil {
		e.cfg.OnError(err)
	}
}

// refreshLocked derives the History status from the record.
func (e *Engine) refreshLocked(ent *entry) {
	r := &ent.rec
	r.Resending = ent.resending()
	switch {
	case r.AckedAt != nil:
		r.Status = Sent
	case ent.held:
		r.Status = Held
	case len(r.Attempts) == 0:
		r.Status = Queued
	case r.NextAttempt != nil:
		r.Status = Retrying
	default:
		r.Status = Failed
	}
}

func (e *Engine) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
}

func (ent *entry) snapshot() Message {
	m := ent.rec
	m.Attempts = slices.Clone(ent.rec.Attempts)
	if m.Attempts == nil {
		m.Attempts = []Attempt{}
	}
	if m.NextAttempt != nil {
		t := *m.NextAttempt
		m.NextAttempt = &t
	}
	return m
}

// Responsive reports whether the engine's lock can be taken within d (see
// package watchdog).
func (e *Engine) Responsive(d time.Duration) bool { return watchdog.Free(&e.mu, d) }
