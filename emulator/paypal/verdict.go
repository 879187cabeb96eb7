package paypal

import (
	"github.com/ipnlab/ipnlab/emulator/api"
)

// Mode is how closely the verifier compares a postback with the message
// (api.VerifyMode).
type Mode = api.VerifyMode

// The modes.
const (
	ModePayPal = api.VerifyPayPal
	ModeStrict = api.VerifyStrict
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) { return api.ParseVerifyMode(s) }

// Rule names one way a postback can differ from the message.
type Rule = api.Rule

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
type Result = api.VerifyResult

// The two answers PayPal gives.
const (
	Verified Result = "VERIFIED"
	Invalid  Result = "INVALID"
)

// Finding is one difference between a postback and the message it
// claims to be (see api.Finding).
type Finding = api.Finding

// Verdict is the outcome of checking one postback (see api.Verdict).
type Verdict = api.Verdict

// finish sets Result and Rule from the findings.
func finish(v *Verdict) {
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
