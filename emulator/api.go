package emulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/console"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/fixtures"
)

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the control API's OpenAPI document.
func OpenAPI() []byte { return openapiYAML }

// MaxAPIBody bounds a control API request body.
const MaxAPIBody = 1 << 20

type route struct {
	method, pattern string
	h               func(http.ResponseWriter, *http.Request) error
}

// apiRoutes is the control API, /healthz and the document that describes
// them.
func (e *Emulator) apiRoutes() []route {
	return []route{
		{"GET", "/healthz", e.getHealth},
		{"GET", "/api/v1/openapi.yaml", e.getOpenAPI},
		{"POST", "/api/v1/paypal/notifications", e.postNotification},
		{"GET", "/api/v1/paypal/profile", e.getProfile},
		{"PUT", "/api/v1/paypal/profile", e.putProfile},
		{"GET", "/api/v1/paypal/fault", e.getFault},
		{"PUT", "/api/v1/paypal/fault", e.putFault},
		{"DELETE", "/api/v1/paypal/fault", e.deleteFault},
		{"GET", "/api/v1/messages", e.listMessages},
		{"POST", "/api/v1/messages/resend", e.resendFailed},
		{"GET", "/api/v1/messages/{id}", e.getMessage},
		{"POST", "/api/v1/messages/{id}/resend", e.resendMessage},
		{"GET", "/api/v1/messages/{id}/fault", e.getFault},
		{"PUT", "/api/v1/messages/{id}/fault", e.putFault},
		{"DELETE", "/api/v1/messages/{id}/fault", e.deleteFault},
		{"GET", "/api/v1/postbacks", e.listPostbacks},
		{"GET", "/api/v1/clock", e.getClock},
		{"POST", "/api/v1/clock/advance", e.advanceClock},
		{"POST", "/api/v1/clock/run-until-idle", e.runUntilIdle},
		{"GET", "/api/v1/events", e.streamEvents},
		{"GET", "/api/v1/events/poll", e.pollEvents},
		{"POST", "/api/v1/paypal/lifecycles", e.postLifecycle},
		{"POST", "/api/v1/paydo/notifications", e.postPayDo},
		{"PUT", "/api/v1/paydo/projects/{project}/ipn-url", e.putRegistration},
		{"DELETE", "/api/v1/paydo/projects/{project}/ipn-url", e.putRegistration},
		{"PUT", "/api/v1/paydo/users/{user}/transfer-ipn-url", e.putRegistration},
		{"DELETE", "/api/v1/paydo/users/{user}/transfer-ipn-url", e.putRegistration},
		{"GET", "/api/v1/paydo/registrations", e.getRegistrations},
		{"GET", "/api/v1/paydo/transactions", e.listPayDoTransactions},
		{"GET", "/api/v1/fixtures/kinds", e.listKinds},
		{"GET", "/api/v1/fixtures/lifecycles", e.listLifecycles},
		{"GET", "/api/v1/fixtures/paypal/{kind}", e.previewPayPal},
		{"GET", "/api/v1/fixtures/paydo/{kind}", e.previewPayDo},
		{"GET", "/api/v1/scenarios", e.listScenarios},
		{"POST", "/api/v1/scenarios/{name}/run", e.runScenario},
	}
}

// Routes lists every "METHOD /pattern" the emulator serves besides its
// console: the control API, /healthz, the verifier (which takes every
// method and answers PayPal's way) and PayDo's status lookup. A spec
// holds openapi.yaml to exactly these.
func (e *Emulator) Routes() []string {
	var out []string
	for _, rt := range e.apiRoutes() {
		out = append(out, rt.method+" "+rt.pattern)
	}
	return append(out, "POST /cgi-bin/webscr", "GET "+paydoLookupPattern)
}

// paydoLookupPattern is PayDo's status lookup, served for listeners.
const paydoLookupPattern = "/paydo/v1/transactions/{id}"

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	paths := http.NewServeMux() // the same patterns without methods, to tell 404 from 405
	allow := map[string][]string{}
	for _, rt := range e.apiRoutes() {
		h := rt.h
		mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				writeError(w, err)
			}
		})
		if _, seen := allow[rt.pattern]; !seen {
			paths.Handle(rt.pattern, http.NotFoundHandler())
		}
		allow[rt.pattern] = append(allow[rt.pattern], rt.method)
	}
	// The verifier takes every method so that a wrong one is recorded.
	mux.Handle("/cgi-bin/webscr", e.paypal)
	mux.Handle("GET "+paydoLookupPattern, e.paydo.LookupHandler())
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
	return e.requireToken(mux)
}

