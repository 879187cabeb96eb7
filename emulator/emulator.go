// Package emulator wires the fake payment providers, their delivery engine,
// clock and event journal into one http.Handler: the verifier PayPal's
// listeners post back to, and the control API under /api/v1/. Use it
// in-process (wrap Handler in httptest.NewServer) or with Start.
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/metrics"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/generate"
)

// Default merchant, so messages have a stable receiver a listener can be
// configured with.
const (
	DefaultReceiverEmail = "merchant@example.com"
	DefaultReceiverID    = "LABMERCHANT01"
)

// Config configures an Emulator. The zero value is a working emulator on
// the real clock, with notifications off until a notify URL is set.
type Config struct {
	// Clock defaults to the real clock.
	Clock clock.Clock
	// PayPal and PayDo are the built-in providers' settings, owned by
	// their packages.
	PayPal paypal.Settings
	PayDo  paydo.Settings
	// AckTimeout bounds each delivery (default 30 s, wall time).
	AckTimeout time.Duration
	// Seed makes generated messages reproducible (0: drawn at start).
	Seed uint64
	// TLS configures HTTPS deliveries, e.g. a private CA for a listener's
	// self-signed certificate (nil: the system's roots).
	TLS *tls.Config
	// Client overrides the HTTP client every delivery uses.
	Client *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// EventBuffer is how many events the journal keeps.
	EventBuffer int
	// NoDeliveryEvents leaves messages, attempts and postbacks out of the
	// event journal (the Observer still hears them): for a tool that
	// sends thousands a second and reads its counters, not the journal
	// (ipnlab load), building each event's summary cost a tenth of its
	// CPU.
	NoDeliveryEvents bool
	// Journal, if set, keeps messages, attempts, postbacks, the retry
	// queue, registrations and the clock; New resumes from it. The
	// emulator does not close it.
	Journal journal.Journal
	// Allow limits where deliveries may go (nil: anywhere).
	Allow *delivery.Allowlist
	// HistoryLimit bounds the finished messages kept (0: all); the oldest
	// leave History, with their postbacks.
	HistoryLimit int
	// EvictAfter is how long (clock time) a finished message past the limit
	// stays, so late postbacks are still verified (default 1 h).
	EvictAfter time.Duration
	// HoldHistory, if set, keeps a finished message past HistoryLimit while
	// it returns true (see delivery.Config.Hold).
	HoldHistory func(id string) bool
	// APIToken, if set, is required (Authorization: Bearer) on the control
	// API and on /metrics; never logged.
	APIToken string
	// MetricsToken, if set, also opens /metrics (and nothing else), so
	// that a scraper does not hold the API token.
	MetricsToken string
	// Account names the merchant account this emulator is in a sandbox
	// (package sandbox): its metrics carry it. Empty for a standalone
	// emulator.
	Account string
	// StoreHealth, if set, says whether the store is still this
	// emulator's (nil) or why not: /healthz fails with it.
	StoreHealth func() error
	// Observer hears of every change in-process (see Observer).
	Observer Observer
	// Scenarios, if set, runs catalog scenarios for the console and the
	// API (POST /api/v1/scenarios/{name}/run).
	Scenarios ScenarioRunner
	// Providers are plugged in next to the built-in PayPal and PayDo:
	// each makes its provider for this emulator (see Factory).
	Providers []Factory
	// Intercept, if set, makes the emulator an HTTPS proxy for PayPal's
	// verify hosts, with certificates from this CA: a listener that
	// hard-codes https://ipnpb.paypal.com reaches the verifier through
	// HTTPS_PROXY (see package intercept).
	Intercept *intercept.CA
}

// Observer hears, synchronously and before the event journal, of every
// delivery change, postback and PayDo lookup: for tools that account for
// every message (ipnlab load) without decoding the journal's JSON, which
// may drop events under load. Any function may be nil; those set must be
// quick and safe for concurrent use.
type Observer struct {
	Delivery func(delivery.Event)
	Postback func(paypal.PostbackRecord)
	Lookup   func(paydo.Lookup)
	// Evict hears the messages that left History (HistoryLimit): what an
	// observer keeps of them can go too.
	Evict func(ids []string)
}

