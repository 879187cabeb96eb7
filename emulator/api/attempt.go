package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"syscall"
	"time"
)

// Trigger says why an attempt was made: initial, retry or manual.
type Trigger string

// Attempt is the record of one HTTP delivery.
type Attempt struct {
	Number      int           `json:"number"`
	Trigger     Trigger       `json:"trigger"`
	URL         string        `json:"url"`
	Start       time.Time     `json:"start"` // clock time
	Duration    time.Duration `json:"-"`     // wall time of the exchange
	StatusCode  int           `json:"status_code,omitempty"`
	Error       string        `json:"error,omitempty"`    // transport error or timeout
	Response    string        `json:"response,omitempty"` // first bytes of the body
	Acked       bool          `json:"acked"`
	Note        string        `json:"note,omitempty"` // e.g. a 2xx accepted leniently
	NextAttempt *time.Time    `json:"next_attempt,omitempty"`
}

// MarshalJSON adds the duration in milliseconds and the Result.
func (a Attempt) MarshalJSON() ([]byte, error) {
	type plain Attempt
	return json.Marshal(struct {
		plain
		DurationMS float64 `json:"duration_ms"`
		Result     string  `json:"result"`
	}{plain(a), float64(a.Duration.Microseconds()) / 1000, a.Result()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Attempt) UnmarshalJSON(b []byte) error {
	type plain Attempt
	var in struct {
		plain
		DurationMS float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*a = Attempt(in.plain)
	// Written to the microsecond: round, or 8.206 ms reads back as
	// 8205.999 µs and is written again as 8.205 (a restart changed it).
	a.Duration = time.Duration(math.Round(in.DurationMS*1000)) * time.Microsecond
	return nil
}

// Result says what the delivery got, in words a user knows: the HTTP
// status, or what went wrong on the way ("connection refused by
// 127.0.0.1:19399" rather than Go's dial error).
func (a Attempt) Result() string {
	switch {
	case a.StatusCode != 0 && a.Acked:
		return fmt.Sprintf("HTTP %d", a.StatusCode)
	case a.StatusCode != 0 && a.Note != "":
		return fmt.Sprintf("HTTP %d (%s)", a.StatusCode, a.Note)
	case a.StatusCode != 0:
		return fmt.Sprintf("HTTP %d", a.StatusCode)
	case a.Error == "":
		return "no answer"
	}
	return plainError(a.Error)
}

// plainError rewrites a transport error recorded as text.
func plainError(msg string) string {
	addr := "" // from "dial tcp 127.0.0.1:19399: connect: ..."
	if i := strings.Index(msg, "dial tcp "); i >= 0 {
		rest := msg[i+len("dial tcp "):]
		if j := strings.Index(rest, ": "); j >= 0 {
			addr = rest[:j]
		}
	}
	switch {
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, syscall.ECONNREFUSED.Error()):
		if addr != "" {
			return "connection refused by " + addr
		}
		return "connection refused"
	case strings.Contains(msg, "connection reset"):
		return "connection reset by the listener"
	case strings.Contains(msg, "EOF"):
		return "the listener closed the connection without answering"
	case strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "Timeout") || strings.Contains(msg, "timeout"):
		return "no answer in time"
	case strings.Contains(msg, "certificate"):
		return "TLS: " + lastPart(msg)
	case strings.Contains(msg, "no such host"):
		return "unknown host"
	}
	return lastPart(msg)
}

// lastPart is the innermost cause of a chain of "op: cause" messages.
func lastPart(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}