// requireToken guards the control API with the bearer token; the
// verifier, PayDo's lookups and /healthz stay open, as listeners and probes
// call them, and so does the console's page, which asks for the token.
func (e *Emulator) requireToken(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(e.cfg.APIToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		// The console's page and script hold no data: they ask the API,
		// with the token.
		if p == "/healthz" || p == "/cgi-bin/webscr" || strings.HasPrefix(p, "/paydo/v1/") ||
			p == "/" || strings.HasPrefix(p, console.Prefix) {
			next.ServeHTTP(w, r)
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Hashing first makes the comparison constant-time whatever the
		// lengths.
		got := sha256.Sum256([]byte(given))
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
	case errors.Is(err, delivery.ErrNotFound), errors.Is(err, paypal.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, clock.ErrNotManual), errors.Is(err, delivery.ErrNotHeld):
		return http.StatusConflict
	case errors.Is(err, delivery.ErrBadURL), errors.Is(err, paypal.ErrNoTarget), errors.Is(err, clock.ErrNegative), errors.Is(err, clock.ErrTooLong):
		return http.StatusBadRequest
	case errors.Is(err, delivery.ErrNotAllowed):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// refused is a refused setting's error: 403 when the allowlist refused
// its URL, else 400.
func refused(err error) error {
	if errors.Is(err, delivery.ErrNotAllowed) {
		return err
	}
	return badRequest("%v", err)
}

func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	msg := strings.TrimPrefix(err.Error(), errBadRequest.Error()+": ")
	writeJSON(w, status, map[string]any{"error": map[string]any{"status": status, "message": msg}})
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

func (e *Emulator) getHealth(w http.ResponseWriter, r *http.Request) error {
	if stuck := e.Stuck(healthBudget); len(stuck) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "stuck", "stuck": stuck,
			"detail": fmt.Sprintf("these parts of the emulator have held their lock for over %s: sends, deliveries or postbacks through them hang", healthBudget)})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "clock": e.clock.Mode(), "now": e.clock.Now(), "verify": e.paypal.Mode()})
	return nil
}

// healthBudget is how long /healthz lets a lock stay taken before it
// calls its loop stuck: they are held for microseconds.
const healthBudget = time.Second

// Stuck names the emulator's parts (events, delivery, paypal, paydo,
// clock) whose lock cannot be taken within d: a wedged loop that every
// send, delivery or verification would hang on.
func (e *Emulator) Stuck(d time.Duration) []string {
	type part struct {
		name string
		free func(time.Duration) bool
	}
	parts := []part{{"events", e.bus.Responsive}, {"delivery", e.engine.Responsive}, {"paypal", e.paypal.Responsive}, {"paydo", e.paydo.Responsive}}
	if m, ok := e.clock.(*clock.Manual); ok {
		parts = append(parts, part{"clock", m.Responsive})
	}
	stuck := make([]bool, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stuck[i] = !p.free(d)
		}()
	}
	wg.Wait()
	var out []string
	for i, p := range parts {
		if stuck[i] {
			out = append(out, p.name)
		}
	}
	return out
}

func (e *Emulator) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openapiYAML)
	return nil
}

func (e *Emulator) postNotification(w http.ResponseWriter, r *http.Request) error {
	var req SendRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	view, err := e.SendPayPal(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, view)
	return nil
}

func (e *Emulator) getProfile(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, e.paypal.Profile())
	return nil
}

func (e *Emulator) putProfile(w http.ResponseWriter, r *http.Request) error {
	var p paypal.Profile
	if err := readJSON(w, r, &p); err != nil {
		return err
	}
	if err := e.paypal.SetProfile(p); err != nil {
		return refused(err)
	}
	e.bus.Publish(events.Profile, e.clock.Now(), paypal.Provider, "", p)
	e.WaitIdle()
	writeJSON(w, http.StatusOK, e.paypal.Profile())
	return nil
}

