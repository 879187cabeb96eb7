package emulator

import (
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
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

// ackOutcome is the outcome of a message not acknowledged (yet), and
// acked=true when it was.
func ackOutcome(m delivery.Message) (Outcome, bool) { return plugin.Unacknowledged(m) }
