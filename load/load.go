// Package load drives a listener with realistic notifications from an
// in-process emulator, at a set rate or concurrency, and accounts for what
// happened to every message: the listener's answers (status counts and
// latency), the retries the provider's schedule made, and the postbacks
// (PayPal) or status lookups (PayDo) the emulator answered. A backlog
// replays an outage flush: messages queued while the listener was down,
// all released at once on the retry schedule.
//
// Deliveries run on a manual clock: first attempts go at once, and once
// sending is over, retries are stepped along the provider's schedule, so
// PayPal's four days of resends take as long as the listener takes to
// answer them. Pacing, the duration and progress ticks follow Config.Wall
// (the real clock unless a test gives a manual one); latencies are always
// measured in wall time.
package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/generate"
)

// Providers a load can come from.
const (
	PayPal     = paypal.Provider
	PayDo      = paydo.Provider
	PayPalREST = paypalrest.Provider // REST webhooks: signed, verified by the listener itself
)

// Defaults for the zero values of Config.
const (
	DefaultConcurrency   = 8
	DefaultDuration      = 10 * time.Second
	DefaultConnections   = 256
	DefaultSettle        = 5 * time.Second
	DefaultProgressEvery = time.Second
	// DefaultMaxInFlight bounds messages whose first delivery has not
	// finished in rate mode: past it the pacer waits, and says so.
	DefaultMaxInFlight = 4096
	// DefaultHistoryLimit bounds the finished messages kept: about 13 KB
	// each, so a long run stays within a few hundred MB.
	DefaultHistoryLimit = 20_000
	// DefaultWebhookID is the webhook a PayPal REST load's target is
	// subscribed under.
	DefaultWebhookID = "WH-IPNLAB-LOAD"
)

// ErrConfig marks a configuration mistake (the caller's, not the run's).
var ErrConfig = errors.New("load configuration")

// Config describes one load run.
type Config struct {
	// Target is the listener's notification URL (http or https).
	Target string
	// Provider is PayPal (default), PayDo or PayPalREST.
	Provider string
	// WebhookID is the webhook the Target is subscribed under (PayPal
	// REST: the id the listener verifies with; default
	// DefaultWebhookID). SigningCA, if set, issues the signing
	// certificates (the listener trusts it); else they are self-signed.
	WebhookID string
	SigningCA *intercept.CA
	// Kinds are the fixture kinds sent, in turn (default: web_accept for
	// PayPal, checkout for PayDo).
	Kinds []string
	// PayerEmail, if set, is every PayPal message's payer (a customer the
	// listener knows, so it credits).
	PayerEmail string

	// Rate is messages created per second; 0 means as fast as Concurrency
	// allows. Rate and Concurrency are exclusive.
	Rate float64
	// Concurrency is how many messages may have their first delivery in
	// flight at once (default 8 when Rate is 0).
	Concurrency int
	// MaxInFlight bounds messages in flight in rate mode (default 4096).
	MaxInFlight int
	// Duration is how long to send (wall time). With neither Count nor
	// Backlog set it defaults to 10 s; 0 with Count means no time bound.
	Duration time.Duration
	// Count stops sending after that many messages (0: no count bound).
	Count int
	// Backlog, if positive, first queues that many messages during a
	// simulated outage, then ends the outage and releases them all at once
	// at their first retry.
	Backlog int
	// NoRetries leaves failed messages waiting instead of stepping the clock
	// along the retry schedule after sending.
	NoRetries bool
	// Connections bounds the connections open to the listener (default
	// 256); deliveries beyond it wait for one, and the wait counts in their
	// ack latency, as it would at a provider.
	Connections int
	// AckTimeout bounds each delivery (default 30 s, PayPal's).
	AckTimeout time.Duration
	// Settle is how long to wait for postbacks or lookups once nothing is
	// left to deliver, after the last one came (default 5 s).
	Settle time.Duration

	// Seed makes the messages reproducible (0: drawn at start).
	Seed uint64
	// Verify is the verifier's mode (default paypal).
	Verify paypal.Mode
	// PayDoSource is the local address PayDo deliveries leave from.
	PayDoSource string

	// Wall paces sending and times the duration, settle and progress
	// (default: the real clock).
	Wall clock.Clock
	// Progress, if set, hears how the run goes every ProgressEvery (default
	// 1 s) and once at the end of each phase.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Logger gets the emulator's logs (default: discarded).
	Logger *slog.Logger
	// HistoryLimit bounds the finished messages the load's emulator keeps
	// (default DefaultHistoryLimit): past it the oldest leave at once, since
	// its clock stands still while sending. A postback for a message that
	// left is counted as matching no message.
	HistoryLimit int
	// APIToken, if set, is required on the load emulator's control API
	// (see emulator.CheckExposure for where it must be).
	APIToken string
	// Intercept, if set, makes the load's emulator stand in for PayPal's
	// verify hosts (see emulator.Config.Intercept).
	Intercept *intercept.CA
}

