package delivery

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Burst makes the first deliveries of several messages (identical copies,
// as PayPal's retries racing a slow ack) reach the listener together. Each
// member's request is made, connected and written but for its last byte;
// it waits there until every member has reached that point, and then all
// last bytes leave at once. A listener that checks for a duplicate and
// then credits in two steps sees the copies inside its race window,
// instead of one after another as they happened to be sent.
type Burst struct {
	mu      sync.Mutex
	members int // still expected at the barrier
	arrived int
	open    chan struct{} // closed when all have arrived, or the wait is up
	timer   *time.Timer
}

// BurstWait bounds how long the members wait for each other: a member
// whose connection failed never arrives, and the others must not wait for
// it past this.
const BurstWait = 2 * time.Second

// NewBurst returns a barrier for n members. Every member must either
// arrive (its body is read to the last byte) or Leave.
func NewBurst(n int) *Burst {
	b := &Burst{members: n, open: make(chan struct{})}
	b.timer = time.AfterFunc(BurstWait, b.release)
	return b
}

func (b *Burst) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked()
}

func (b *Burst) releaseLocked() {
	select {
	case <-b.open:
	default:
		close(b.open)
		b.timer.Stop()
	}
}

// arrive waits at the barrier for the other members (or the wait, or ctx).
func (b *Burst) arrive(ctx context.Context) {
	b.mu.Lock()
	b.arrived++
	if b.arrived >= b.members {
		b.releaseLocked()
	}
	b.mu.Unlock()
	select {
	case <-b.open:
	case <-ctx.Done():
	}
}

// Leave takes a member that will never arrive (it was not submitted, or
// its request failed before its body was read) out of the count.
func (b *Burst) Leave() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.members--
	if b.members <= b.arrived {
		b.releaseLocked()
	}
}

// errAckWindow is the cause of a delivery cancelled at the end of its
// ack window.
var errAckWindow = errors.New("no answer within the ack window")

// burstBody is a request body that stops before its last byte until the
// burst opens; its request's ack window starts then.
type burstBody struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	burst  *Burst
	body   []byte
	window time.Duration
	off    int

	mu      sync.Mutex
	arrived bool
	timer   *time.Timer
}

func (r *burstBody) Read(p []byte) (int, error) {
	if r.off >= len(r.body) {
		return 0, io.EOF
	}
	if r.off == len(r.body)-1 && !r.hasArrived() {
		r.burst.arrive(r.ctx)
		r.mu.Lock()
		r.arrived = true
		r.timer = time.AfterFunc(r.window, func() { r.cancel(errAckWindow) })
		r.mu.Unlock()
	}
	end := len(r.body)
	if !r.hasArrived() {
		end--
	}
	n := copy(p, r.body[r.off:end])
	r.off += n
	return n, nil
}

func (r *burstBody) hasArrived() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arrived
}

// stop ends the request: its window's timer, and its place in the burst
// if it never got there (its connection failed first).
func (r *burstBody) stop() {
	r.mu.Lock()
	arrived := r.arrived
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.cancel(nil)
	if !arrived {
		r.burst.Leave()
	}
}
