package emulator

import (
	"encoding/json"
	"fmt"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/generate"
)

// SendLifecycle generates every step first (so a bad request sends
// nothing), then schedules each on the clock. The first step goes at once;
// on a manual clock the answer comes after its first delivery.
func (e *Emulator) SendLifecycle(req LifecycleRequest) (LifecyclePlan, error) {
	p, err := FixtureParams(req.Params)
	if err != nil {
		return LifecyclePlan{}, err
	}
	if req.Name == "" {
		return LifecyclePlan{}, badRequest("name is required: one of %v", generate.LifecycleNames())
	}
	gen, seed, err := e.generator(uint64(req.Seed), req.Charset, "", req.Neutral, req.Params.PayerEmail, &p)
	if err != nil {
		return LifecyclePlan{}, err
	}
	steps, err := gen.Lifecycle(req.Name, p)
	if err != nil {
		return LifecyclePlan{}, badRequest("%v", err)
	}
	plan := LifecyclePlan{Lifecycle: req.Name, Seed: api.Seed(seed)}
	bodies := make([][]byte, len(steps))
	at := e.clock.Now()
	for i, st := range steps {
		if bodies[i], err = st.Message.Body(); err != nil {
			return LifecyclePlan{}, badRequest("step %s: %v", st.Name, err)
		}
		at = at.Add(st.After)
		plan.Steps = append(plan.Steps, PlannedStep{Name: st.Name, Kind: st.Message.Kind, TxnID: st.Message.Fields.Value("txn_id"), At: at})
	}
	first, err := e.send(paypal.Notification{Body: bodies[0], Kind: steps[0].Message.Kind, NotifyURL: req.NotifyURL}, seed)
	if err != nil {
		return LifecyclePlan{}, err
	}
	plan.Steps[0].MessageID = first.ID
	// The later steps are journaled before the answer: a restart sends
	// them at their time, as it resends retries.
	for i := 1; i < len(steps); i++ {
		payload, err := json.Marshal(paypalPlan{Body: bodies[i], Kind: steps[i].Message.Kind, NotifyURL: req.NotifyURL, Seed: seed})
		if err == nil {
			err = e.schedule(Planned{Provider: paypal.Provider, At: plan.Steps[i].At, Label: fmt.Sprintf("lifecycle %s step %s", req.Name, steps[i].Name),
				Payload: payload})
		}
		if err != nil {
			return plan, err
		}
	}
	e.WaitIdle()
	return plan, nil
}