func (e *Emulator) getFault(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id != "" {
		if _, ok := e.paypal.Message(id); !ok {
			return fmt.Errorf("message %s: %w", id, paypal.ErrNotFound)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"fault": e.paypal.Fault(id)})
	return nil
}

func (e *Emulator) putFault(w http.ResponseWriter, r *http.Request) error {
	var fr FaultRequest
	if err := readJSON(w, r, &fr); err != nil {
		return err
	}
	f, err := fr.fault()
	if err != nil {
		return badRequest("%v", err)
	}
	id := r.PathValue("id")
	if err := e.paypal.SetFault(id, &f); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"fault": f})
	return nil
}

func (e *Emulator) deleteFault(w http.ResponseWriter, r *http.Request) error {
	if err := e.paypal.SetFault(r.PathValue("id"), nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// MessageFilter selects messages for History.
type MessageFilter struct {
	Provider string
	Status   delivery.Status
	Kind     string
	TxnID    string
	Since    time.Time
	Until    time.Time
}

func (f MessageFilter) keep(m *delivery.Message) bool {
	return (f.Provider == "" || m.Provider == f.Provider) &&
		(f.Status == "" || m.Status == f.Status) &&
		(f.Kind == "" || m.Kind == f.Kind) &&
		(f.TxnID == "" || m.TxnID == f.TxnID) &&
		(f.Since.IsZero() || !m.Created.Before(f.Since)) &&
		(f.Until.IsZero() || m.Created.Before(f.Until))
}

func parseStatus(s string) (delivery.Status, error) {
	for _, st := range []delivery.Status{delivery.Queued, delivery.Sent, delivery.Retrying, delivery.Failed, delivery.Disabled} {
		if strings.EqualFold(s, string(st)) {
			return st, nil
		}
	}
	return "", badRequest("status %q: want Queued, Sent, Retrying, Failed or Disabled", s)
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, badRequest("%s %q: want an RFC 3339 time such as 2026-11-20T12:00:00Z", name, s)
	}
	return t, nil
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

func (e *Emulator) listMessages(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "provider", "status", "kind", "txn_id", "since", "until", "limit", "offset")
	if err != nil {
		return err
	}
	f := MessageFilter{Provider: q.Get("provider"), Kind: q.Get("kind"), TxnID: q.Get("txn_id")}
	if f.Provider != "" && f.Provider != paypal.Provider && f.Provider != paydo.Provider {
		return badRequest("provider %q: want paypal or paydo", f.Provider)
	}
	if s := q.Get("status"); s != "" {
		if f.Status, err = parseStatus(s); err != nil {
			return err
		}
	}
	if f.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", q.Get("until")); err != nil {
		return err
	}
	limit, err := parseInt("limit", q.Get("limit"), 100, 1, 10000)
	if err != nil {
		return err
	}
	offset, err := parseInt("offset", q.Get("offset"), 0, 0, 1<<30)
	if err != nil {
		return err
	}
	// Read first: a change after it is an event after it, so a client
	// that follows events from here misses nothing.
	last := e.bus.Last()
	all := e.engine.List(f.keep)
	out := make([]Summary, 0, min(limit, len(all)))
	for i := offset; i < len(all) && len(out) < limit; i++ {
		out = append(out, Summarize(all[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "total": len(all), "last_event": last})
	return nil
}

func (e *Emulator) getMessage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	v, ok := e.View(id)
	if !ok {
		return fmt.Errorf("message %s: %w", id, delivery.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// ResendRequest is the body of a resend.
type ResendRequest struct {
	URL           string `json:"url,omitempty"`
	UseProfileURL bool   `json:"use_profile_url,omitempty"`
	// Bulk resend only: messages created at or after Since with Status.
	Since  string `json:"since,omitempty"`
	Status string `json:"status,omitempty"`
}

func (e *Emulator) resendMessage(w http.ResponseWriter, r *http.Request) error {
	var req ResendRequest
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	if req.Since != "" || req.Status != "" {
		return badRequest("since and status belong to POST /api/v1/messages/resend")
	}
	if req.URL != "" && req.UseProfileURL {
		return badRequest("give url or use_profile_url, not both")
	}
	id := r.PathValue("id")
	if err := e.resend(id, req); err != nil {
		return err
	}
	e.WaitIdle()
	v, _ := e.View(id)
	writeJSON(w, http.StatusAccepted, v)
	return nil
}

// resend resends one message by hand, whichever provider sent it: PayPal's
// carry resend=true, PayDo's are the same bytes again.
func (e *Emulator) resend(id string, req ResendRequest) error {
	rec, ok := e.engine.Get(id)
	if !ok {
		return fmt.Errorf("resend %s: %w", id, delivery.ErrNotFound)
	}
	if rec.Provider == paydo.Provider {
		if req.UseProfileURL {
			return badRequest("use_profile_url is PayPal's: PayDo has no profile URL")
		}
		_, err := e.engine.Resend(id, req.URL)
		return err
	}
	_, err := e.paypal.Resend(id, req.URL, req.UseProfileURL)
	return err
}

func (e *Emulator) resendFailed(w http.ResponseWriter, r *http.Request) error {
	var req ResendRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Since == "" {
		return badRequest("since is required: resend the messages created since when?")
	}
	since, err := parseTime("since", req.Since)
	if err != nil {
		return err
	}
	status := delivery.Failed
	if req.Status != "" {
		if status, err = parseStatus(req.Status); err != nil {
			return err
		}
	}
	if req.URL != "" && req.UseProfileURL {
		return badRequest("give url or use_profile_url, not both")
	}
	ids := []string{}
	for _, m := range e.engine.List(MessageFilter{Status: status, Since: since}.keep) {
		if err := e.resend(m.ID, req); err != nil {
			return err
		}
		ids = append(ids, m.ID)
	}
	e.WaitIdle()
	writeJSON(w, http.StatusAccepted, map[string]any{"resent": ids})
	return nil
}

// listPostbacks pages through the postbacks, oldest first: ?limit= (100 by
// default, at most 1000) and ?after= the "next" of the previous page.
func (e *Emulator) listPostbacks(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "message_id", "limit", "after")
	if err != nil {
		return err
	}
	id := q.Get("message_id")
	if id != "" {
		if _, ok := e.paypal.Message(id); !ok {
			return fmt.Errorf("message %s: %w", id, paypal.ErrNotFound)
		}
	}
	limit, err := parseInt("limit", q.Get("limit"), 100, 1, 1000)
	if err != nil {
		return err
	}
	after, err := parseInt("after", q.Get("after"), 0, 0, math.MaxInt32)
	if err != nil {
		return err
	}
	page, next := e.paypal.PostbacksPage(id, after, limit)
	out := map[string]any{"postbacks": page}
	if next > 0 {
		out["next"] = next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ClockView is the clock as the API shows it.
type ClockView struct {
	Now     time.Time `json:"now"`
	Mode    string    `json:"mode"`
	Pending int       `json:"pending"` // callbacks waiting (manual clock only)
}

func (e *Emulator) clockView() ClockView {
	v := ClockView{Now: e.clock.Now(), Mode: e.clock.Mode()}
	if ctl, ok := e.clock.(clock.Controller); ok {
		v.Pending = ctl.Pending()
	}
	return v
}

func (e *Emulator) getClock(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, e.clockView())
	return nil
}

func (e *Emulator) advanceClock(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Duration string `json:"duration"`
	}
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	d, err := clock.ParseDuration(req.Duration)
	if err != nil {
		return badRequest("%v", err)
	}
	if err := e.Advance(d); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e.clockView())
	return nil
}

func (e *Emulator) runUntilIdle(w http.ResponseWriter, r *http.Request) error {
	req := struct {
		Limit string `json:"limit"`
	}{Limit: "30d"}
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	limit, err := clock.ParseDuration(req.Limit)
	if err != nil {
		return badRequest("limit: %v", err)
	}
	ctl, ok := e.clock.(clock.Controller)
	if !ok {
		return fmt.Errorf("run until idle: %w (it is %s)", clock.ErrNotManual, e.clock.Mode())
	}
	moved, err := ctl.RunUntilIdle(limit)
	e.report(e.saveClock(e.clock.Now()))
	e.bus.Publish(events.ClockAdvanced, e.clock.Now(), "", "", map[string]string{"by": moved.String()})
	if err != nil {
		return &apiError{http.StatusConflict, err.Error()}
	}
	writeJSON(w, http.StatusOK, e.clockView())
	return nil
}

// eventQuery reads the filters shared by the event endpoints.
type eventQuery struct {
	after     uint64
	types     []string
	messageID string
	limit     int
	timeout   time.Duration
}

func parseEventQuery(r *http.Request, poll bool) (eventQuery, error) {
	allowed := []string{"after", "type", "message_id", "limit"}
	if poll {
		allowed = append(allowed, "timeout")
	}
	q, err := query(r, allowed...)
	if err != nil {
		return eventQuery{}, err
	}
	eq := eventQuery{messageID: q.Get("message_id"), timeout: 25 * time.Second}
	after := q.Get("after")
	if after == "" {
		after = r.Header.Get("Last-Event-ID")
	}
	if after != "" {
		if eq.after, err = strconv.ParseUint(after, 10, 64); err != nil {
			return eq, badRequest("after %q: want an event sequence number", after)
		}
	}
	if t := q.Get("type"); t != "" {
		known := events.Types
		for _, typ := range strings.Split(t, ",") {
			if !slices.Contains(known, typ) {
				return eq, badRequest("event type %q: want %s", typ, strings.Join(known, ", "))
			}
			eq.types = append(eq.types, typ)
		}
	}
	if eq.limit, err = parseInt("limit", q.Get("limit"), 1000, 1, 10000); err != nil {
		return eq, err
	}
	if t := q.Get("timeout"); t != "" {
		if eq.timeout, err = time.ParseDuration(t); err != nil || eq.timeout < 0 || eq.timeout > 5*time.Minute {
			return eq, badRequest("timeout %q: want a duration up to 5m", t)
		}
	}
	return eq, nil
}

func (q eventQuery) match(ev events.Event) bool {
	return (len(q.types) == 0 || slices.Contains(q.types, ev.Type)) && (q.messageID == "" || ev.MessageID == q.messageID)
}

// next waits for matching events after q.after; it moves q.after past
// everything it looked at.
func (e *Emulator) next(ctx context.Context, q *eventQuery) ([]events.Event, bool, error) {
	for {
		evs, missed, err := e.bus.Wait(ctx, q.after, q.limit)
		if err != nil {
			return nil, false, err
		}
		var out []events.Event
		for _, ev := range evs {
			if q.match(ev) {
				out = append(out, ev)
			}
		}
		q.after = evs[len(evs)-1].Seq
		if len(out) > 0 || missed {
			return out, missed, nil
		}
	}
}

func (e *Emulator) pollEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := parseEventQuery(r, true)
	if err != nil {
		return err
	}
	base, stop := e.streamContext(r)
	defer stop()
	ctx, cancel := context.WithTimeout(base, q.timeout)
	defer cancel()
	evs, missed, err := e.next(ctx, &q)
	if err != nil && r.Context().Err() != nil {
		return &apiError{499, "client went away"}
	}
	if evs == nil {
		evs = []events.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "last": q.after, "missed": missed})
	return nil
}

