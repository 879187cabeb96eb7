package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// VerifyResult is PayPal's verifier's answer: VERIFIED or INVALID.
type VerifyResult string

// The two answers.
const (
	ResultVerified VerifyResult = "VERIFIED"
	ResultInvalid  VerifyResult = "INVALID"
)

// Rule names one way a postback can differ from the message it claims to
// be (value-changed, charset, field-dropped, ...).
type Rule string

// FaultKind is a way the verifier can misbehave on purpose (invalid,
// status500, newline, garbage, unavailable, slow, drop).
type FaultKind string

// The faults a listener must survive.
const (
	FaultNone        FaultKind = ""
	FaultInvalid     FaultKind = "invalid"     // answer INVALID whatever was posted
	FaultStatus500   FaultKind = "status500"   // the true verdict, with HTTP 500
	FaultNewline     FaultKind = "newline"     // the true verdict followed by "\n"
	FaultGarbage     FaultKind = "garbage"     // HTTP 200 with an HTML error page (a proxy's)
	FaultUnavailable FaultKind = "unavailable" // HTTP 503 with an HTML error page
	FaultSlow        FaultKind = "slow"        // the true verdict after Delay
	FaultDrop        FaultKind = "drop"        // close the connection without answering
)

// FaultKinds lists every fault, for help texts and validation.
var FaultKinds = []FaultKind{FaultInvalid, FaultStatus500, FaultNewline, FaultGarbage, FaultUnavailable, FaultSlow, FaultDrop}

// VerifyMode is how closely the verifier compares a postback with the
// message it claims to be.
type VerifyMode string

const (
	// VerifyPayPal behaves as the live service does: cmd anywhere (also
	// in the query string), any equivalent percent-encoding and field
	// order, values compared as bytes in the message's charset. What it
	// tolerates is still recorded, as warnings.
	VerifyPayPal VerifyMode = "paypal"
	// VerifyStrict holds the documentation's letter: cmd=_notify-validate
	// first in the body, then the message's bytes unchanged.
	VerifyStrict VerifyMode = "strict"
)

// ParseVerifyMode reads a verify mode's name.
func ParseVerifyMode(s string) (VerifyMode, error) {
	switch VerifyMode(s) {
	case VerifyPayPal, VerifyStrict:
		return VerifyMode(s), nil
	}
	return "", fmt.Errorf("verify mode %q: want paypal or strict", s)
}

// Endpoint is the PayPal environment a verify host belongs to: live,
// sandbox, or "" for the emulator's own address.
type Endpoint string

// Finding is one difference between a postback and the message it claims
// to be. Expected and Got are percent-encoded raw bytes (exact and
// printable); the *Text forms are those bytes decoded in the message's
// charset, for people.
type Finding struct {
	Rule         Rule   `json:"rule"`
	Fatal        bool   `json:"fatal"` // it made the verdict INVALID; otherwise a warning
	Field        string `json:"field,omitempty"`
	Expected     string `json:"expected,omitempty"`
	Got          string `json:"got,omitempty"`
	ExpectedText string `json:"expected_text,omitempty"`
	GotText      string `json:"got_text,omitempty"`
	Detail       string `json:"detail"`
}

// Verdict is the outcome of checking one postback.
type Verdict struct {
	Result    VerifyResult `json:"result"`
	MessageID string       `json:"message_id,omitempty"`
	Rule      Rule         `json:"rule,omitempty"` // the main reason for INVALID
	Findings  []Finding    `json:"findings"`
}

// Warnings returns the findings that did not make the verdict INVALID.
func (v Verdict) Warnings() []Finding {
	var out []Finding
	for _, f := range v.Findings {
		if !f.Fatal {
			out = append(out, f)
		}
	}
	return out
}

// Fatal returns the findings that made the verdict INVALID.
func (v Verdict) Fatal() []Finding {
	var out []Finding
	for _, f := range v.Findings {
		if f.Fatal {
			out = append(out, f)
		}
	}
	return out
}

// Summary is one line for logs and CLI output.
func (v Verdict) Summary() string {
	if v.Result == ResultVerified {
		if w := v.Warnings(); len(w) > 0 {
			return fmt.Sprintf("VERIFIED (warnings: %s)", rulesOf(w))
		}
		return "VERIFIED"
	}
	for _, f := range v.Findings {
		if f.Fatal && f.Rule == v.Rule {
			return fmt.Sprintf("INVALID %s: %s", v.Rule, f.Detail)
		}
	}
	return "INVALID"
}

