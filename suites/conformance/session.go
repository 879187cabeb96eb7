package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/internal/redact"
	"github.com/ipnlab/ipnlab/orders"
	"github.com/ipnlab/ipnlab/probe"
	"github.com/ipnlab/ipnlab/probe/sqlprobe"
	"github.com/ipnlab/ipnlab/scenarios"
)

// ErrHarness is wrapped when the suite itself cannot run (bad config, port
// taken, listener unreachable): exit 2, not a verdict on the listener.
var ErrHarness = errors.New("the conformance harness could not run")

// ErrNothingRan is returned by RunAll, with the report, when every
// selected check was skipped or disabled: a run that checked nothing is no
// pass (exit 2, like any harness error).
var ErrNothingRan = fmt.Errorf("%w: no check ran", ErrHarness)

// Session is a running emulator wired to the listener under test.
type Session struct {
	cfg  Config
	emu  *emulator.Emulator
	srv  *http.Server
	ln   net.Listener
	env  scenarios.Env
	seed uint64
	// began is when the session started: checks' Started count from it.
	began time.Time
	// sqlProbe is the probe over the listener's database, if it is one.
	sqlProbe *sqlprobe.Adapter
	// tls serves the verifier over TLS (--tls-addr), if asked.
	tls *intercept.TLSVerifier
}

// NewSession checks cfg, starts the emulator and checks that the listener
// (and its probe) answer.
func NewSession(ctx context.Context, cfg Config) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHarness, err)
	}
	if err := applySetups(&cfg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHarness, err)
	}
	var ca *intercept.CA
	if cfg.Intercept || cfg.TLSAddr != "" {
		dir, err := intercept.DefaultDir()
		if err == nil {
			ca, err = intercept.LoadOrCreate(dir)
		}
		if err != nil {
			flag := "--intercept"
			if !cfg.Intercept {
				flag = "--tls-addr"
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrHarness, flag, err)
		}
	}
	emu, err := emulator.New(emulator.Config{
		Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), APIToken: cfg.APIToken,
		PayPal:     paypal.Settings{Verify: paypal.ModePayPal, Live: cfg.Live, Profile: paypal.Profile{ReceiverEmail: cfg.ReceiverEmail, ReceiverID: cfg.ReceiverID}},
		PayDo:      paydo.Settings{Source: cfg.PayDoSource, APIToken: cfg.PayDoToken},
		AckTimeout: cfg.AckTimeout, Seed: cfg.Seed,
		Logger: discardLogger(), Intercept: ca, Providers: cfg.Providers,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHarness, err)
	}
	ln := cfg.EmulatorListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.EmulatorAddr); err != nil {
			emu.Close()
			return nil, fmt.Errorf("%w: the emulator cannot listen on %s (the listener's verify URL must point there): %v", ErrHarness, cfg.EmulatorAddr, err)
		}
	}
	cfg.Parallel = cfg.ChecksAtOnce()
	s := &Session{cfg: cfg, emu: emu, ln: ln, seed: emu.Seed(), began: time.Now()}
	s.srv = emulator.HTTPServer(emu)
	go func() { _ = s.srv.Serve(ln) }()

	// A database probe's map is checked first: its mistakes are named
	// whether or not the listener is up yet.
	if strings.HasPrefix(cfg.Probe, sqlprobe.Scheme) && cfg.Level == Business {
		if _, err := s.openProbe(ctx); err != nil {
			s.Close()
			return nil, redact.Error(fmt.Errorf("%w: probe %s: %w", ErrHarness, cfg.Probe, err))
		}
	}
	if err := reachable(ctx, cfg.Listener); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: listener %s: %v", ErrHarness, cfg.Listener, err)
	}
	if cfg.PayDoListener != "" {
		if err := reachable(ctx, cfg.PayDoListener); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: PayDo listener %s: %v", ErrHarness, cfg.PayDoListener, err)
		}
	}
	targets := maps.Clone(cfg.Listeners)
	if targets == nil {
		targets = map[string]string{}
	}
	targets[paypal.Provider], targets[paydo.Provider] = cfg.Listener, cfg.PayDoListener
	s.env = scenarios.Env{Emulator: emu, Targets: targets, PayerEmail: cfg.PayerEmail,
		StrangerSource: cfg.StrangerSource, PayDoSource: cfg.PayDoSource, UnacceptedCurrency: cfg.UnacceptedCurrency, AckTimeout: cfg.AckTimeout, Settle: cfg.Settle, PostbackWait: cfg.PostbackWait,
		PostbackPace: &scenarios.PostbackPace{}} // learned over every check of the session
	if ca != nil {
		s.env.Intercept = &scenarios.Intercept{CA: ca.CertPath()}
		if cfg.Intercept {
			s.env.Intercept.ProxyURL = s.ProxyURL()
		}
	}
	if cfg.TLSAddr != "" {
		tln, err := net.Listen("tcp", cfg.TLSAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: the verifier cannot listen on --tls-addr %s: %v (port 443 takes root or CAP_NET_BIND_SERVICE)", ErrHarness, cfg.TLSAddr, err)
		}
		s.tls = intercept.ServeTLS(ca, tln, emu.PayPal())
		s.env.Intercept.TLSURL = s.tls.URL()
	}
	if cfg.Probe != "" && cfg.Level == Business {
		if s.env.Probe, err = s.openProbe(ctx); err != nil {
			s.Close()
			return nil, redact.Error(fmt.Errorf("%w: probe %s: %w", ErrHarness, cfg.Probe, err))
		}
		if s.env.Orders, err = s.openOrders(); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: %v", ErrHarness, err)
		}
	}
	return s, nil
}

