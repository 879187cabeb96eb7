package scenarios

import (
	"context"
	"slices"
	"time"
)

// Waiting on the listener: settling on its transactions, on events.

// settle waits (up to Settle) for the listener to finish what it
// received of this scenario's transactions, when a probe can say so, and
// the emulator's records show it (finished.go).
// Other scenarios' work does not hold it up. A listener still busy is not
// a failure here; expectations judge.
//
// A listener that keeps retrying a verification the harness breaks on
// purpose is never idle for that transaction; once it has asked again
// about every message of it, it has acted on the first answer, and the
// expectations can judge.
func (r *runner) settle(ctx context.Context) error {
	return r.settleUntil(ctx, func() bool {
		retrying := true
		for _, t := range r.txns {
			retrying = retrying && r.askedAgain(t)
		}
		return retrying
	})
}

// settleUntil is settle that also ends once enough holds (checked after
// each look at the listener).
func (r *runner) settleUntil(ctx context.Context, enough func() bool) error {
	if len(r.txns) == 0 || r.env.Probe == nil {
		return nil
	}
	deadline := time.Now().Add(r.env.Settle)
	for {
		idle, err := r.idle(ctx, min(time.Until(deadline), 200*time.Millisecond), r.txns...)
		if err != nil || r.settled(idle, false) || time.Now().After(deadline) {
			return err
		}
		if idle {
			r.pause(ctx, deadline)
		}
		if enough() {
			return nil
		}
	}
}

func (r *runner) idle(ctx context.Context, d time.Duration, txns ...string) (bool, error) {
	if r.env.Probe == nil {
		return true, nil
	}
	return r.env.Probe.Idle(ctx, d, txns...)
}

// track notes a transaction this scenario's messages are about.
func (r *runner) track(txn string) {
	if txn != "" && !slices.Contains(r.txns, txn) {
		r.txns = append(r.txns, txn)
	}
}

// waitFor waits (wall time, up to d) until cond holds, waking on every
// emulator event instead of polling.
func (r *runner) waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	bus := r.env.Emulator.Events()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	seq := bus.Last()
	for !cond() {
		evs, _, err := bus.Wait(ctx, seq, 0)
		if err != nil {
			return cond()
		}
		seq = evs[len(evs)-1].Seq
	}
	return true
}
