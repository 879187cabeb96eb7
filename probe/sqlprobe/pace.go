package sqlprobe

import (
	"time"
)

// Learning the shop's pace. A map's quiet period (settle) must cover the
// time a shop takes from the verifier's answer to its write, or a
// negative check ("never credits") passes before a late credit lands.
// settle is a bound for any shop; the shop under test shows its own pace
// on every message it acts on: the adapter hears when each postback was
// answered (Answered), sees when that transaction's answers changed while
// it was reading them closely, and, once it has seen enough writes, waits
// a multiple of the slowest one instead of settle.
const (
	// paceStep is how often answers are read while waiting: it bounds how
	// late a write is seen, and so how much a measured latency overstates.
	paceStep = 10 * time.Millisecond
	// paceGap is the longest gap between two reads of a transaction that
	// still times a write: a change seen after a longer gap may be older.
	paceGap = 3 * paceStep
	// paceSamples writes must be timed before the quiet period is learned.
	paceSamples = 10
	// paceFactor is the margin over the slowest write timed: the quiet
	// period is this many times it.
	paceFactor = 4
	// paceFloor is the shortest quiet period ever used.
	paceFloor = 40 * time.Millisecond
)

// pace is what the adapter has learned of the shop's answer-to-write
// latency. The adapter's mutex guards it.
type pace struct {
	answered map[string]time.Time // by txn: when its last postback was answered
	reads    map[string]txnRead   // by txn: the answers last read, and when
	slowest  time.Duration        // the slowest write timed
	timed    int                  // how many writes were timed
}

// txnRead is a transaction's answers as last read, when, and since when
// they have been the same. It is kept across calls, so that callers
// asking in short waits still see the answers settle.
type txnRead struct {
	answers   string
	at, since time.Time
}

// Answered notes that the verifier answered a postback about txns (a
// message's and its parent's) at at: whatever the shop writes about them
// next follows that answer.
func (a *Adapter) Answered(at time.Time, txns ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pace.answered == nil {
		a.pace.answered = map[string]time.Time{}
	}
	for _, txn := range txns {
		if txn != "" && at.After(a.pace.answered[txn]) {
			a.pace.answered[txn] = at
		}
	}
}

// read notes txn's answers (with its parent, if any) as read at at, and
// returns since when they have been the same. A change seen after a
// postback about txn or its parent was answered (a payment arriving after
// its refund releases the refund), at most paceGap after the read before
// it, times the write that followed that answer: it landed at most at
// minus the answer later.
func (a *Adapter) read(txn, parent, answers string, at time.Time) (since time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := &a.pace
	if p.reads == nil {
		p.reads = map[string]txnRead{}
	}
	prev, seen := p.reads[txn]
	if seen && prev.answers == answers {
		prev.at = at
		p.reads[txn] = prev
		return prev.since
	}
	p.reads[txn] = txnRead{answers: answers, at: at, since: at}
	answered := p.answered[txn]
	if t := p.answered[parent]; parent != "" && t.After(answered) {
		answered = t
	}
	if seen && !answered.IsZero() && at.After(answered) && at.Sub(prev.at) <= paceGap {
		p.timed++
		p.slowest = max(p.slowest, at.Sub(answered))
	}
	return at
}

// Quiet is how long after the last postback (and, without an idle query,
// with the answers unchanged) before an idle claim counts: the map's
// settle until the shop's pace is learned, then paceFactor times its
// slowest write timed, at least paceFloor and never more than settle.
// The idle query is the shop's own SQL, which may claim idle before a
// shop that acks first has even posted back (SELECT 0).
func (a *Adapter) Quiet() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pace.timed < paceSamples {
		return a.m.Settle
	}
	return min(a.m.Settle, max(paceFloor, paceFactor*a.pace.slowest))
}

// Longest is the quiet period before the shop's pace is learned: the
// map's settle.
func (a *Adapter) Longest() time.Duration { return a.m.Settle }
