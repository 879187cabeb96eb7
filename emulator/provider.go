package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// Stamper is a Provider that stamps or signs each delivery attempt as it
// leaves (Stamp gets the attempt's own header to change, and the body):
// a signature over a timestamp must be made anew for every retry, or a
// listener that bounds the timestamp's age refuses the retries.
type Stamper interface {
	Stamp(m delivery.Message, a delivery.Attempt, header http.Header, body []byte) (http.Header, []byte, error)
}

// Sender is a Provider that sends a message built from a Notify (the
// scenarios' send step does so for plug-in providers).
type Sender interface {
	Notify(n Notify) ([]MessageView, error)
}

// The provider contract lives in package plugin, which a provider's
// package imports without the emulator; these names keep the emulator's
// Go API whole.
type (
	Provider       = plugin.Provider
	Factory        = plugin.Factory
	Host           = plugin.Host
	Route          = plugin.Route
	Notify         = plugin.Notify
	Planned        = plugin.Planned
	RestoredCounts = plugin.RestoredCounts
)

// APIHandler serves h as the control API does: an error becomes the API's
// JSON error, with its status (plugin.StatusOf).
func APIHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return plugin.APIHandler(h)
}

// StatusError is an error the control API answers with status.
func StatusError(status int, format string, args ...any) error {
	return plugin.StatusError(status, format, args...)
}

// BadRequest is an error that is the caller's fault (HTTP 400).
func BadRequest(format string, args ...any) error { return plugin.BadRequest(format, args...) }

// ReadJSON decodes a control API request body into v, strictly (unknown
// fields and trailing data refused, size bounded by MaxAPIBody).
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) error { return plugin.ReadJSON(w, r, v) }

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) { plugin.WriteJSON(w, status, v) }

// ErrProvider is returned by New for a provider that cannot be plugged in.
var ErrProvider = errors.New("provider")

// ErrNoProvider: no provider of that name runs in this emulator.
var ErrNoProvider = plugin.StatusError(http.StatusNotFound, "not registered")

var providerName = regexp.MustCompile(`^[a-z][a-z0-9]{1,30}$`)

// checkProviders refuses a bad or repeated name and a route two
// providers (or a provider and the emulator) both claim.
func checkProviders(ps []Provider, own []string) error {
	names := map[string]bool{}
	claimed := map[string]string{}
	// ServeMux decides which patterns conflict ("GET /x/{id}" and
	// "GET /x/{name}" are one route): a trial mux takes each route, and a
	// conflict is an error here, not a panic in New.
	trial := http.NewServeMux()
	for _, r := range own {
		claimed[r] = "the emulator"
		trial.Handle(r, http.NotFoundHandler())
	}
	for _, p := range ps {
		name := p.Name()
		if !providerName.MatchString(name) {
			return fmt.Errorf("%w %q: a name is 2 to 31 lower case letters and digits", ErrProvider, name)
		}
		if names[name] {
			return fmt.Errorf("%w %q: registered twice", ErrProvider, name)
		}
		names[name] = true
		for _, rt := range p.Routes() {
			key := strings.TrimSpace(rt.Method + " " + rt.Pattern)
			if !rt.Public && !strings.HasPrefix(rt.Pattern, "/api/v1/") {
				return fmt.Errorf("%w %s: route %s: control routes live under /api/v1/ (or mark it Public)", ErrProvider, name, key)
			}
			if rt.Handler == nil {
				return fmt.Errorf("%w %s: route %s has no handler", ErrProvider, name, key)
			}
			if by, ok := claimed[key]; ok {
				return fmt.Errorf("%w %s: route %s is %s's already", ErrProvider, name, key, by)
			}
			if err := tryHandle(trial, key); err != nil {
				return fmt.Errorf("%w %s: route %s: %v", ErrProvider, name, key, err)
			}
			claimed[key] = name
		}
	}
	return nil
}

