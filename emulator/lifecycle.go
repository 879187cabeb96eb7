package emulator

import (
	"fmt"
	"time"

	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/fixtures"
)

// LifecycleRequest asks for a fixture lifecycle to be sent, each step at
// its offset on the clock (a chargeback spans weeks: use a manual or scaled
// clock to see it through).
type LifecycleRequest struct {
	Name      string `json:"name"`
	Params    Params `json:"params,omitempty"`
	Charset   string `json:"charset,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	Neutral   bool   `json:"neutral,omitempty"` // see SendRequest.Neutral
	NotifyURL string `json:"notify_url,omitempty"`
}

// PlannedStep is one step of a lifecycle and when it is sent.
type PlannedStep struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	TxnID     string    `json:"txn_id,omitempty"`
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id,omitempty"` // once sent
}

// LifecyclePlan is what SendLifecycle scheduled.
type LifecyclePlan struct {
	Lifecycle string        `json:"lifecycle"`
	Seed      uint64        `json:"seed"`
	Steps     []PlannedStep `json:"steps"`
}

// SendLifecycle generates every step first (so a bad request sends
// nothing), then schedules each on the clock. The first step goes at once;
// on a manual clock the answer comes after its first delivery.
func (e *Emulator) SendLifecycle(req LifecycleRequest) (LifecyclePlan, error) {
	p, err := req.Params.Fixture()
	if err != nil {
		return LifecyclePlan{}, err
	}
	if req.Name == "" {
		return LifecyclePlan{}, badRequest("name is required: one of %v", fixtures.LifecycleNames())
	}
	gen, seed, err := e.generator(req.Seed, req.Charset, "", req.Neutral, req.Params.PayerEmail, &p)
	if err != nil {
		return LifecyclePlan{}, err
	}
	steps, err := gen.Lifecycle(req.Name, p)
	if err != nil {
		return LifecyclePlan{}, badRequest("%v", err)
	}
	plan := LifecyclePlan{Lifecycle: req.Name, Seed: seed}
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
		err := e.schedule(scheduledSend{At: plan.Steps[i].At, Label: fmt.Sprintf("lifecycle %s step %s", req.Name, steps[i].Name),
			Body: bodies[i], Kind: steps[i].Message.Kind, NotifyURL: req.NotifyURL, Seed: seed})
		if err != nil {
			return plan, err
		}
	}
	e.WaitIdle()
	return plan, nil
}
