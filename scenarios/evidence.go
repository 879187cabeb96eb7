package scenarios

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// Evidence: what a failed expectation shows, in the listener's terms and in
// the same words for every run of a seed (clock times, per-message numbers).

// postbackEvidence says, for each postback of a message, what the
// listener sent and what it got back: the verifier's answer as the
// listener received it (status and body), never the emulator's own
// verdict behind an injected fault. Postbacks are numbered per message
// and stamped with clock time, so the same seed gives the same lines.
func postbackEvidence(pbs []paypal.PostbackRecord) []string {
	var out []string
	for i, p := range pbs {
		line := fmt.Sprintf("postback %d at %s: %s", i+1, p.Time.Format(time.RFC3339), answerText(p))
		if p.Fault != "" {
			line += " (the harness broke the verifier on purpose: " + string(p.Fault) + ")"
		}
		switch {
		case p.Verdict.Rule == paypal.RuleMalformed:
			line += "; you posted back a malformed body:"
		case p.Verdict.Result == paypal.Verified && len(p.Verdict.Warnings()) > 0:
			line += "; your postback matched the message (tolerated: " + rulesText(p.Verdict.Warnings()) + ")"
		case p.Verdict.Result == paypal.Verified:
			line += "; your postback matched the message"
		default:
			line += "; your postback did not match the message:"
		}
		if ua := p.Header.Get("User-Agent"); ua == "" {
			line += " [no User-Agent]"
		}
		out = append(out, line)
		for _, f := range p.Verdict.Fatal() {
			out = append(out, "  "+findingText(f))
		}
	}
	return out
}

// answerText is the verifier's answer as the listener received it.
func answerText(p paypal.PostbackRecord) string {
	if p.Status == 0 {
		return "the verifier closed the connection without answering"
	}
	body := p.Answer
	if len(body) > 80 {
		body = body[:77] + "..."
	}
	return fmt.Sprintf("the verifier answered HTTP %d with body %q", p.Status, body)
}

func rulesText(fs []paypal.Finding) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = string(f.Rule)
	}
	return strings.Join(names, ", ")
}

// findingText explains one difference in the listener's words: a dropped
// empty field says it was empty, a renamed one names both names.
func findingText(f paypal.Finding) string {
	switch {
	case f.Field == "":
		return fmt.Sprintf("%s: %s", f.Rule, f.Detail)
	case f.Rule == paypal.RuleFieldDropped || f.Rule == paypal.RuleFieldAdded || f.Rule == paypal.RuleFieldRenamed:
		return fmt.Sprintf("%s: %s", f.Rule, f.Detail)
	}
	return fmt.Sprintf("%s: %s (sent %s, got %s)", f.Rule, f.Detail, orNothing(f.Expected), orNothing(f.Got))
}

func orNothing(raw string) string {
	if raw == "" {
		return "nothing"
	}
	return strconv.Quote(raw)
}

// unverifiedStory says, in the listener's terms, why a message that met a
// broken verifier was never verified: what the verifier answered, what the
// listener then told PayPal, and whether it asked again.
func unverifiedStory(v emulator.MessageView, pbs []paypal.PostbackRecord, within time.Duration) string {
	if len(pbs) == 0 {
		return fmt.Sprintf("it was never posted back within %s", within)
	}
	first := 0
	for i, p := range pbs {
		if p.Fault != "" {
			first = i
			break
		}
	}
	story := strings.Replace(answerText(pbs[first]), "the verifier answered", "the verifier answered your postback", 1)
	if v.AckedAt != nil {
		story += "; you acknowledged the message with HTTP 200, so PayPal will not resend it,"
	} else {
		story += fmt.Sprintf("; you did not acknowledge the message (%d deliveries),", len(v.Attempts))
	}
	if again := len(pbs) - first - 1; again == 0 {
		story += " and you never asked the verifier again"
		if p := pbs[first]; v.AckedAt != nil && p.Status != http.StatusOK && strings.HasPrefix(p.Answer, string(paypal.Verified)) {
			// Trusting the body and giving up read the same on the wire.
			story += fmt.Sprintf(": you may have acted on that answer as if verified (its body says VERIFIED, its status %d says it is no answer), "+
				"or dropped the message; the wire cannot tell which: a probe (--probe) shows whether you credited it", p.Status)
		}
	} else {
		story += fmt.Sprintf(" and none of your %d later postbacks was VERIFIED", again)
	}
	return story + fmt.Sprintf(" (waited %s or more)", within)
}

// attemptEvidence lists a message's deliveries and the listener's answers,
// stamped with clock time (wall durations vary from run to run; a timeout
// says so in its error).
func attemptEvidence(v emulator.MessageView) []string {
	var out []string
	for _, a := range v.Attempts {
		outcome := fmt.Sprintf("you answered HTTP %d", a.StatusCode)
		if a.Error != "" {
			outcome = a.Error
		}
		out = append(out, fmt.Sprintf("delivery %d (%s) at %s: %s", a.Number, a.Trigger, a.Start.Format(time.RFC3339), outcome))
	}
	return out
}
