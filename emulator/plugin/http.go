package plugin

import (
	"bytes"
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

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// The control API's conventions, for the emulator's routes and every
// provider's: JSON in and out, errors as {"error": {status, message}}.

// MaxAPIBody bounds a control API request body.
const MaxAPIBody = 1 << 20

// ErrBadRequest marks errors that are the caller's fault (HTTP 400).
var ErrBadRequest = errors.New("bad request")

// BadRequest is an error that is the caller's fault (HTTP 400).
func BadRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// statusError carries an HTTP status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) HTTPStatus() int { return e.status }

// StatusError is an error the control API answers with status.
func StatusError(status int, format string, args ...any) error {
	return &statusError{status, fmt.Sprintf(format, args...)}
}

// StatusOf is the HTTP status the control API answers err with: the
// status an error in its chain carries (an HTTPStatus method, such as a
// StatusError's or a provider's sentinel's), 400 for a BadRequest and the
// shared engine's refusals, 404 for a message it does not know, 409 for a
// state that forbids it, else 500.
func StatusOf(err error) int {
	var carrier interface{ HTTPStatus() int }
	switch {
	case errors.As(err, &carrier):
		return carrier.HTTPStatus()
	case errors.Is(err, ErrBadRequest), errors.Is(err, delivery.ErrBadURL), errors.Is(err, clock.ErrNegative), errors.Is(err, clock.ErrTooLong):
		return http.StatusBadRequest
	case errors.Is(err, delivery.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, clock.ErrNotManual), errors.Is(err, delivery.ErrNotHeld):
		return http.StatusConflict
	case errors.Is(err, delivery.ErrNotAllowed):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// APIHandler serves h as the control API does: an error becomes the API's
// JSON error, with its status (StatusOf).
func APIHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, err)
		}
	})
}

// APIRoute is a control API route served by h (through APIHandler).
func APIRoute(method, pattern string, h func(http.ResponseWriter, *http.Request) error) Route {
	return Route{Method: method, Pattern: pattern, Handler: APIHandler(h)}
}

// Sending serves a provider's send route: the request body read as an R
// (ReadJSON), and the messages send made answered 201 {"messages": [...]}.
func Sending[R any](send func(R) ([]api.MessageView, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req R
		if err := ReadJSON(w, r, &req); err != nil {
			return err
		}
		views, err := send(req)
		if err != nil {
			return err
		}
		WriteJSON(w, http.StatusCreated, map[string]any{"messages": views})
		return nil
	}
}

// WriteError answers with err as the control API's JSON error.
func WriteError(w http.ResponseWriter, err error) {
	status := StatusOf(err)
	WriteJSON(w, status, map[string]any{"error": map[string]any{"status": status, "message": MessageOf(err)}})
}

// MessageOf is an error as the API says it.
func MessageOf(err error) string {
	return strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// ReadJSON decodes a control API request body into v, strictly: other
// content types, unknown fields, trailing data and bodies larger than
// MaxAPIBody are refused.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return StatusError(http.StatusUnsupportedMediaType, "content type %q: send application/json", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAPIBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return StatusError(http.StatusRequestEntityTooLarge, "body larger than %d bytes", MaxAPIBody)
	case err != nil:
		return BadRequest("reading the body: %v", err)
	case !utf8.Valid(body):
		// encoding/json would quietly replace the bad bytes with U+FFFD.
		return BadRequest("body is not UTF-8 (JSON must be): invalid byte at offset %d", firstInvalidUTF8(body))
	case bytes.Equal(bytes.TrimSpace(body), []byte("null")):
		// encoding/json leaves v as it was: a null would pass for {}.
		return BadRequest("body is null: want a JSON object")
	}
	return DecodeJSON(bytes.NewReader(body), v)
}

// DecodeJSON reads exactly one JSON value into v, refusing unknown fields
// and trailing data.
func DecodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return BadRequest("empty body: want a JSON object")
		}
		return BadRequest("invalid JSON: %v", err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return BadRequest("invalid JSON: data after the first value")
	}
	return nil
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

// Query checks that a request names only the query parameters allowed.
func Query(r *http.Request, allowed ...string) (url.Values, error) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(allowed, k) {
			sort.Strings(allowed)
			return nil, BadRequest("unknown query parameter %q: want %s", k, strings.Join(allowed, ", "))
		}
	}
	return q, nil
}

// ParseSeed reads a seed given as a query parameter (0 when absent).
func ParseSeed(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, BadRequest("seed %q: want a whole number", s)
	}
	return n, nil
}

// ParseInt reads a whole-number query parameter: def when absent, refused
// outside lo..hi.
func ParseInt(name, s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, BadRequest("%s %q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

// Refused is a refused setting's error as the control API answers it:
// as it is when it says its own status (409 for a key another sandbox
// account has) or the allowlist refused its URL (403), else a BadRequest.
func Refused(err error) error {
	var carrier interface{ HTTPStatus() int }
	if errors.As(err, &carrier) || errors.Is(err, delivery.ErrNotAllowed) {
		return err
	}
	return BadRequest("%v", err)
}
