package scenarios

import (
	"sync"
	"time"
)

// PostbackPace is how long the listener has taken, at the slowest, from a
// message's creation to its first postback (wall time), learned over
// every scenario that shares it (a conformance session's checks), from
// the messages the listener took at their first delivery: one retried
// first waited for the scenario's clock, which is no measure of it. A wait
// for a postback lasts PostbackWait, or four times that slowest when it is
// longer: a listener on a machine that got busy posts back late, and
// "never posted back" must not be a verdict on the machine. A listener
// that never posts back teaches nothing, and is judged after PostbackWait.
type PostbackPace struct {
	mu      sync.Mutex
	slowest time.Duration
}

// postbackFactor is the margin over the slowest postback seen.
const postbackFactor = 4

// saw notes a first postback d after its message was created.
func (p *PostbackPace) saw(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slowest = max(p.slowest, d)
}

// Wait is how long to wait for a postback, at least base.
func (p *PostbackPace) Wait(base time.Duration) time.Duration {
	if p == nil {
		return base
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(base, postbackFactor*p.slowest)
}