// reachable dials the listener's host: a refused connection is a harness
// error, not a failed check.
func reachable(ctx context.Context, raw string) error {
	if err := delivery.Reachable(ctx, raw); err != nil {
		return fmt.Errorf("not reachable: %v", err)
	}
	return nil
}

// VerifyURL is where the listener under test must post back.
func (s *Session) VerifyURL() string { return "http://" + s.ln.Addr().String() + "/cgi-bin/webscr" }

// ProxyURL is the emulator's URL as an HTTPS proxy (what HTTPS_PROXY
// must say under --intercept).
func (s *Session) ProxyURL() string { return "http://" + s.ln.Addr().String() }

// Seed is the seed the run's messages derive from.
func (s *Session) Seed() uint64 { return s.seed }

// Emulator gives access to the session's emulator.
func (s *Session) Emulator() *emulator.Emulator { return s.emu }

// Probe is the session's probe (nil below the business level).
func (s *Session) Probe() scenarios.ProbeReader { return s.env.Probe }

// Close stops the emulator.
func (s *Session) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	if s.tls != nil {
		_ = s.tls.Close()
	}
	s.emu.Close()
	if s.sqlProbe != nil {
		_ = s.sqlProbe.Close() // read only: nothing to lose
	}
}

// openProbe opens the probe: the listener's probe API, answering, or its
// database through a probe map, every query checked.
func (s *Session) openProbe(ctx context.Context) (scenarios.ProbeReader, error) {
	if s.sqlProbe != nil {
		return s.sqlProbe, nil // opened first, its map checked
	}
	if dsn, ok := strings.CutPrefix(s.cfg.Probe, sqlprobe.Scheme); ok {
		m, err := sqlprobe.LoadMap(s.cfg.ProbeMap)
		if err != nil {
			return nil, err
		}
		if s.sqlProbe, err = sqlprobe.Open(ctx, dsn, m); err != nil {
			return nil, err
		}
		return s.sqlProbe, nil
	}
	p, err := scenarios.NewProbe(s.cfg.Probe)
	if err != nil {
		return nil, err
	}
	if _, err := p.Idle(ctx, 0); err != nil {
		return nil, err
	}
	return p, nil
}

// openOrders opens the order source, if the run has one.
func (s *Session) openOrders() (orders.Source, error) {
	switch s.cfg.Orders {
	case "":
		return nil, nil
	case "sql":
		return s.sqlProbe.OrderSource()
	}
	return orders.Open(s.cfg.Orders)
}

// Result is one check's outcome.
type Result struct {
	Check       Check            `json:"-"`
	ID          string           `json:"id"`
	Requirement string           `json:"requirement"`
	Level       Level            `json:"level"`
	Provider    string           `json:"provider"`
	Required    bool             `json:"required"`
	Status      scenarios.Status `json:"status"`
	Message     string           `json:"message,omitempty"`
	Evidence    []string         `json:"evidence,omitempty"`
	// NotJudged says what its expectations asked that the probe cannot
	// answer, and so was left out of the verdict.
	NotJudged []string `json:"not_judged,omitempty"`
	// BlockedBy names the checks whose bug kept this one from being
	// judged (status blocked).
	BlockedBy []string `json:"blocked_by,omitempty"`
	// failure is what a blocked check would have failed with.
	failure string
	// findings are the differences of its INVALID postbacks, when it
	// failed.
	findings []paypal.Finding
	// Replay is the command that runs this check alone with the same
	// messages (set when it failed).
	Replay string `json:"replay,omitempty"`
	// Started is when the check began, in seconds after its session
	// (the run) began; Seconds how long it took, wall time.
	Started float64 `json:"started"`
	Seconds float64 `json:"seconds"`
}

