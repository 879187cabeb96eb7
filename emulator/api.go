package emulator

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/console"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// MaxAPIBody bounds a control API request body.
const MaxAPIBody = 1 << 20

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

// paydoLookupPattern is PayDo's status lookup, served for listeners.
const paydoLookupPattern = "/paydo/v1/transactions/{id}"

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
			writeError(w, &apiError{http.StatusMethodNotAllowed,
				fmt.Sprintf("%s %s: method not allowed, use %s", r.Method, r.URL.Path, strings.Join(methods, " or "))})
			return
		}
		writeError(w, &apiError{http.StatusNotFound,
			fmt.Sprintf("no endpoint %s %s; the API is described at /api/v1/openapi.yaml", r.Method, r.URL.Path)})
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
			writeError(w, &apiError{http.StatusUnauthorized, msg})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError carries an HTTP status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func statusOf(err error) int {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, delivery.ErrNotFound), errors.Is(err, paypal.ErrNotFound), errors.Is(err, ErrNoProvider):
		return http.StatusNotFound
	case errors.Is(err, clock.ErrNotManual), errors.Is(err, delivery.ErrNotHeld), errors.Is(err, paypal.ErrSignTaken), errors.Is(err, paydo.ErrTaken):
		return http.StatusConflict
	case errors.Is(err, delivery.ErrBadURL), errors.Is(err, paypal.ErrNoTarget), errors.Is(err, clock.ErrNegative), errors.Is(err, clock.ErrTooLong):
		return http.StatusBadRequest
	case errors.Is(err, delivery.ErrNotAllowed):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// refused is a refused setting's error: 403 when the allowlist refused
// its URL, 409 when another sandbox account has it, else 400.
func refused(err error) error {
	if errors.Is(err, delivery.ErrNotAllowed) || errors.Is(err, paydo.ErrTaken) {
		return err
	}
	return badRequest("%v", err)
}

func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	writeJSON(w, status, map[string]any{"error": map[string]any{"status": status, "message": messageOf(err)}})
}

// messageOf is an error as the API says it.
func messageOf(err error) string {
	return strings.TrimPrefix(err.Error(), errBadRequest.Error()+": ")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// firstInvalidUTF8 returns the offset of the first byte that is not UTF-8.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// readJSON decodes a request body, refusing other content types, unknown
// fields and oversized bodies.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &apiError{http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAPIBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxAPIBody)}
	case err != nil:
		return badRequest("reading the body: %v", err)
	case !utf8.Valid(body):
		// encoding/json would quietly replace the bad bytes with U+FFFD.
		return badRequest("body is not UTF-8 (JSON must be): invalid byte at offset %d", firstInvalidUTF8(body))
	case bytes.Equal(bytes.TrimSpace(body), []byte("null")):
		// encoding/json leaves v as it was: a null would pass for {}.
		return badRequest("body is null: want a JSON object")
	}
	return decodeJSON(bytes.NewReader(body), v)
}

// query checks that a request names only the query parameters allowed.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(allowed, k) {
			sort.Strings(allowed)
			return nil, badRequest("unknown query parameter %q: want %s", k, strings.Join(allowed, ", "))
		}
	}
	return q, nil
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
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s %q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}
