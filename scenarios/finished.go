package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/events"
)

// Settling on evidence. A probe's idle claim alone cannot say that a
// listener which acks first and verifies after is done with a message:
// an idle query such as "SELECT 0", or answers that stay the same for a
// moment, are true as well before its postback. So expectations are
// judged only once the emulator's records show the listener finished
// with every message the scenario sent: each was posted back (the
// listener had its answer), or, never posted back, was delivered the
// postback window ago; and then only after the probe's quiet period has
// passed since the last postback or delivery it saw.

// Quieter is a probe whose idle claim is the listener's own SQL, or
// answers that stopped changing: it wants a quiet period after the last
// postback before the claim counts. The probe API's idle is the
// listener's word, and needs none.
type Quieter interface {
	// Quiet is the quiet period now: it may shorten as the probe learns
	// how soon the listener writes after a postback's answer.
	Quiet() time.Duration
	// Longest is the quiet period before anything is learned. A
	// judgement that fails waits it out: a write slower than the
	// learned pace must not make a false failure.
	Longest() time.Duration
	// Answered tells the probe when the verifier answered a postback
	// about txns (a message's own and its parent's), for it to time the
	// listener's writes.
	Answered(at time.Time, txns ...string)
}

func quietOf(p ProbeReader, failing bool) time.Duration {
	q, ok := p.(Quieter)
	switch {
	case !ok:
		return 0
	case failing:
		return q.Longest()
	}
	return q.Quiet()
}

// finished reports whether the listener has provably finished with every
// message this scenario sent, each copy included, as the emulator's
// records show, and the wall time of the last postback or delivery the
// runner saw (a message never posted back counts as seen the postback
// window after its delivery: until then a postback may still come).
func (r *runner) finished() (bool, time.Time) {
	emu := r.env.Emulator
	now := time.Now()
	if r.seen == nil {
		r.seen = map[string]seenMessage{}
	}
	done, last := true, time.Time{}
	for _, v := range r.views {
		// Identical copies are one body: the verifier files all their
		// postbacks under one of them, so they are counted together.
		attempts, postbacks, delivered := 0, 0, true
		at := time.Time{}
		confirmer := r.confirmer(v.Provider)
		for _, id := range append([]string{v.ID}, v.Copies...) {
			m, ok := emu.Engine().Get(id)
			if !ok {
				continue
			}
			attempts += len(m.Attempts)
			delivered = delivered && len(m.Attempts) > 0
			if confirmer != nil {
				postbacks += confirmer.Confirmations(id)
			}
			if t := r.eventAt(id, now); t.After(at) {
				at = t
			}
		}
		s := r.seen[v.ID]
		if s.attempts != attempts || s.postbacks != postbacks || s.at.IsZero() {
			s = seenMessage{attempts: attempts, postbacks: postbacks, at: at}
			r.seen[v.ID] = s
		}
		switch {
		case !delivered:
			done = false // on its way to the listener
		case confirmer != nil && postbacks == 0:
			// Delivered, never confirmed (posted back): a confirmation
			// may come until the window is up.
			if until := s.at.Add(r.env.PostbackPace.Wait(r.env.PostbackWait)); until.After(now) {
				done = false
			} else if until.After(last) {
				last = until
			}
		case s.at.After(last):
			last = s.at
		}
	}
	return done, last
}

// seenMessage is what the runner last saw of a message, and when.
type seenMessage struct {
	attempts, postbacks int
	at                  time.Time
}

// settled reports whether an idle claim can be trusted now: the listener
// has finished with every message, and the probe's quiet period has
// passed since the last postback or delivery; its longest, while the
// expectations fail.
func (r *runner) settled(idle, failing bool) bool {
	if !idle {
		return false
	}
	done, last := r.finished()
	return done && time.Since(last) >= quietOf(r.env.Probe, failing)
}

// pause waits a little (up to until) before the probe is asked again,
// waking early on an emulator event (a postback, a delivery).
func (r *runner) pause(ctx context.Context, until time.Time) {
	step := 50 * time.Millisecond
	if _, ok := r.env.Probe.(Quieter); ok {
		step = pacedStep // it times the listener's writes as it reads
	}
	d := min(time.Until(until), step)
	if d <= 0 {
		return
	}
	woken := false
	r.waitFor(ctx, d, func() bool {
		was := woken
		woken = true
		return was
	})
}