// Emulator is a running fake PayPal with its control API.
type Emulator struct {
	cfg     Config
	clock   clock.Clock
	engine  *delivery.Engine
	paypal  *paypal.Plugin
	paydo   *paydo.Plugin
	bus     *events.Bus
	proxy   *intercept.Proxy // nil unless Config.Intercept
	log     *slog.Logger
	handler http.Handler

	mu  sync.Mutex
	seq uint64 // messages generated, for sub-seeds
	// planned are the sends armed on the clock and not yet fired, by key,
	// so that a user can be told what still waits, and Shutdown disarms
	// them (plansStopped): on a clock that outlives the emulator (a
	// replica that steps down, a test's manual clock) they would fire
	// into an engine that is gone.
	planned      map[string]armedPlan
	plansStopped bool
	// runID and scheduleSeq make planned sends' journal keys unique
	// across restarts (scheduleKey).
	runID       string
	scheduleSeq atomic.Uint64

	restored  Restored
	scenarios scenarioGate
	providers []Provider      // built-in first, then Config.Providers
	openapi   []byte          // the control API's document, with every provider's part
	writer    *journal.Writer // over Config.Journal; nil without one
	metrics   *metrics.Metrics
	// The built-ins' own figures, registered through metrics.Registerer
	// as a plug-in's are.

	// closing ends event streams and long polls at shutdown, which would
	// otherwise hold it for their whole timeout.
	closing     context.Context
	stopStreams context.CancelFunc
}

// New builds an emulator from cfg, checking every setting.
func New(cfg Config) (*Emulator, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.NewScaled(1)
	}
	if cfg.PayPal.Verify == "" {
		cfg.PayPal.Verify = paypal.ModePayPal
	}
	if _, err := paypal.ParseMode(string(cfg.PayPal.Verify)); err != nil {
		return nil, err
	}
	if cfg.AckTimeout < 0 {
		return nil, fmt.Errorf("ack timeout %s: must be positive", cfg.AckTimeout)
	}
	if cfg.PayPal.Retries < 0 || cfg.PayPal.Retries > 100 {
		return nil, fmt.Errorf("paypal retries %d: want 0 to 100", cfg.PayPal.Retries)
	}
	if cfg.PayPal.Profile.ReceiverEmail == "" {
		cfg.PayPal.Profile.ReceiverEmail = DefaultReceiverEmail
	}
	if cfg.PayPal.Profile.ReceiverID == "" {
		cfg.PayPal.Profile.ReceiverID = DefaultReceiverID
	}
	var seq uint64
	if cfg.Journal != nil {
		var err error
		if seq, err = restoreMeta(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Seed == 0 {
		cfg.Seed = generate.NewSeed()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Emulator{cfg: cfg, clock: cfg.Clock, bus: events.NewBus(cfg.EventBuffer), log: cfg.Logger, seq: seq, runID: rand.Text()[:12]}
	e.closing, e.stopStreams = context.WithCancel(context.Background())
	onError := e.report
	e.metrics = metrics.New(metrics.Sources{
		Queue:   func() delivery.QueueStats { return e.engine.Queue() },
		Now:     cfg.Clock.Now,
		Account: cfg.Account,
	})
	var err error
	if cfg.Journal != nil {
		// One ordered writer for every component: their records reach the
		// disk in the order they were made, many to a commit, and no
		// component holds its lock for a disk write.
		e.writer = journal.NewWriter(cfg.Journal, onError)
		e.writer.OnCommit(e.metrics.Commit)
		cfg.Journal = e.writer
		e.cfg.Journal = e.writer
	}

	// One client for everything the emulator sends (deliveries, probes):
	// the allowlist on the dialled address, no redirects, no proxy from
	// the environment.
	if cfg.Client == nil {
		cfg.Client = delivery.NewClient(delivery.NewTransport(nil, cfg.TLS, cfg.Allow))
	}
	e.cfg.Client = cfg.Client
	engCfg := delivery.Config{
		Clock: cfg.Clock, Client: cfg.Client, AckTimeout: cfg.AckTimeout, OnEvent: e.onDelivery,
		Journal: cfg.Journal, OnError: onError, Allow: cfg.Allow,
		HistoryLimit: cfg.HistoryLimit, EvictAfter: cfg.EvictAfter, Hold: cfg.HoldHistory, OnEvict: e.onEvict,
	}
	if len(cfg.Providers) > 0 {
		engCfg.Stamp = e.stamp // the built-ins stamp nothing
	}
	eng, err := delivery.NewEngine(engCfg)
	if err != nil {
		return nil, err
	}
	e.engine = eng
	if err := e.plugProviders(cfg.Providers); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.documentAPI(); err != nil {
		e.Close()
		return nil, err
	}
	if cfg.Journal != nil {
		if e.restored, err = e.restore(); err != nil {
			e.Close()
			return nil, err
		}
		e.mu.Lock()
		e.saveSeedLocked()
		e.mu.Unlock()
	}
	e.handler = e.routes()
	if cfg.Intercept != nil {
		e.proxy = intercept.NewProxy(cfg.Intercept, e.interceptedSites()...)
	}
	e.handler = e.proxyRequests(e.handler)
	return e, nil
}

// proxyRequests hands proxy requests (CONNECT, absolute URLs) to the
// intercepting proxy, or refuses them when there is none.
func (e *Emulator) proxyRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !intercept.IsProxyRequest(r):
			next.ServeHTTP(w, r)
		case e.proxy != nil:
			e.proxy.ServeHTTP(w, r)
		default:
			http.Error(w, fmt.Sprintf("%s %s: this emulator is no proxy; start it with --intercept to stand in for PayPal's verify hosts", r.Method, r.Host), http.StatusForbidden)
		}
	})
}

