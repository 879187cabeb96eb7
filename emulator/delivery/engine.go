package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
)

// AckPolicy says which HTTP answers acknowledge a delivery.
type AckPolicy int

const (
	// Only200 acknowledges on HTTP 200 alone, as PayPal documents it.
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

// DefaultAckTimeout is PayPal's: no answer within 30 s is a failure.
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
	// Hold keeps the message in History as Disabled until Release.
	Hold bool
	// Client, if set, sends this message instead of the engine's client
	// (PayDo's deliveries leave from their own source address).
	Client *http.Client
}

// Engine delivers submissions and keeps their records.
type Engine struct {
	cfg Config

	mu     sync.Mutex
	msgs   map[string]*entry
	order  []string
	closed bool
	outage bool // every attempt fails as if the listener were down

	// wg counts attempts started on a clock that is not manual, so Close
	// can wait for them (a manual clock's Advance already does).
	wg sync.WaitGroup
}

type entry struct {
	rec        Message
	body       []byte
	resendBody []byte
	header     http.Header
	schedule   Schedule
	ack        AckPolicy
	client     *http.Client
	held       bool
	timer      clock.Timer // the next scheduled attempt
	resends    int         // manual resends queued or running
	number     int         // attempts started
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
	if cfg.Client == nil {
		cfg.Client = NewClient(nil)
	}
	return &Engine{cfg: cfg, msgs: make(map[string]*entry)}, nil
}

// NewTransport returns the transport deliveries use: no proxy, generous
// keep-alive, and connections made from localAddr when it is set (so a
// listener's source-address allowlist can be tested on loopback). tlsConfig
// may be nil (the system's roots).
func NewTransport(localAddr net.Addr, tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     tlsConfig,
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: localAddr}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
	}
}

