package paypal

import (
	"fmt"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

// Outcome: acknowledged, then what the postbacks came to.
func (pl *Plugin) Outcome(m delivery.Message) api.Outcome {
	return judgePostbacks(m, pl.svc.Answers(m.ID))
}

// judgePostbacks decides a PayPal message's outcome: one VERIFIED
// postback (with no fault) is enough; otherwise the last postback the
// verifier answered truly decides; postbacks that all met a fault say so.
func judgePostbacks(m delivery.Message, pbs []Answer) api.Outcome {
	var verified, last *Answer
	for i := range pbs {
		if pbs[i].Fault != "" {
			continue
		}
		last = &pbs[i]
		if pbs[i].Verdict.Result == Verified && verified == nil {
			verified = &pbs[i]
		}
	}
	decided := verified
	if decided == nil {
		decided = last
	}
	o, acked := plugin.Unacknowledged(m)
	if !acked {
		if decided != nil {
			o.Verdict = string(decided.Verdict.Result)
			o.Summary += "; its postback was " + decided.Verdict.Summary()
		}
		return o
	}
	switch {
	case decided != nil && decided.Verdict.Result == Verified:
		o = api.Outcome{State: api.Verified, Verdict: string(Verified), Summary: "delivered (HTTP 200) and verified"}
	case decided != nil:
		o = api.Outcome{State: api.Invalid, Verdict: string(Invalid), Rule: string(decided.Verdict.Rule),
			Summary: "delivered (HTTP 200), but the postback was " + decided.Verdict.Summary()}
		for _, f := range decided.Verdict.Fatal() {
			if f.Rule == decided.Verdict.Rule {
				o.Field = f.Field
				break
			}
		}
	case len(pbs) > 0:
		f := pbs[len(pbs)-1].Fault
		o = api.Outcome{State: api.FaultOnly, Fault: string(f),
			Summary: fmt.Sprintf("delivered (HTTP 200); its postback met the verifier fault %s, and none was answered truly", f)}
	default:
		o = api.Outcome{State: api.NoPostback, Summary: "delivered (HTTP 200), no postback yet"}
	}
	return o
}
