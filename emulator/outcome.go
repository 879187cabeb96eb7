package emulator

import (
	"fmt"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// Judge is a Provider whose listeners verify what they get (PayPal's post
// back); it says what a message's verification came to. A provider
// without one is judged on the acknowledgement alone.
type Judge interface {
	Outcome(m delivery.Message) Outcome
}

// Confirmer is a Provider whose listeners confirm every message with it
// before acting (PayPal's postback): Confirmations counts the times
// message id was confirmed, so that a scenario waits for the
// confirmation a delivered message still owes, and knows a listener that
// never confirmed. A provider whose listeners may verify on their own
// (a signature) is no Confirmer: nothing is owed.
type Confirmer interface {
	Confirmations(id string) int
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
	if o, acked := ackOutcome(m); !acked {
		return o
	}
	return Outcome{State: api.Delivered, Summary: "delivered (HTTP 200)"}
}

// Outcome: acknowledged, then what the postbacks came to.
func (p paypalProvider) Outcome(m delivery.Message) Outcome {
	return judgePostbacks(m, p.e.paypal.Answers(m.ID))
}

// judgePostbacks decides a PayPal message's outcome: one VERIFIED
// postback (with no fault) is enough; otherwise the last postback the
// verifier answered truly decides; postbacks that all met a fault say so.
func judgePostbacks(m delivery.Message, pbs []paypal.Answer) Outcome {
	var verified, last *paypal.Answer
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
func ackOutcome(m delivery.Message) (Outcome, bool) { return plugin.Unacknowledged(m) }