// Warning reports a SHOULD that was not met: reported apart from the
// failures, and no reason to fail the run.
func (r Result) Warning() bool { return r.Status == scenarios.Failed && !r.Required }

// ran reports whether the check was judged at all.
func (r Result) ran() bool { return r.Status != scenarios.Skipped && r.Status != scenarios.Disabled }

// listenerFlags name the setting that gives the listener's endpoint for
// a provider: conform's flags for the built-ins; a plug-in's goes in
// Config.Listeners.
var listenerFlags = map[string]string{paypal.Provider: "--listener", paydo.Provider: "--paydo-listener"}

// setups are what packages of checks apply to a session's config
// (OnSession).
var setups []func(*Config) error

// OnSession registers what a package of checks does to every session's
// config before it starts (adding its provider and the listener's
// endpoint from the settings it reads): a package of checks calls it
// from its init.
func OnSession(setup func(*Config) error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	setups = append(setups, setup)
}

func applySetups(cfg *Config) error {
	registryMu.RLock()
	fs := slices.Clone(setups)
	registryMu.RUnlock()
	for _, f := range fs {
		if err := f(cfg); err != nil {
			return err
		}
	}
	if cfg.WebhookListener != "" && len(fs) == 0 {
		return errors.New("webhook_listener is given, but no package of checks takes it: import github.com/ipnlab/ipnlab/suites/conformance/webhookchecks (ipnlab conform does)")
	}
	return nil
}

// EndpointSetting names the setting that gives the listener's endpoint
// for a plug-in provider's checks (a command-line flag), for the message
// of a check skipped without it.
func EndpointSetting(provider, setting string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	pluginEndpoints[provider] = setting
}

// pluginEndpoints are the settings EndpointSetting named.
var pluginEndpoints = map[string]string{}

// missingEndpoint says why c cannot be sent ("" if it can): the session
// has no listener endpoint for its scenario's provider.
func (s *Session) missingEndpoint(c Check) string {
	sc, err := c.scenario()
	if err != nil || s.env.Targets[sc.Provider] != "" {
		return ""
	}
	title := sc.Provider
	for _, p := range s.emu.ProviderInfos() {
		if p.Name == sc.Provider {
			title = p.Title
		}
	}
	flag, ok := listenerFlags[sc.Provider]
	if !ok {
		registryMu.RLock()
		flag, ok = pluginEndpoints[sc.Provider]
		registryMu.RUnlock()
	}
	if !ok {
		flag = fmt.Sprintf("Config.Listeners[%q]", sc.Provider)
	}
	return fmt.Sprintf("no %s listener given (%s)", title, flag)
}

// Applicable says why a check cannot run in this session ("" if it can).
func (s *Session) Applicable(c Check) (scenarios.Status, string) {
	if !s.cfg.Selected(c) {
		return scenarios.Disabled, "not selected by the label filter or focus"
	}
	if why := s.missingEndpoint(c); why != "" {
		return scenarios.Disabled, why
	}
	switch {
	case slices.Contains(c.Labels, "intercept") && !s.cfg.Intercept && s.cfg.TLSAddr == "":
		return scenarios.Disabled, "judged only when the emulator stands in for PayPal's hosts (--intercept, or --tls-addr)"
	case c.Level == Business && s.env.Probe == nil:
		return scenarios.Skipped, "business level needs the listener's probe (--probe)"
	}
	switch {
	case c.HasLabel("orders") && s.env.Orders == nil:
		return scenarios.Skipped, "needs an order source (--orders): a check of a shop that keeps orders"
	case c.HasLabel("prepaid") && s.env.Orders != nil:
		return scenarios.Skipped, "a check of prepaid credit: an order-based shop (--orders) credits orders, not customers"
	}
	knows := scenarios.KnowsOf(s.env.Probe)
	for _, f := range c.Needs {
		if !slices.Contains(knows, f) {
			return scenarios.Skipped, fmt.Sprintf("not judged: the probe does not declare %s (it knows %s; docs/probe.md, \"What a probe knows\")", f, probe.FactList(knows))
		}
	}
	return scenarios.Passed, ""
}

// Phases a check runs in (see RunAll).
const (
	phaseOrdinary = iota
	phaseBusy     // keeps the listener busy on purpose
	phaseClock    // moves the shared clock: together with the others that do
	phaseAlone    // changes what every other check sees
)

