package emulator

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// Judge is a Provider whose listeners verify what they get (PayPal's post
// back); it says what a message's verification came to. A provider
// without one is judged on the acknowledgement alone.
type Judge interface {
	Outcome(m delivery.Message) Outcome
}

// summarize makes the History row of a delivery record, outcome included.
func (e *Emulator) summarize(m delivery.Message) Summary {
	return Summary{
		ID: m.ID, Provider: m.Provider, Kind: m.Kind, TxnID: m.TxnID, Status: m.HistoryStatus(),
		URL: m.URL, Created: m.Created, Resent: m.Resent, AttemptCount: len(m.Attempts), Retries: m.Retries,
		LastCode: m.LastCode, NextAttempt: m.NextAttempt, AckedAt: m.AckedAt, Outcome: e.outcome(m),
	}
}

func (e *Emulator) outcome(m delivery.Message) Outcome {
	if p, ok := e.Provider(m.Provider); ok {
		if j, ok := p.(Judge); ok {
			return j.Outcome(m)
		}
	}
	if o, done := ackOutcome(m); !done {
		return o
	}
	return Outcome{State: api.Delivered, Summary: "delivered (HTTP 200)"}
}

// Outcome: acknowledged, then what the postbacks came to.
func (p paypalProvider) Outcome(m delivery.Message) Outcome {
	return judgePostbacks(m, p.e.paypal.Postbacks(m.ID))
}

// judgePostbacks decides a PayPal message's outcome: one VERIFIED
// postback (with no fault) is enough; otherwise the last postback the
// verifier answered truly decides; postbacks that all met a fault say so.
func judgePostbacks(m delivery.Message, pbs []paypal.PostbackRecord) Outcome {
	var verified, last *paypal.PostbackRecord
	for i := range pbs {
		if pbs[i].Fault != "" {
			continue
		}
		last = &pbs[i]
		if pbs[i].Verdict.Result == paypal.Verified && verified == nil {
			verified = &pbs[i]
		}
	}
	decided := verified
	if decided == nil {
		decided = last
	}
	o, acked := ackOutcome(m)
	if !acked {
		if decided != nil {
			o.Verdict = string(decided.Verdict.Result)
			o.Summary += "; its postback was " + decided.Verdict.Summary()
		}
		return o
	}
	switch {
	case decided != nil && decided.Verdict.Result == paypal.Verified:
		o = Outcome{State: api.Verified, Verdict: string(paypal.Verified), Summary: "delivered (HTTP 200) and verified"}
	case decided != nil:
		o = Outcome{State: api.Invalid, Verdict: string(paypal.Invalid), Rule: string(decided.Verdict.Rule),
			Summary: "delivered (HTTP 200), but the postback was " + decided.Verdict.Summary()}
		for _, f := range decided.Verdict.Fatal() {
			if f.Rule == decided.Verdict.Rule {
				o.Field = f.Field
				break
			}
		}
	case len(pbs) > 0:
		f := pbs[len(pbs)-1].Fault
		o = Outcome{State: api.FaultOnly, Fault: string(f),
			Summary: fmt.Sprintf("delivered (HTTP 200); its postback met the verifier fault %s, and none was answered truly", f)}
	default:
		o = Outcome{State: api.NoPostback, Summary: "delivered (HTTP 200), no postback yet"}
	}
	return o
}

// ackOutcome is the outcome of a message not acknowledged (yet), and
// acked=true when it was.
func ackOutcome(m delivery.Message) (o Outcome, acked bool) {
	if m.AckedAt != nil {
		return Outcome{}, true
	}
	o.State = api.Undelivered
	switch {
	case m.Status == delivery.Held:
		o.Summary = "not sent: IPN was off when it was created (Held until resent)"
	case len(m.Attempts) == 0:
		o.Summary = "not delivered yet"
	case m.NextAttempt != nil:
		o.Summary = fmt.Sprintf("not acknowledged: %s (attempt %d; next %s)", AttemptResult(m.Attempts[len(m.Attempts)-1]),
			len(m.Attempts), m.NextAttempt.UTC().Format(time.RFC3339))
	default:
		o.Summary = fmt.Sprintf("not acknowledged after %d attempts: %s", len(m.Attempts), AttemptResult(m.Attempts[len(m.Attempts)-1]))
	}
	return o, false
}

// AttemptResult says what one delivery got, in words a user knows: the
// HTTP status, or what went wrong on the way ("connection refused by
// 127.0.0.1:19399" rather than Go's dial error).
func AttemptResult(a delivery.Attempt) string {
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
