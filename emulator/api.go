package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/ipnlab/ipnlab/emulator/console"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// MaxAPIBody bounds a control API request body.
const MaxAPIBody = plugin.MaxAPIBody

type route struct {
	method, pattern string
	h               func(http.ResponseWriter, *http.Request) error
}

// apiRoutes is the emulator's own part of the control API (History, the
// clock, events, fixtures' lists, scenarios), /healthz and the document
// that describes the API; each provider adds its routes (Provider.Routes).
func (e *Emulator) apiRoutes() []route {
	return []route{
		{"GET", "/healthz", e.getHealth},
		{"GET", "/metrics", e.getMetrics},
		{"GET", "/api/v1/openapi.yaml", e.getOpenAPI},
		{"GET", "/api/v1/providers", e.listProviders},
		{"POST", "/api/v1/providers/{name}/messages", e.postProviderMessages},
		{"GET", "/api/v1/messages", e.listMessages},
		{"POST", "/api/v1/messages/resend", e.resendFailed},
		{"GET", "/api/v1/messages/{id}", e.getMessage},
		{"POST", "/api/v1/messages/{id}/resend", e.resendMessage},
		{"GET", "/api/v1/clock", e.getClock},
		{"POST", "/api/v1/clock/advance", e.advanceClock},
		{"POST", "/api/v1/clock/run-until-idle", e.runUntilIdle},
		{"GET", "/api/v1/events", e.streamEvents},
		{"GET", "/api/v1/events/poll", e.pollEvents},
		{"GET", "/api/v1/fixtures/kinds", e.listKinds},
		{"GET", "/api/v1/fixtures/lifecycles", e.listLifecycles},
		{"GET", "/api/v1/scenarios", e.listScenarios},
		{"POST", "/api/v1/scenarios/{name}/run", e.runScenario},
	}
}

// Routes lists every "METHOD /pattern" the emulator serves besides its
// console: the control API, /healthz and its providers' routes (a route
// that takes every method, such as PayPal's verifier, is listed as POST,
// the method listeners use). A spec holds openapi.yaml to exactly these.
func (e *Emulator) Routes() []string {
	var out []string
	for _, rt := range e.allRoutes() {
		method := rt.method
		if method == "" {
			method = "POST"
		}
		out = append(out, method+" "+rt.pattern)
	}
	return out
}

// served is one route of the handler, the emulator's or a provider's.
type served struct {
	method, pattern string
	handler         http.Handler
	public          bool
}

func (e *Emulator) allRoutes() []served {
	var out []served
	for _, rt := range e.apiRoutes() {
		out = append(out, served{rt.method, rt.pattern, APIHandler(rt.h), rt.pattern == "/healthz"})
	}
	for _, p := range e.providers {
		for _, rt := range p.Routes() {
			out = append(out, served{rt.Method, rt.Pattern, rt.Handler, rt.Public})
		}
	}
	return out
}

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	paths := http.NewServeMux() // the same patterns without methods, to tell 404 from 405
	allow := map[string][]string{}
	public := http.NewServeMux() // what listeners and probes call, without the token
	for _, rt := range e.allRoutes() {
		mux.Handle(strings.TrimSpace(rt.method+" "+rt.pattern), rt.handler)
		if rt.public {
			public.Handle(strings.TrimSpace(rt.method+" "+rt.pattern), http.NotFoundHandler())
		}
		if rt.method == "" {
			continue // every method: never a 405
		}
		if _, seen := allow[rt.pattern]; !seen {
			paths.Handle(rt.pattern, http.NotFoundHandler())
		}
		allow[rt.pattern] = append(allow[rt.pattern], rt.method)
	}
	for _, pattern := range []string{"/{$}", console.Prefix} {
		mux.Handle("GET "+pattern, console.Handler())
		paths.Handle(pattern, http.NotFoundHandler())
		allow[pattern] = []string{"GET"}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			methods := allow[pattern]
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeError(w, plugin.StatusError(http.StatusMethodNotAllowed,
				"%s %s: method not allowed, use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
			return
		}
		writeError(w, plugin.StatusError(http.StatusNotFound,
			"no endpoint %s %s; the API is described at /api/v1/openapi.yaml", r.Method, r.URL.Path))
	})
	if e.cfg.APIToken == "" {
		return mux
	}
	return e.requireToken(mux, public)
}

// requireToken guards the control API with the bearer token; the public
// routes (/healthz, the providers' verifiers and lookups) stay open, as
// listeners and probes call them, and so does the console's page, which
// asks for the token.
func (e *Emulator) requireToken(next http.Handler, public *http.ServeMux) http.Handler {
	want := sha256.Sum256([]byte(e.cfg.APIToken))
	wantMetrics := sha256.Sum256([]byte(e.cfg.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		// The console's page and script hold no data: they ask the API,
		// with the token.
		if _, pattern := public.Handler(r); pattern != "" || p == "/" || strings.HasPrefix(p, console.Prefix) {
			next.ServeHTTP(w, r)
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Hashing first makes the comparison constant-time whatever the
		// lengths.
		got := sha256.Sum256([]byte(given))
		if ok && p == "/metrics" && e.cfg.MetricsToken != "" && subtle.ConstantTimeCompare(got[:], wantMetrics[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ipnlab"`)
			msg := "this emulator needs its API token: send Authorization: Bearer TOKEN (ipnlab commands read IPNLAB_API_TOKEN)"
			if ok {
				msg = "wrong API token"
			}
			writeError(w, apiError(http.StatusUnauthorized, msg))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is an error the control API answers with its status.
func apiError(status int, msg string) error { return plugin.StatusError(status, "%s", msg) }

func writeError(w http.ResponseWriter, err error) { plugin.WriteError(w, err) }

// messageOf is an error as the API says it.
func messageOf(err error) string { return plugin.MessageOf(err) }

func writeJSON(w http.ResponseWriter, status int, v any) { plugin.WriteJSON(w, status, v) }

// readJSON decodes a request body, refusing other content types, unknown
// fields and oversized bodies.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error { return plugin.ReadJSON(w, r, v) }

// query checks that a request names only the query parameters allowed.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	return plugin.Query(r, allowed...)
}

// getMetrics serves the Prometheus metrics (package metrics).
func (e *Emulator) getMetrics(w http.ResponseWriter, r *http.Request) error {
	e.metrics.Handler().ServeHTTP(w, r)
	return nil
}

func (e *Emulator) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(e.openapi)
	return nil
}

func parseInt(name, s string, def, lo, hi int) (int, error) {
	return plugin.ParseInt(name, s, def, lo, hi)
}
