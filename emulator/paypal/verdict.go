package paypal

import (
	"fmt"
	"strings"
)

// Mode is how closely the verifier compares a postback with the message.
type Mode string

const (
	// ModePayPal behaves as the live service does: cmd anywhere (also in
	// the query string), any equivalent percent-encoding and field order,
	// values compared as bytes in the message's charset. What it tolerates
	// is still recorded, as warnings.
	ModePayPal Mode = "paypal"
	// ModeStrict holds the documentation's letter: cmd=_notify-validate
	// first in the body, then the message's bytes unchanged.
	ModeStrict Mode = "strict"
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModePayPal, ModeStrict:
		return Mode(s), nil
	}
	return "", fmt.Errorf("verify mode %q: want paypal or strict", s)
}

// Rule names one way a postback can differ from the message.
type Rule string

// The rules, roughly from most to least specific.
const (
	RuleMethod         Rule = "method"          // not a POST
	RuleLegacyHost     Rule = "legacy-host"     // strict: www.paypal.com redirects, the body is lost
	RuleMalformed      Rule = "malformed"       // not valid form encoding
	RuleCmdMissing     Rule = "cmd-missing"     // no cmd=_notify-validate
	RuleEndpoint       Rule = "endpoint"        // a sandbox message to the live host, or a live one to the sandbox
	RuleUnknownMessage Rule = "unknown-message" // matches no message sent
	RuleCharset        Rule = "charset"         // a value re-encoded in another charset
	RuleCRLF           Rule = "crlf"            // CRLF and LF swapped in a value
	RulePlusSpace      Rule = "plus-space"      // '+' and space swapped in a value
	RuleValueChanged   Rule = "value-changed"   // a value otherwise changed
	RuleFieldDropped   Rule = "field-dropped"   // a field of the message is missing
	RuleFieldRenamed   Rule = "field-renamed"   // a field came back under another name
	RuleFieldAdded     Rule = "field-added"     // a field not in the message
	RuleOrder          Rule = "order"           // same fields, another order
	RuleEncoding       Rule = "encoding"        // same bytes decoded, other escaping
	RuleCmdPlacement   Rule = "cmd-placement"   // cmd not first in the body
	RuleUserAgent      Rule = "user-agent"      // no User-Agent header
)

// Rules lists every rule, most specific first: a verdict's Rule is the
// first of its fatal findings in this order.
var Rules = []Rule{
	RuleMethod, RuleLegacyHost, RuleMalformed, RuleCmdMissing, RuleEndpoint, RuleUnknownMessage, RuleCharset, RuleCRLF,
	RulePlusSpace, RuleValueChanged, RuleFieldDropped, RuleFieldRenamed, RuleFieldAdded, RuleOrder,
	RuleEncoding, RuleCmdPlacement, RuleUserAgent,
}

func rank(r Rule) int {
	for i, x := range Rules {
		if x == r {
			return i
		}
	}
	return len(Rules)
}

// Result is the verifier's answer.
type Result string

// The two answers PayPal gives.
const (
	Verified Result = "VERIFIED"
	Invalid  Result = "INVALID"
)

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
	Result    Result    `json:"result"`
	MessageID string    `json:"message_id,omitempty"`
	Rule      Rule      `json:"rule,omitempty"` // the main reason for INVALID
	Findings  []Finding `json:"findings"`
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
	if v.Result == Verified {
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

// finish sets Result and Rule from the findings.
func (v *Verdict) finish() {
	v.Result, v.Rule = Verified, ""
	best := len(Rules) + 1
	for _, f := range v.Findings {
		if f.Fatal {
			v.Result = Invalid
			if r := rank(f.Rule); r < best {
				best, v.Rule = r, f.Rule
			}
		}
	}
	if v.Findings == nil {
		v.Findings = []Finding{}
	}
}