func (e *Emulator) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := parseEventQuery(r, false)
	if err != nil {
		return err
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return &apiError{http.StatusInternalServerError, "streaming unsupported"}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, ": ipnlab events after %d\n\n", q.after)
	flusher.Flush()
	base, stop := e.streamContext(r)
	defer stop()
	for {
		ctx, cancel := context.WithTimeout(base, 15*time.Second)
		evs, missed, err := e.next(ctx, &q)
		cancel()
		if base.Err() != nil {
			return nil
		}
		if err != nil { // heartbeat keeps proxies from closing an idle stream
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
			continue
		}
		if missed {
			_, _ = fmt.Fprint(w, "event: missed\ndata: {}\n\n")
		}
		for _, ev := range evs {
			data, _ := json.Marshal(ev)
			_, _ = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data)
		}
		flusher.Flush()
	}
}

func (e *Emulator) postLifecycle(w http.ResponseWriter, r *http.Request) error {
	var req LifecycleRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	plan, err := e.SendLifecycle(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, plan)
	return nil
}

func (e *Emulator) listLifecycles(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"lifecycles": fixtures.Lifecycles()})
	return nil
}

func (e *Emulator) listKinds(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"kinds": fixtures.Kinds(), "paydo_kinds": fixtures.PayDoKinds()})
	return nil
}
