// Package events is the emulator's journal of what happened, in order, so
// that tests and consoles wait on events (server-sent or long-polled)
// instead of polling or sleeping.
package events

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/watchdog"
)

// Event types.
const (
	MessageQueued = "message.queued"   // a notification was created
	Attempt       = "delivery.attempt" // a delivery attempt finished
	Resend        = "delivery.resend"  // a manual resend was queued
	Postback      = "postback"         // the verifier answered a postback
	ClockAdvanced = "clock.advanced"   // a manual clock moved
	Profile       = "profile.changed"  // IPN settings changed
	PayDoLookup   = "paydo.lookup"     // a listener looked a PayDo transaction up
	// Note is a provider's own line (its data a NoteData): what a
	// listener asked of it, as PayPal REST's verify API and certificate
	// fetches; a tail prints it as it comes.
	Note = "provider.note"
)

// NoteData is a Note's data.
type NoteData struct {
	Text string `json:"text"`
	// Bad marks what went wrong for the listener (a FAILURE, a fetch
	// answered 503).
	Bad bool `json:"bad,omitempty"`
}

// Types lists every event type.
var Types = []string{MessageQueued, Attempt, Resend, Postback, ClockAdvanced, Profile, PayDoLookup, Note}

// Event is one entry of the journal, as the API carries it.
type Event = api.Event

// Waiting is how many callers are blocked in Wait (event streams and long
// polls open).
func (b *Bus) Waiting() int { return int(b.waiting.Load()) }

// Bus keeps the latest events in a ring and wakes waiters.
type Bus struct {
	mu     sync.Mutex
	ring   []slot // grows up to max, then wraps
	max    int
	start  int    // index of the oldest event in ring
	next   uint64 // seq of the next event
	notify chan struct{}

	waiting atomic.Int64 // callers blocked in Wait
}

// slot is a kept event whose data is marshalled when first read: under
// load most events are never read, and JSON was a twentieth of the CPU.
type slot struct {
	ev   Event
	data any // until marshalled into ev.Data
}

// DefaultCapacity is how many events a Bus keeps by default.
const DefaultCapacity = 16384

// NewBus returns a bus keeping the last capacity events.
func NewBus(capacity int) *Bus {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	// The ring grows as events come: most emulators (a conformance run,
	// a test) publish far fewer than capacity, and clearing the whole
	// ring up front was a twentieth of a conformance sweep's CPU.
	return &Bus{max: capacity, next: 1, notify: make(chan struct{})}
}

// Publish stamps an event with the next sequence number, keeps it and
// wakes waiters, returning its sequence number. data is marshalled to
// JSON when the event is first read, so it must not change once published
// (publishers hand over values and snapshots).
func (b *Bus) Publish(typ string, at time.Time, provider, messageID string, data any) uint64 {
	b.mu.Lock()
	sl := slot{ev: Event{Seq: b.next, Type: typ, Time: at, Provider: provider, MessageID: messageID}, data: data}
	b.next++
	if len(b.ring) < b.max {
		b.ring = append(b.ring, sl)
	} else {
		b.ring[b.start] = sl
		b.start = (b.start + 1) % len(b.ring)
	}
	close(b.notify)
	b.notify = make(chan struct{})
	b.mu.Unlock()
	return sl.ev.Seq
}

// eventLocked returns the event in ring slot i, marshalling its data the
// first time.
func (b *Bus) eventLocked(i int) Event {
	sl := &b.ring[i]
	if sl.data != nil {
		raw, err := json.Marshal(sl.data)
		if err != nil {
			raw, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
		}
		sl.ev.Data, sl.data = raw, nil
	}
	return sl.ev
}

// Last returns the sequence number of the newest event (0 if none).
func (b *Bus) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.next - 1
}

// Since returns up to limit events after seq, oldest first. missed is true
// when events after seq have already left the ring.
func (b *Bus) Since(seq uint64, limit int) (out []Event, missed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sinceLocked(seq, limit)
}

func (b *Bus) sinceLocked(seq uint64, limit int) ([]Event, bool) {
	n := len(b.ring)
	newest := b.next - 1
	if n == 0 || seq == newest {
		return nil, false
	}
	oldest := b.ring[b.start].ev.Seq
	from, missed := 0, false
	switch {
	case seq > newest:
		// A cursor this bus never gave (another run's, or made up):
		// start over from the oldest kept, and say so.
		missed = true
	case seq < oldest:
		missed = seq+1 < oldest
	default:
		from = int(seq - oldest + 1) // seq < newest: within the ring
	}
	var out []Event
	for i := from; i < n && (limit <= 0 || len(out) < limit); i++ {
		out = append(out, b.eventLocked((b.start+i)%n))
	}
	return out, missed
}

// snapshot reads the events after seq and the channel that closes on the
// next publish.
func (b *Bus) snapshot(seq uint64, limit int) ([]Event, bool, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs, missed := b.sinceLocked(seq, limit)
	return evs, missed, b.notify
}

// Responsive reports whether the bus's lock can be taken within d (see
// package watchdog).
func (b *Bus) Responsive(d time.Duration) bool { return watchdog.Free(&b.mu, d) }

// Wait returns the events after seq once there are any, or when ctx ends
// (with no events and ctx's error).
func (b *Bus) Wait(ctx context.Context, seq uint64, limit int) ([]Event, bool, error) {
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	for {
		evs, missed, ch := b.snapshot(seq, limit)
		if len(evs) > 0 {
			return evs, missed, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}
