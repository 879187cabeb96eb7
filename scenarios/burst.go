package scenarios

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/generate"
)

// Races caught on purpose. A listener that checks for a duplicate and
// then credits in two steps loses only when copies meet inside that
// window; one burst of copies may miss it. A send with bursts repeats the
// race with new payments, each burst's copies released together
// (delivery.Burst), and its expectations judge every burst: if a racy
// listener doubles a burst with probability p, n bursts all miss with
// probability (1-p)^n (docs/conformance.md states the figures).

// stamped is an emulator event about a message, with the wall time the
// runner heard of it.
type stamped struct {
	at  time.Time
	typ string
	// unacked marks a delivery attempt the listener did not acknowledge.
	unacked bool
}

// sendBursts sends s.Bursts payments, each as s.Copies copies delivered
// together, waiting for the listener between bursts. The alias names the
// first; an expectation about its txn_id judges all of them.
func (r *runner) sendBursts(ctx context.Context, s *Send, req emulator.SendRequest, params map[string]any) error {
	base := req.Seed
	var views []emulator.MessageView
	for b := range s.Bursts {
		req.Seed = api.Seed(generate.DeriveSeed(uint64(base), fmt.Sprintf("burst %d", b+1)))
		if b > 0 && r.paysOrder(s) == "new" {
			// Each burst is a new payment: of a new order.
			if _, err := r.applyOrder(ctx, s, params); err != nil {
				return err
			}
			if err := decodeInto(params, &req.Params); err != nil {
				return fmt.Errorf("line %d: params: %w", s.Line(), err)
			}
		}
		v, err := r.env.Emulator.SendPayPal(req)
		if err != nil {
			return fmt.Errorf("line %d: burst %d of %d: %w", s.Line(), b+1, s.Bursts, err)
		}
		r.logf("  line %d: burst %d of %d: %d copies of txn_id=%s", s.Line(), b+1, s.Bursts, s.Copies, v.TxnID)
		views = append(views, v)
		r.track(v.TxnID)
		r.views = append(r.views, v)
		// The next burst waits until the listener is done with this one:
		// bursts that pile up keep its workers from other checks'
		// messages, and a shop's backlog would outlast the quiet periods
		// those checks are judged on. Done is every copy answered and
		// posted back, and the probe done with the payment: idle, or for
		// a probe that can tell it apart, drained (a SQL probe: the
		// payment recorded and its answers still since, without the
		// quiet period a judgement waits). The judgement after the last
		// burst settles on every burst in full.
		r.waitFor(ctx, r.env.Settle, func() bool { done, _ := r.finished(); return done })
		if err := r.drain(ctx, v.TxnID, b == s.Bursts-1); err != nil {
			return err
		}
	}
	if s.As != "" {
		r.sent[s.As] = views[0]
		if r.bursts == nil {
			r.bursts = map[string][]emulator.MessageView{}
		}
		r.bursts[s.As] = views
	}
	return nil
}

// drain waits for the probe to be done with txn: idle, or drained
// between bursts where the probe can tell it apart.
func (r *runner) drain(ctx context.Context, txn string, last bool) error {
	if d, ok := r.env.Probe.(Drainer); ok && !last {
		_, err := d.Drained(ctx, r.env.Settle, txn)
		return err
	}
	_, err := r.idle(ctx, r.env.Settle, txn)
	return err
}

var txnRef = regexp.MustCompile(`^\$\{([A-Za-z0-9_-]+)\.txn_id\}$`)

// burstsOf returns the bursts an expectation's txn names (${NAME.txn_id}
// of a send with bursts), or nil.
func (r *runner) burstsOf(txn string) []emulator.MessageView {
	m := txnRef.FindStringSubmatch(txn)
	if m == nil {
		return nil
	}
	return r.bursts[m[1]]
}

// raceEvidence tells how burst b of n went: when each copy reached the
// listener, was acknowledged, and was posted back, in wall time from the
// first event, in the order things happened: the interleaving behind a
// doubled credit.
func (r *runner) raceEvidence(b, n int, v emulator.MessageView) []string {
	ids := append([]string{v.ID}, v.Copies...)
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	r.eventsMu.Lock()
	for i, id := range ids {
		for _, ev := range r.timeline[id] {
			// The verifier files every postback of the same bytes under
			// one copy: a postback is the listener asking about one of them.
			switch ev.typ {
			case events.Attempt:
				lines = append(lines, line{ev.at, fmt.Sprintf("copy %d (%s) answered", i+1, id)})
			case events.Postback:
				lines = append(lines, line{ev.at, "a copy was posted back"})
			}
		}
	}
	r.eventsMu.Unlock()
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	out := []string{fmt.Sprintf("burst %d of %d: %d copies of transaction %s, delivered together", b, n, len(ids), v.TxnID)}
	for _, l := range lines {
		out = append(out, fmt.Sprintf("  +%.1f ms %s", float64(l.at.Sub(lines[0].at).Microseconds())/1000, l.text))
	}
	return out
}