// heldByVerifier reports whether a postback event's answer was held by
// a slow fault of the verifier's.
func heldByVerifier(data json.RawMessage) bool {
	var p struct {
		Fault api.FaultKind `json:"fault"`
	}
	return json.Unmarshal(data, &p) == nil && p.Fault == api.FaultSlow
}

// pacedStep is how often a Quieter is asked again while the runner
// waits out its quiet period.
const pacedStep = 10 * time.Millisecond

// watch notes the wall time of every emulator event about a message
// (a delivery, a postback) while the scenario runs, so that a quiet
// period counts from the postback itself, not from when the runner next
// looked; and tells a Quieter probe of every postback answered, as soon
// as it is. stop ends it.
func (r *runner) watch(ctx context.Context) (stop func()) {
	bus := r.env.Emulator.Events()
	ctx, cancel := context.WithCancel(ctx)
	seq := bus.Last()
	done := make(chan struct{})
	r.timeline = map[string][]stamped{}
	quieter, _ := r.env.Probe.(Quieter)
	go func() {
		defer close(done)
		for {
			evs, _, err := bus.Wait(ctx, seq, 0)
			if err != nil || len(evs) == 0 {
				return
			}
			now := time.Now()
			r.eventsMu.Lock()
			for _, ev := range evs {
				if ev.MessageID == "" {
					continue
				}
				seen := r.timeline[ev.MessageID]
				st := stamped{at: now, typ: ev.Type}
				if ev.Type == events.Attempt {
					var a struct {
						Attempt struct {
							Acked bool `json:"acked"`
						} `json:"attempt"`
					}
					st.unacked = json.Unmarshal(ev.Data, &a) == nil && !a.Attempt.Acked
				}
				// Its first postback: how long since it was created, unless
				// a delivery the listener did not acknowledge came first
				// (then the message waited for the clock in the retry
				// queue, which measures the scenario, not the listener), or
				// the verifier held its answer (a slow fault: the event
				// comes when the answer went, long after the listener asked).
				if ev.Type == events.Postback && !slices.ContainsFunc(seen, func(s stamped) bool { return s.typ == events.Postback || s.unacked }) && !heldByVerifier(ev.Data) {
					if i := slices.IndexFunc(seen, func(s stamped) bool { return s.typ == events.MessageQueued }); i >= 0 {
						r.env.PostbackPace.saw(now.Sub(seen[i].at))
					}
				}
				r.timeline[ev.MessageID] = append(seen, st)
			}
			r.eventsMu.Unlock()
			if quieter != nil {
				for _, ev := range evs {
					if ev.Type != events.Postback {
						continue
					}
					quieter.Answered(now, r.family(ev.MessageID)...)
				}
			}
			seq = evs[len(evs)-1].Seq
		}
	}()
	return func() { cancel(); <-done }
}

// eventAt is the wall time of the last event about message id, or
// otherwise when the runner saw the change.
func (r *runner) eventAt(id string, otherwise time.Time) time.Time {
	r.eventsMu.Lock()
	defer r.eventsMu.Unlock()
	if evs := r.timeline[id]; len(evs) > 0 && evs[len(evs)-1].at.Before(otherwise) {
		return evs[len(evs)-1].at
	}
	return otherwise
}

// family is the transactions a message is about: its own, its parent's
// (a refund's payment, whose answers list the child's effects too), and
// a Mass Pay's items (masspay_txn_id_N), each a transaction the shop
// writes after the one answer: read from the message's body.
func (r *runner) family(id string) []string {
	body, ok := r.env.Emulator.Engine().Body(id)
	if !ok {
		return nil
	}
	form, _ := url.ParseQuery(string(body))
	txns := []string{form.Get("txn_id"), form.Get("parent_txn_id")}
	for i := 1; form.Has(fmt.Sprintf("masspay_txn_id_%d", i)); i++ {
		txns = append(txns, form.Get(fmt.Sprintf("masspay_txn_id_%d", i)))
	}
	return txns
}