// phase sorts a check by what its scenario does: taking the listener down
// or faulting every postback affects every check, and every check moves
// the balances a customer expectation judges; moving the clock
// resends every waiting message; a slow or persistently failing verifier
// keeps the listener busy for a while.
func (s *Session) phase(c Check) int {
	sc, err := c.scenario()
	if err != nil || c.Exclusive {
		return phaseAlone
	}
	p := phaseOrdinary
	for _, st := range sc.Steps {
		switch s := st.(type) {
		case *scenarios.Outage, *scenarios.ClearFault:
			return phaseAlone
		case *scenarios.Fault:
			if s.Message == "" {
				return phaseAlone
			}
		case *scenarios.Expect:
			if s.Customer != "" {
				return phaseAlone // a balance moves with every check's credits
			}
		case *scenarios.Advance:
			p = phaseClock
		case *scenarios.Send:
			if s.Fault != nil && (s.Fault.Count == 0 || s.Fault.Kind == "slow") && p < phaseBusy {
				p = phaseBusy
			}
		}
	}
	return p
}

// waits is how many times a check waits for the listener: once after
// each message or lifecycle it sends. Checks that wait most start first,
// so that the longest do not run last, alone.
func waits(c Check) int {
	sc, err := c.scenario()
	if err != nil {
		return 0
	}
	n := 0
	for _, st := range sc.Steps {
		switch s := st.(type) {
		case *scenarios.Send:
			n += max(s.Bursts, 1)
		case *scenarios.Generate, *scenarios.Resend:
			n++
		}
	}
	return n
}

// RunScenario runs any scenario in the session, logging each step; its
// messages derive from seed (0: drawn, reported in the result).
func (s *Session) RunScenario(ctx context.Context, sc *scenarios.Scenario, seed uint64, log io.Writer) scenarios.Result {
	return s.runScenario(ctx, sc, seed, log)
}

func (s *Session) runScenario(ctx context.Context, sc *scenarios.Scenario, seed uint64, log io.Writer) scenarios.Result {
	return s.runScenarioWith(ctx, sc, seed, log, nil)
}

func (s *Session) runScenarioWith(ctx context.Context, sc *scenarios.Scenario, seed uint64, log io.Writer, gate *clockGate) scenarios.Result {
	env := s.env
	env.Log, env.Seed = log, seed
	if gate != nil {
		env.Advance = gate.Advance
	}
	res := scenarios.Run(ctx, env, sc)
	_ = s.emu.PayPal().SetFault("", nil)
	s.emu.SetOutage(false)
	return res
}

// Run runs one check.
func (s *Session) Run(ctx context.Context, c Check, log io.Writer) Result {
	return s.run(ctx, c, log, nil)
}

// run runs one check; checks that move the clock together pass their gate.
func (s *Session) run(ctx context.Context, c Check, log io.Writer, gate *clockGate) Result {
	r := Result{Check: c, ID: c.ID, Requirement: c.Requirement, Level: c.Level, Provider: c.Provider, Required: c.Required()}
	if st, why := s.Applicable(c); why != "" {
		r.Status, r.Message = st, why
		return r
	}
	r.Started = time.Since(s.began).Seconds()
	sc, err := c.scenario()
	if err != nil {
		r.Status, r.Message = scenarios.Error, err.Error()
		return r
	}
	res := s.runScenarioWith(ctx, sc, generate.DeriveSeed(s.seed, c.ID), log, gate)
	r.Status, r.Message, r.Evidence, r.Seconds, r.NotJudged, r.findings = res.Status, res.Message, res.Evidence, res.Duration.Seconds(), res.NotJudged, res.Findings
	if by := blockers(c.ID, res); r.Status == scenarios.Failed && by != nil {
		r.Status, r.BlockedBy, r.Message, r.failure = scenarios.Blocked, by, blockedMessage(by, res), res.Message
	}
	if r.Status == scenarios.Failed || r.Status == scenarios.Error || r.Status == scenarios.Blocked {
		r.Replay = s.cfg.replay(c.ID, s.seed)
	}
	return r
}

// ReplayScenario is the command line that runs scenario (a file or a
// bundled name) again with seed, against the same listener.
func (s *Session) ReplayScenario(scenario string, seed uint64) string {
	return s.cfg.ReplayScenario(scenario, seed)
}

// ackedWithoutPostbacks counts the PayPal messages the listener acked when
// it posted none back at all (0 once any postback arrived): the sign of a
// wrong verify URL or of sandbox messages dropped.
func (s *Session) ackedWithoutPostbacks() int {
	if len(s.emu.PayPal().Postbacks("")) > 0 {
		return 0
	}
	return len(s.emu.Engine().List(func(m *delivery.Message) bool {
		return m.Provider == paypal.Provider && m.AckedAt != nil
	}))
}
