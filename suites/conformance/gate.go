package conformance

import (
	"context"
	"sync"
	"time"
)

// clockGate lets the checks that move the shared clock run together: each
// advance waits until every running member has reached an advance of its
// own (or finished), then the clock moves once, as far as the furthest
// asks. The checks then see the same clock times whether they run
// together or alone (--focus), and their wall-time waits overlap.
type clockGate struct {
	advance func(time.Duration) error

	mu      sync.Mutex
	members int
	waiting int
	by      time.Duration
	round   *gateRound
}

type gateRound struct {
	done chan struct{}
	err  error
}

func newClockGate(advance func(time.Duration) error) *clockGate {
	return &clockGate{advance: advance, round: &gateRound{done: make(chan struct{})}}
}

// join adds a member; each member must leave when its check ends.
func (g *clockGate) join() {
	g.mu.Lock()
	g.members++
	g.mu.Unlock()
}

func (g *clockGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members--
	g.releaseLocked()
}

// Advance is the members' advance step.
func (g *clockGate) Advance(ctx context.Context, by time.Duration) error {
	g.mu.Lock()
	g.waiting++
	g.by = max(g.by, by)
	r := g.round
	g.releaseLocked()
	g.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		g.mu.Lock()
		if r == g.round {
			g.waiting--
		}
		g.mu.Unlock()
		return ctx.Err()
	}
}

// releaseLocked moves the clock once every member waits.
func (g *clockGate) releaseLocked() {
	if g.waiting == 0 || g.waiting < g.members {
		return
	}
	r := g.round
	r.err = g.advance(g.by)
	g.waiting, g.by, g.round = 0, 0, &gateRound{done: make(chan struct{})}
	close(r.done)
}