// Restored tells what New loaded from the journal.
func (e *Emulator) Restored() Restored { return e.restored }

// Metrics are the emulator's Prometheus collectors (served at /metrics).
func (e *Emulator) Metrics() *metrics.Metrics { return e.metrics }

// Handler serves the verifier (/cgi-bin/webscr), /healthz and /api/v1/.
func (e *Emulator) Handler() http.Handler { return e.handler }

// ServeHTTP makes the Emulator an http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.handler.ServeHTTP(w, r) }

// Clock returns the emulator's clock.
func (e *Emulator) Clock() clock.Clock { return e.clock }

// ProxyTraffic is what the intercepting proxy saw since t (wall time);
// false when the emulator intercepts nothing (Config.Intercept unset).
func (e *Emulator) ProxyTraffic(since time.Time) (intercept.Traffic, bool) {
	if e.proxy == nil {
		return intercept.Traffic{}, false
	}
	return e.proxy.Traffic(since), true
}

// Engine returns the delivery engine.
func (e *Emulator) Engine() *delivery.Engine { return e.engine }

// Events returns the event journal.
func (e *Emulator) Events() *events.Bus { return e.bus }

// Outgoing is the client for every request the emulator makes: it dials
// only what the allowlist allows, follows no redirects and ignores proxy
// settings from the environment. Deliveries use it; so must anything else
// that sends for the emulator (scenario probes).
func (e *Emulator) Outgoing() *http.Client { return e.cfg.Client }

// CheckTarget refuses a URL the emulator must not send to (a bad URL, or
// one outside its allowlist: delivery.ErrNotAllowed).
func (e *Emulator) CheckTarget(raw string) error { return e.engine.CheckTarget(raw) }

// AckTimeout is how long a delivery waits for the listener's answer.
func (e *Emulator) AckTimeout() time.Duration {
	if e.cfg.AckTimeout == 0 {
		return delivery.DefaultAckTimeout
	}
	return e.cfg.AckTimeout
}

// Seed returns the seed generated messages derive from.
func (e *Emulator) Seed() uint64 { return e.cfg.Seed }

// Close stops every scheduled delivery and waits for running ones.
func (e *Emulator) Close() {
	e.stopStreams()
	e.closeProxy()
	if e.engine != nil {
		e.engine.Close()
	}
	e.closeProviders()
	e.closeWriter()
}

// closeProviders closes the providers that hold something of their own
// (an io.Closer: a server a provider runs).
func (e *Emulator) closeProviders() {
	for _, p := range e.providers {
		if c, ok := p.(io.Closer); ok {
			if err := c.Close(); err != nil {
				e.log.Warn("closing a provider", "provider", p.Name(), "error", err)
			}
		}
	}
}