// Runner is a configured load with its emulator; Handler serves the
// emulator (verifier, PayDo lookups, control API) for the listener.
type Runner struct {
	cfg   Config
	emu   *emulator.Emulator
	clock *clock.Manual
	acct  *accounts
	ran   bool
	mu    sync.Mutex

	// PayPal messages are stamped copies of a few generated templates per
	// kind: generating each one cost more CPU than delivering it.
	templates map[string][]*generate.Stamper
	stampMu   sync.Mutex
	stampRNG  *rand.Rand
	stamps    int
}

// TemplatesPerKind is how many distinct PayPal messages a load generates
// per kind; every message sent is one of them with fresh ids (txn_id,
// verify_sign, ipn_track_id), so values repeat every so many messages
// while every message is a new payment.
const TemplatesPerKind = 64

// New checks cfg and builds the emulator the load comes from.
func New(cfg Config) (*Runner, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	clk := clock.NewManual(time.Now().UTC().Truncate(time.Second))
	acct := newAccounts(cfg)
	transport := delivery.NewTransport(nil, nil, nil)
	transport.MaxConnsPerHost = cfg.Connections
	transport.MaxIdleConnsPerHost = cfg.Connections
	ecfg := emulator.Config{
		Clock: clk, PayPal: paypal.Settings{Verify: cfg.Verify}, AckTimeout: cfg.AckTimeout, Seed: cfg.Seed, APIToken: cfg.APIToken,
		HistoryLimit: cfg.HistoryLimit, EvictAfter: delivery.EvictAtOnce, Intercept: cfg.Intercept,
		Client: delivery.NewClient(transport), PayDo: paydo.Settings{Source: cfg.PayDoSource}, Logger: cfg.Logger,
		Observer:    emulator.Observer{Delivery: acct.delivery, Postback: acct.postback, Lookup: acct.lookup, Evict: acct.evicted},
		HoldHistory: acct.awaitingVerification,
		// Nobody reads the journal's events during a load: the counters
		// are the observer's. A small ring keeps the rest flat.
		EventBuffer: 1024, NoDeliveryEvents: true,
	}
	if cfg.Provider == PayPalREST {
		ecfg.Providers = []emulator.Factory{paypalrest.Factory(paypalrest.Settings{CA: cfg.SigningCA})}
	}
	emu, err := emulator.New(ecfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.Provider == PayPalREST {
		p, _ := emu.Provider(PayPalREST)
		if _, err := p.(*paypalrest.Plugin).Subscribe(paypalrest.Webhook{ID: cfg.WebhookID, URL: cfg.Target}); err != nil {
			emu.Close()
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	r := &Runner{cfg: cfg, emu: emu, clock: clk, acct: acct, stampRNG: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	if cfg.Provider == PayPal {
		if err := r.makeTemplates(); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// makeTemplates generates TemplatesPerKind messages of each kind, as
// Dispatch would (the same params, payer and receiver).
func (r *Runner) makeTemplates() error {
	r.templates = map[string][]*generate.Stamper{}
	for _, kind := range r.cfg.Kinds {
		if _, done := r.templates[kind]; done {
			continue
		}
		for range TemplatesPerKind {
			body, _, _, err := r.emu.Template(emulator.SendRequest{Kind: kind, NotifyURL: r.cfg.Target, Params: emulator.Params{PayerEmail: r.cfg.PayerEmail}})
			if err != nil {
				return fmt.Errorf("load: make a %s message: %w", kind, err)
			}
			r.templates[kind] = append(r.templates[kind], generate.NewStamper(body))
		}
	}
	return nil
}

func (c *Config) normalize() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(c.Target)
	switch {
	case c.Target == "":
		return bad("the listener URL is required (where notifications go)")
	case err != nil:
		return bad("target %q: %v", c.Target, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return bad("target %q: want an http:// or https:// URL with a host", c.Target)
	}
	if c.Provider == "" {
		c.Provider = PayPal
	}
	var known []string
	switch c.Provider {
	case PayPal:
		known = generate.KindNames()
		if len(c.Kinds) == 0 {
			c.Kinds = []string{"web_accept"}
		}
	case PayDo:
		for _, k := range generate.PayDoKinds() {
			known = append(known, k.Name)
		}
		if len(c.Kinds) == 0 {
			c.Kinds = []string{generate.PayDoCheckout}
		}
		if c.PayerEmail != "" {
			return bad("a payer email applies to PayPal messages only")
		}
	case PayPalREST:
		known = paypalrest.KindNames()
		if len(c.Kinds) == 0 {
			c.Kinds = []string{"PAYMENT.CAPTURE.COMPLETED"}
		}
		if c.WebhookID == "" {
			c.WebhookID = DefaultWebhookID
		}
	default:
		return bad("provider %q: want %s, %s or %s", c.Provider, PayPal, PayDo, PayPalREST)
	}
	if c.Provider != PayPalREST && (c.WebhookID != "" || c.SigningCA != nil) {
		return bad("a webhook id and a signing CA apply to %s messages only", PayPalREST)
	}
	for _, k := range c.Kinds {
		if !slices.Contains(known, k) {
			return bad("%s kind %q: want one of %s", c.Provider, k, strings.Join(known, ", "))
		}
	}
	switch {
	case c.Rate < 0:
		return bad("rate %g: must be positive", c.Rate)
	case c.Rate > 0 && c.Concurrency != 0:
		return bad("give a rate or a concurrency, not both")
	case c.Concurrency < 0 || c.Concurrency > 100000:
		return bad("concurrency %d: want 1 to 100000", c.Concurrency)
	case c.MaxInFlight < 0:
		return bad("max in flight %d: must be positive", c.MaxInFlight)
	case c.Count < 0:
		return bad("count %d: must be positive", c.Count)
	case c.Backlog < 0 || c.Backlog > 10_000_000:
		return bad("backlog %d: want 1 to 10000000", c.Backlog)
	case c.Duration < 0:
		return bad("duration %s: must be positive", c.Duration)
	case c.Connections < 0:
		return bad("connections %d: must be positive", c.Connections)
	case c.AckTimeout < 0:
		return bad("ack timeout %s: must be positive", c.AckTimeout)
	case c.Settle < 0:
		return bad("settle %s: must be positive", c.Settle)
	case c.ProgressEvery < 0:
		return bad("progress interval %s: must be positive", c.ProgressEvery)
	case c.HistoryLimit < 0:
		return bad("history limit %d: must be positive", c.HistoryLimit)
	}
	if c.HistoryLimit == 0 {
		c.HistoryLimit = DefaultHistoryLimit
	}
	if c.Rate == 0 && c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Duration == 0 && c.Count == 0 && c.Backlog == 0 {
		c.Duration = DefaultDuration
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = delivery.DefaultAckTimeout
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	if c.Wall == nil {
		c.Wall = clock.NewScaled(1)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Handler serves the emulator the messages come from: the listener posts
// back to /cgi-bin/webscr and looks PayDo transactions up under /paydo/.
func (r *Runner) Handler() http.Handler { return r.emu }

// Emulator is the emulator the messages come from, e.g. to set a verifier
// fault for the run.
func (r *Runner) Emulator() *emulator.Emulator { return r.emu }

// Close stops the emulator; deliveries in flight are cut short.
func (r *Runner) Close() { r.emu.Close() }

// Run sends the load and returns its report. A Runner runs once. An error
// means the run could not go on (the context ended, a message could not be
// made); the report then covers what happened until then.
func (r *Runner) Run(ctx context.Context) (Report, error) {
	r.mu.Lock()
	if r.ran {
		r.mu.Unlock()
		return Report{}, errors.New("load: a runner runs once")
	}
	r.ran = true
	r.mu.Unlock()

	stopProgress := r.startProgress()
	err := r.run(ctx)
	stopProgress()
	rep := r.acct.report(r.cfg, r.clock.Now())
	return rep, err
}

func (r *Runner) run(ctx context.Context) error {
	r.acct.begin(r.cfg.Wall.Now(), r.clock.Now())
	if r.cfg.Backlog > 0 {
		if err := r.backlog(ctx); err != nil {
			return err
		}
	}
	if r.cfg.Count > 0 || r.cfg.Duration > 0 {
		if err := r.steady(ctx); err != nil {
			return err
		}
	}
	if !r.cfg.NoRetries {
		if err := r.retries(ctx); err != nil {
			return err
		}
	}
	r.emu.WaitIdle()
	return r.settle(ctx)
}

// backlog queues cfg.Backlog messages while the listener is "down" (their
// first attempts fail without reaching it), then ends the outage and moves
// the clock to their first retry, where they all fire at once.
func (r *Runner) backlog(ctx context.Context) error {
	r.acct.setPhase(PhaseBacklogQueue)
	r.emu.SetOutage(true)
	for range r.cfg.Backlog {
		if err := ctx.Err(); err != nil {
			r.emu.SetOutage(false)
			return err
		}
		if _, err := r.dispatch(); err != nil {
			r.emu.SetOutage(false)
			return err
		}
	}
	r.emu.WaitIdle()
	r.emu.SetOutage(false)
	next, ok := r.clock.Next()
	if !ok {
		return errors.New("load: the backlog has no retry waiting (the schedule allows none)")
	}
	r.acct.setPhase(PhaseBacklogFlush)
	start := r.cfg.Wall.Now()
	r.acct.flushStarted(next)
	if err := r.emu.Advance(next.Sub(r.clock.Now())); err != nil {
		return fmt.Errorf("load: release the backlog: %w", err)
	}
	r.acct.flushEnded(r.cfg.Wall.Now().Sub(start))
	return nil
}

// steady sends until Count or Duration, paced by Rate or bounded by
// Concurrency (MaxInFlight in rate mode): a message holds a slot until its
// first delivery has finished.
func (r *Runner) steady(ctx context.Context) error {
	r.acct.setPhase(PhaseSend)
	start := r.cfg.Wall.Now()
	var deadline <-chan struct{}
	if r.cfg.Duration > 0 {
		ch, stop := r.wait(start.Add(r.cfg.Duration))
		defer stop()
		deadline = ch
	}
	slots := r.cfg.Concurrency
	if r.cfg.Rate > 0 {
		slots = r.cfg.MaxInFlight
	}
	sem := r.acct.openSlots(slots)
	defer func() { r.acct.steadyEnded(r.cfg.Wall.Now().Sub(start)) }()
	end := start.Add(r.cfg.Duration)
	// The deadline is checked against the clock itself too: its channel
	// closes from a timer goroutine, a moment after the clock has passed.
	over := func() bool { return r.cfg.Duration > 0 && !r.cfg.Wall.Now().Before(end) }
	for i := 0; r.cfg.Count == 0 || i < r.cfg.Count; i++ {
		if r.cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
			if r.cfg.Duration > 0 && !due.Before(end) {
				return nil
			}
			if due.After(r.cfg.Wall.Now()) {
				ch, stop := r.wait(due)
				select {
				case <-ch:
				case <-ctx.Done():
					stop()
					return ctx.Err()
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if over() {
			return nil
		}
		select {
		case sem <- struct{}{}:
		default:
			if r.cfg.Rate > 0 { // with a concurrency, waiting for a slot is the point
				r.acct.heldBack()
			}
			select {
			case sem <- struct{}{}:
			case <-deadline:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if _, err := r.dispatch(); err != nil {
			<-sem
			return err
		}
	}
	return nil
}

// retries steps the clock to each waiting retry until none is left.
func (r *Runner) retries(ctx context.Context) error {
	r.acct.setPhase(PhaseRetries)
	r.emu.WaitIdle()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, ok := r.clock.Next()
		if !ok {
			return nil
		}
		if err := r.emu.Advance(max(next.Sub(r.clock.Now()), 0)); err != nil {
			return fmt.Errorf("load: step to the next retry: %w", err)
		}
	}
}

// settle waits for the listener's postbacks (or lookups) of acked
// messages, until every one has one or none came for cfg.Settle.
func (r *Runner) settle(ctx context.Context) error {
	r.acct.setPhase(PhaseSettle)
	for {
		done, changed := r.acct.settled()
		if done {
			return nil
		}
		quiet, stop := r.wait(r.cfg.Wall.Now().Add(r.cfg.Settle))
		select {
		case <-changed:
			stop()
		case <-quiet:
			return nil
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

// dispatch creates and sends the next message, of the next kind in turn.
func (r *Runner) dispatch() (string, error) {
	kind := r.cfg.Kinds[r.acct.nextKind()%len(r.cfg.Kinds)]
	var id string
	var err error
	switch r.cfg.Provider {
	case PayDo:
		id, err = r.emu.DispatchPayDo(emulator.PayDoRequest{Kind: kind, NotifyURL: r.cfg.Target})
	case PayPalREST:
		p, _ := r.emu.Provider(PayPalREST)
		var ids []string
		ids, err = p.(*paypalrest.Plugin).Dispatch(paypalrest.SendRequest{EventType: kind, CustomID: r.cfg.PayerEmail})
		if len(ids) > 0 {
			id = ids[0]
		}
	default:
		r.stampMu.Lock()
		ts := r.templates[kind]
		body := ts[r.stamps%len(ts)].Stamp(r.stampRNG)
		r.stamps++
		r.stampMu.Unlock()
		// No seed: it would make the template again, not this copy.
		id, err = r.emu.DispatchBody(body, kind, r.cfg.Target, 0)
	}
	if err != nil {
		return "", fmt.Errorf("load: send a %s %s message: %w", r.cfg.Provider, kind, err)
	}
	return id, nil
}

// wait returns a channel closed when the wall clock reaches t, and a stop
// for a wait given up.
func (r *Runner) wait(t time.Time) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	timer := r.cfg.Wall.At(t, func() { close(ch) })
	return ch, func() { timer.Stop() }
}

// startProgress reports every ProgressEvery until the returned stop, which
// reports once more.
func (r *Runner) startProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	var timer clock.Timer
	var tick func()
	tick = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		r.cfg.Progress(r.acct.progress(r.cfg.Wall.Now()))
		timer = r.cfg.Wall.At(r.cfg.Wall.Now().Add(r.cfg.ProgressEvery), tick)
	}
	mu.Lock()
	timer = r.cfg.Wall.At(r.cfg.Wall.Now().Add(r.cfg.ProgressEvery), tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
		p := r.acct.progress(r.cfg.Wall.Now())
		p.Phase = PhaseDone
		r.cfg.Progress(p)
	}
}