// tryHandle registers pattern on mux, turning ServeMux's panic on a bad
// or conflicting pattern into an error.
func tryHandle(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// plugProviders registers the built-in providers and makes the extra
// ones for this emulator, then checks them all.
func (e *Emulator) plugProviders(extra []Factory) error {
	host := Host{
		Clock: e.clock, Engine: e.engine, Journal: e.cfg.Journal, Client: e.cfg.Client, Logger: e.log,
		Report: e.report, Publish: func(typ string, at time.Time, provider, id string, data any) {
			e.bus.Publish(typ, at, provider, id, data)
		},
		Seed: e.cfg.Seed, View: e.View, Metrics: e.metrics.Registerer(), Schedule: e.schedule,
		DrawSeed: e.drawSeed, WaitIdle: e.WaitIdle, TLS: e.cfg.TLS, Allow: e.cfg.Allow, Account: e.cfg.Account,
	}
	// PayPal and PayDo are made like any plug-in; the emulator keeps them
	// typed for its Go API (SendPayPal, PayPal, SendPayDo, PayDo...).
	pp, err := paypal.Factory(e.cfg.PayPal, paypal.Options{Observe: e.cfg.Observer.Postback, NoEvents: e.cfg.NoDeliveryEvents,
		Secrets: []string{e.cfg.APIToken}})(host)
	if err != nil {
		return fmt.Errorf("%w: paypal: %w", ErrProvider, err)
	}
	pd, err := paydo.Factory(e.cfg.PayDo, e.cfg.Observer.Lookup)(host)
	if err != nil {
		return fmt.Errorf("%w: paydo: %w", ErrProvider, err)
	}
	e.paypal, e.paydo = pp.(*paypal.Plugin), pd.(*paydo.Plugin)
	e.providers = []Provider{e.paypal, e.paydo}
	for i, newProvider := range extra {
		if newProvider == nil {
			return fmt.Errorf("%w: Providers[%d] is nil", ErrProvider, i)
		}
		p, err := newProvider(host)
		if err != nil {
			return fmt.Errorf("%w: Providers[%d]: %w", ErrProvider, i, err)
		}
		if p == nil {
			return fmt.Errorf("%w: Providers[%d] made no provider", ErrProvider, i)
		}
		e.providers = append(e.providers, p)
	}
	var own []string
	for _, rt := range e.apiRoutes() {
		own = append(own, rt.method+" "+rt.pattern)
	}
	return checkProviders(e.providers, own)
}

// Intercepted is a Provider that stands in for hosts of the real provider
// through the intercepting proxy (Config.Intercept): a request for
// https://HOST/... is answered by its public routes, as if it had come to
// the emulator. The proxy's CA must cover the hosts (intercept.Domains).
type Intercepted interface {
	HTTPSHosts() []string
}

// interceptedSites are the proxy's sites: each Intercepted provider's
// hosts, served by its public routes.
func (e *Emulator) interceptedSites() []intercept.Site {
	var sites []intercept.Site
	for _, p := range e.providers {
		ic, ok := p.(Intercepted)
		if !ok {
			continue
		}
		mux := http.NewServeMux()
		var served []string
		for _, rt := range p.Routes() {
			if rt.Public {
				pattern := strings.TrimSpace(rt.Method + " " + rt.Pattern)
				mux.Handle(pattern, rt.Handler)
				served = append(served, pattern)
			}
		}
		mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, fmt.Sprintf("%s %s: ipnlab stands in for %s on this host only: %s", r.Method, r.URL.Path, p.Name(), strings.Join(served, "; ")), http.StatusNotFound)
		}))
		sites = append(sites, intercept.Site{Hosts: ic.HTTPSHosts(), Handler: mux})
	}
	return sites
}

// Titled is a Provider with a name for people (the console's "PayPal");
// without it the console shows its Name.
type Titled interface {
	Title() string
}

// Cataloged is a Sender that lists the kinds it sends: the console's
// Simulator offers them, and ipnlab send checks a kind against them.
type Cataloged interface {
	Kinds() []ProviderKind
}