func (e *Emulator) closeProxy() {
	if e.proxy != nil {
		_ = e.proxy.Close() // it serves nothing that must finish
	}
}

// closeWriter commits what is queued and stops the journal writer; a
// record made later (a postback after shutdown) is written at once.
func (e *Emulator) closeWriter() {
	if e.writer != nil {
		_ = e.writer.Close() // its failures were reported as they happened
	}
}

// streamContext is a request's context that also ends when the emulator
// shuts down.
func (e *Emulator) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(e.closing, cancel)
	return ctx, func() { stop(); cancel() }
}

// Shutdown stops scheduling deliveries, waits for running ones until ctx
// ends (then cuts them short, keeping their retries queued), and records
// the clock, so a journal resumes exactly here.
func (e *Emulator) Shutdown(ctx context.Context) error {
	e.stopPlans()
	e.stopStreams()
	e.closeProxy()
	err := e.engine.Shutdown(ctx)
	e.report(e.saveClock(e.clock.Now()))
	e.closeProviders()
	e.closeWriter()
	return err
}

// Advance moves a manual clock and returns when every delivery due by then
// has finished.
func (e *Emulator) Advance(d time.Duration) error {
	ctl, ok := e.clock.(clock.Controller)
	if !ok {
		return fmt.Errorf("advance: %w (it is %s; start with --clock manual)", clock.ErrNotManual, e.clock.Mode())
	}
	// Refused before anything is kept: a refused target must never be
	// saved (an overflowed one read back as 1734 after a restart).
	if err := clock.CheckAdvance(d); err != nil {
		return err
	}
	// The target first: a crash mid-way resumes there, and whatever was
	// due on the way fires at once on restart.
	if err := e.saveClock(e.clock.Now().Add(d)); err != nil {
		return fmt.Errorf("advance: %w", err)
	}
	if err := ctl.Advance(d); err != nil {
		return err
	}
	e.bus.Publish(events.ClockAdvanced, e.clock.Now(), "", "", map[string]string{"by": d.String()})
	return nil
}

// SetOutage makes every delivery fail as if the listener were down.
func (e *Emulator) SetOutage(down bool) { e.engine.SetOutage(down) }

// WaitIdle returns when no delivery is running on a manual clock (a new
// message is delivered at once, outside Advance). It is a no-op on other
// clocks.
func (e *Emulator) WaitIdle() {
	if m, ok := e.clock.(*clock.Manual); ok {
		m.WaitIdle()
	}
}

// stamp lets the provider of m stamp or sign attempt a as it leaves, on a
// copy of the message's header.
func (e *Emulator) stamp(m delivery.Message, a delivery.Attempt, header http.Header, body []byte) (http.Header, []byte, error) {
	if p, ok := e.Provider(m.Provider); ok {
		if s, ok := p.(Stamper); ok {
			return s.Stamp(m, a, header.Clone(), body)
		}
	}
	return header, body, nil
}

func (e *Emulator) onDelivery(ev delivery.Event) {
	e.metrics.Delivery(ev)
	if f := e.cfg.Observer.Delivery; f != nil {
		f(ev)
	}
	if e.cfg.NoDeliveryEvents {
		return
	}
	typ := events.MessageQueued
	var data any = e.summarize(ev.Message)
	switch ev.Type {
	case delivery.EventAttempt:
		typ = events.Attempt
		data = struct {
			Message Summary          `json:"message"`
			Attempt delivery.Attempt `json:"attempt"`
		}{e.summarize(ev.Message), *ev.Attempt}
		a := ev.Attempt
		e.log.Debug("delivery attempt", "message", ev.Message.ID, "n", a.Number, "trigger", a.Trigger,
			"url", a.URL, "status", a.StatusCode, "error", a.Error, "acked", a.Acked)
	case delivery.EventResend:
		typ = events.Resend
	}
	e.bus.Publish(typ, e.clock.Now(), ev.Message.Provider, ev.Message.ID, data)
}

func (e *Emulator) onEvict(ids []string) {
	for _, p := range e.providers {
		p.Forget(ids)
	}
	if f := e.cfg.Observer.Evict; f != nil {
		f(ids)
	}
}

func badRequest(format string, args ...any) error { return plugin.BadRequest(format, args...) }