func rulesOf(fs []Finding) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = string(f.Rule)
	}
	return strings.Join(names, ", ")
}

// Postback is one postback the verifier answered, as the API shows it.
type Postback struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"` // clock time
	MessageID string    `json:"message_id,omitempty"`
	Method    string    `json:"method"`
	URI       string    `json:"uri"`
	Host      string    `json:"host"`
	// Endpoint is the PayPal environment of Host, when it is PayPal's
	// (reached through the intercepting proxy).
	Endpoint Endpoint    `json:"endpoint,omitempty"`
	Header   http.Header `json:"headers"`
	Body     []byte      `json:"-"`
	Verdict  Verdict     `json:"verdict"`
	Fault    FaultKind   `json:"fault,omitempty"`
	Status   int         `json:"response_status"` // 0 when the connection was dropped
	Answer   string      `json:"response_body"`
	// BodyBytes is the body's length as received when only its first
	// bytes were kept (a postback of no known message).
	BodyBytes int `json:"body_bytes,omitempty"`
	// Received is what the listener was answered, in a few words: what
	// every view shows first (Verdict is the emulator's own judgement,
	// which an injected fault hides from the listener).
	Received string `json:"received"`
	// DuringAttempt is the delivery attempt of the message under way when
	// the listener posted back (a listener that verifies before it
	// answers): set on the postback event only, so that a tail prints the
	// attempt first. 0: none was.
	DuringAttempt int `json:"during_attempt,omitempty"`
}

// MarshalJSON writes the body as text when it is UTF-8 (form bodies are
// ASCII) and as base64 too, so no byte is lost either way.
func (p Postback) MarshalJSON() ([]byte, error) {
	type plain Postback
	out := struct {
		plain
		Body       string `json:"body"`
		BodyBase64 []byte `json:"body_base64"`
	}{plain: plain(p), BodyBase64: p.Body}
	if utf8.Valid(p.Body) {
		out.Body = string(p.Body)
	} else {
		out.Body = fmt.Sprintf("(%d bytes, not UTF-8: see body_base64)", len(p.Body))
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Postback) UnmarshalJSON(b []byte) error {
	type plain Postback
	var in struct {
		plain
		BodyBase64 []byte `json:"body_base64"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*p = Postback(in.plain)
	p.Body = in.BodyBase64
	return nil
}

// Answered says what the listener was answered: VERIFIED or INVALID
// when that is exactly what it got (HTTP 200, that body alone), else the
// status and body as they came ("VERIFIED with HTTP 500", "\"VERIFIED\\n\"
// with HTTP 200", "an HTML page with HTTP 503"), or "no answer".
func (p *Postback) Answered() string {
	verdict := p.Answer == string(ResultVerified) || p.Answer == string(ResultInvalid)
	switch {
	case p.Status == 0:
		return "no answer (the connection was closed)"
	case p.Answer == "":
		return fmt.Sprintf("HTTP %d with no body", p.Status)
	case p.Status == http.StatusOK && verdict:
		return p.Answer
	case strings.Contains(strings.ToLower(p.Answer), "<html"):
		return fmt.Sprintf("an HTML page with HTTP %d", p.Status)
	case verdict:
		return fmt.Sprintf("%s with HTTP %d", p.Answer, p.Status)
	}
	body := p.Answer
	if len(body) > 40 {
		body = body[:37] + "..."
	}
	return fmt.Sprintf("%q with HTTP %d", body, p.Status)
}

// Profile is the merchant's IPN settings, as the API takes them.
type Profile struct {
	NotifyURL     string `json:"notify_url"`
	Enabled       bool   `json:"enabled"`
	ReceiverEmail string `json:"receiver_email"`
	ReceiverID    string `json:"receiver_id"`
	// ReleaseHeld is ipnlab's opt-in: switching notifications on sends the
	// messages created while they were off to the profile's URL. PayPal
	// does not (IPN Guide, "IPN Operations"): they wait in History until
	// the merchant resends them.
	ReleaseHeld bool `json:"release_held"`
}