// ProviderInfos lists the providers, built-in ones first.
func (e *Emulator) ProviderInfos() []ProviderInfo {
	out := make([]ProviderInfo, len(e.providers))
	for i, p := range e.providers {
		out[i] = ProviderInfo{Name: p.Name(), Title: p.Name()}
		if t, ok := p.(Titled); ok {
			out[i].Title = t.Title()
		}
		_, out[i].Sends = p.(Sender)
		if c, ok := p.(Cataloged); ok && out[i].Sends {
			out[i].Kinds = c.Kinds()
		}
	}
	return out
}

// Notify asks provider name for messages (its Sender) and waits until
// their first attempts were made, as a send through the API does.
func (e *Emulator) Notify(name string, req NotifyRequest) ([]MessageView, error) {
	p, ok := e.Provider(name)
	if !ok {
		return nil, fmt.Errorf("provider %q: %w (this emulator runs %s)", name, ErrNoProvider, strings.Join(e.providerNames(), ", "))
	}
	s, ok := p.(Sender)
	if !ok {
		return nil, badRequest("provider %s sends nothing asked for by kind: it is no emulator.Sender", name)
	}
	var kinds []string
	if c, ok := p.(Cataloged); ok {
		for _, k := range c.Kinds() {
			kinds = append(kinds, k.Name)
		}
	}
	switch {
	case req.Kind == "" && len(kinds) > 0:
		return nil, badRequest("kind is required: %s sends %s", name, strings.Join(kinds, ", "))
	case req.Kind == "":
		return nil, badRequest("kind is required")
	case len(kinds) > 0 && !slices.Contains(kinds, req.Kind):
		return nil, badRequest("kind %q: %s sends %s", req.Kind, name, strings.Join(kinds, ", "))
	}
	if req.Copies < 0 || req.Copies > 1000 {
		return nil, badRequest("copies %d: want 1 to 1000", req.Copies)
	}
	views, err := s.Notify(Notify{Kind: req.Kind, Set: req.Set, NotifyURL: req.NotifyURL, Seed: uint64(req.Seed), Copies: req.Copies})
	if err != nil {
		return nil, err
	}
	e.WaitIdle()
	// Seen again after the first attempts, as the API shows them.
	for i := range views {
		if v, ok := e.View(views[i].ID); ok {
			views[i] = v
		}
	}
	return views, nil
}

func (e *Emulator) postProviderMessages(w http.ResponseWriter, r *http.Request) error {
	var req NotifyRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	views, err := e.Notify(r.PathValue("name"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"messages": views})
	return nil
}

func (e *Emulator) listProviders(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"providers": e.ProviderInfos()})
	return nil
}

// Claims reports whether a provider of this emulator claims r, a public
// request with credentials of the provider's own (plugin.Claimer).
func (e *Emulator) Claims(r *http.Request) bool {
	for _, p := range e.providers {
		if c, ok := p.(plugin.Claimer); ok && c.Claims(r) {
			return true
		}
	}
	return false
}

// Provider returns the provider named name.
func (e *Emulator) Provider(name string) (Provider, bool) {
	for _, p := range e.providers {
		if p.Name() == name {
			return p, true
		}
	}
	return nil, false
}

func (e *Emulator) providerNames() []string {
	names := make([]string, len(e.providers))
	for i, p := range e.providers {
		names[i] = p.Name()
	}
	return names
}

// Providers lists the emulator's providers, built-in ones first.
func (e *Emulator) Providers() []Provider { return e.providers }

// providerOf is the provider of a delivery record.
func (e *Emulator) providerOf(rec delivery.Message) (Provider, error) {
	p, ok := e.Provider(rec.Provider)
	if !ok {
		return nil, fmt.Errorf("message %s: its provider %q is not registered in this emulator", rec.ID, rec.Provider)
	}
	return p, nil
}