// NewClient returns the HTTP client deliveries use by default: it never
// follows redirects (a 302 is not an ack). transport may be nil.
func NewClient(transport *http.Transport) *http.Client {
	if transport == nil {
		transport = NewTransport(nil, nil)
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Submit records a message and sends it now (or holds it).
func (e *Engine) Submit(s Submission) (Message, error) {
	if s.ID == "" {
		return Message{}, errors.New("submit: message id is empty")
	}
	if s.Schedule == nil {
		return Message{}, fmt.Errorf("submit %s: no schedule", s.ID)
	}
	if !s.Hold {
		if err := checkURL(s.URL); err != nil {
			return Message{}, fmt.Errorf("submit %s: %w", s.ID, err)
		}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return Message{}, ErrClosed
	}
	if _, dup := e.msgs[s.ID]; dup {
		e.mu.Unlock()
		return Message{}, fmt.Errorf("submit %s: %w", s.ID, ErrDuplicate)
	}
	ent := &entry{
		rec: Message{
			ID: s.ID, Provider: s.Provider, Kind: s.Kind, TxnID: s.TxnID, URL: s.URL,
			Created: e.cfg.Clock.Now(), Status: Queued,
		},
		body: s.Body, resendBody: s.ResendBody, header: s.Header.Clone(),
		schedule: s.Schedule, ack: s.Ack, held: s.Hold, client: s.Client,
	}
	if ent.client == nil {
		ent.client = e.cfg.Client
	}
	if s.Hold {
		ent.rec.Status = Disabled
	}
	e.msgs[s.ID] = ent
	e.order = append(e.order, s.ID)
	snap := ent.snapshot()
	e.mu.Unlock()
	// Observers hear of the message before any attempt of it.
	e.emit(Event{Type: EventQueued, Message: snap})
	if !s.Hold {
		e.mu.Lock()
		if !e.closed {
			e.startLocked(ent, Initial, ent.rec.URL, ent.rec.Created)
		}
		e.mu.Unlock()
	}
	return snap, nil
}

// Release sends a held message to url, as PayPal does when notifications
// are switched back on.
func (e *Engine) Release(id, url string) error {
	if err := checkURL(url); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.msgs[id]
	if !ok {
		return fmt.Errorf("release %s: %w", id, ErrNotFound)
	}
	if !ent.held {
		return fmt.Errorf("release %s: %w", id, ErrNotHeld)
	}
	ent.held = false
	ent.rec.URL = url
	ent.rec.Status = Queued
	e.startLocked(ent, Initial, url, e.cfg.Clock.Now())
	return nil
}

// Held lists the messages waiting for Release, oldest first.
func (e *Engine) Held() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, id := range e.order {
		if e.msgs[id].held {
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
	if err := checkURL(url); err != nil {
		e.mu.Unlock()
		return Message{}, fmt.Errorf("resend %s: %w", id, err)
	}
	if ent.held {
		ent.held = false
		ent.rec.URL = url
	}
	ent.resends++
	ent.rec.Resent = true
	e.refreshLocked(ent)
	snap := ent.snapshot()
	e.startLocked(ent, Manual, url, e.cfg.Clock.Now())
	e.mu.Unlock()
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
	out := make([]Message, 0, len(e.order))
	for _, id := range e.order {
		ent := e.msgs[id]
		if keep == nil || keep(&ent.rec) {
			out = append(out, ent.snapshot())
		}
	}
	return out
}

// SetOutage makes every attempt fail without a request, as if the
// listener were down, until it is switched off.
func (e *Engine) SetOutage(down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outage = down
}

// Close stops every scheduled attempt and waits for running ones.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	for _, ent := range e.msgs {
		if ent.timer != nil {
			ent.timer.Stop()
		}
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// startLocked schedules attempt of ent at clock time at.
func (e *Engine) startLocked(ent *entry, trig Trigger, url string, at time.Time) {
	_, manualClock := e.cfg.Clock.(clock.Controller)
	if !manualClock {
		e.wg.Add(1)
	}
	run := func() {
		if !manualClock {
			defer e.wg.Done()
		}
		e.attempt(ent, trig, url)
	}
	t := e.cfg.Clock.At(at, run)
	if trig != Manual {
		ent.timer = t
	}
}

func (e *Engine) attempt(ent *entry, trig Trigger, url string) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	ent.number++
	a := Attempt{Number: ent.number, Trigger: trig, URL: url, Start: e.cfg.Clock.Now()}
	body := ent.body
	if trig == Manual && ent.resendBody != nil {
		body = ent.resendBody
	}
	header, ack, client, down := ent.header, ent.ack, ent.client, e.outage
	if trig == Retry {
		ent.rec.Retries++
	}
	if trig != Manual {
		ent.timer = nil
		ent.rec.NextAttempt = nil
	}
	e.mu.Unlock()

	if down {
		a.Error = "listener down (simulated outage)"
	} else {
		e.post(client, &a, url, header, body, ack)
	}

	e.mu.Lock()
	if trig == Manual {
		ent.resends--
	}
	if a.Acked {
		if ent.rec.AckedAt == nil {
			t := a.Start
			ent.rec.AckedAt = &t
		}
		if ent.timer != nil {
			ent.timer.Stop()
			ent.timer = nil
			ent.rec.NextAttempt = nil
		}
	} else if trig != Manual && ent.rec.AckedAt == nil && !e.closed {
		if wait, ok := ent.schedule.Next(ent.rec.Retries + 1); ok {
			next := e.cfg.Clock.Now().Add(wait)
			ent.rec.NextAttempt = &next
			a.NextAttempt = &next
			e.startLocked(ent, Retry, ent.rec.URL, next)
		}
	}
	ent.rec.LastCode = a.StatusCode
	ent.rec.Attempts = append(ent.rec.Attempts, a)
	e.refreshLocked(ent)
	snap := ent.snapshot()
	e.mu.Unlock()
	e.emit(Event{Type: EventAttempt, Message: snap, Attempt: &a})
}

// refreshLocked derives the History status from the record.
func (e *Engine) refreshLocked(ent *entry) {
	r := &ent.rec
	r.Resending = ent.resends > 0
	switch {
	case r.AckedAt != nil:
		r.Status = Sent
	case ent.held:
		r.Status = Disabled
	case len(r.Attempts) == 0:
		r.Status = Queued
	case r.NextAttempt != nil:
		r.Status = Retrying
	default:
		r.Status = Failed
	}
}

// post makes one HTTP exchange and fills in the attempt's outcome.
func (e *Engine) post(client *http.Client, a *Attempt, url string, header http.Header, body []byte, ack AckPolicy) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.AckTimeout)
	defer cancel()
	start := time.Now()
	defer func() { a.Duration = time.Since(start) }()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		a.Error = err.Error()
		return
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			a.Error = fmt.Sprintf("no answer within %s", e.cfg.AckTimeout)
		} else {
			a.Error = err.Error()
		}
		return
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	head, err := io.ReadAll(io.LimitReader(resp.Body, int64(e.cfg.ResponseLimit)))
	a.Response = string(head)
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		a.Error = fmt.Sprintf("reading the answer: %v", err)
		return
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		a.Acked = true
	case resp.StatusCode > 200 && resp.StatusCode < 300 && ack == Any2xx:
		a.Acked = true
		a.Note = fmt.Sprintf("HTTP %d taken as an ack; PayPal documents only 200 (strict mode fails it)", resp.StatusCode)
	case resp.StatusCode > 200 && resp.StatusCode < 300:
		a.Note = fmt.Sprintf("HTTP %d is not an ack: only 200 stops the resends", resp.StatusCode)
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
