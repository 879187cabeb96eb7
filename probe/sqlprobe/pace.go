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
// a multiple of what it timed instead of settle.
//
// Two paces are timed, as a transaction is judged in one of two states:
//   - latency, from an answer to the first write after it: a transaction
//     with no write seen since its last answer waits a multiple of the
//     slowest latency from that answer (the write may still come);
//   - spread, from that first write to the last one after the same
//     answer: a transaction written since its last answer (a change
//     after a read that itself followed the answer, so that the write
//     cannot be older) has had the write that answer caused, and waits a
//     multiple of the widest spread for any that follow it (a shop that
//     saves its status, then credits in a second statement).
const (
	// paceStep is how often answers are read while waiting: it bounds how
	// late a write is seen, and so how much a measured latency overstates.
	paceStep = 5 * time.Millisecond
	// paceGap is the longest gap between two reads of a transaction that
	// still times a write: a change seen after a longer gap may be older.
	// Wider than paceStep, so that a busy machine's late reads still time
	// writes (each overstated by at most the gap: a longer quiet period).
	paceGap = 30 * time.Millisecond
	// paceSamples latencies must be timed before either pace is used.
	paceSamples = 10
	// paceFactor is the margin over the slowest write timed: the quiet
	// period is this many times it.
	paceFactor = 4
	// paceFloor is the shortest quiet period after an answer with no
	// write seen since.
	paceFloor = 40 * time.Millisecond
	// spreadFloor is the shortest quiet period after a write that
	// followed the last answer: four reads more.
	spreadFloor = 4 * paceStep
)

// pace is what the adapter has learned of the shop's answer-to-write
// latency and write spread. The adapter's mutex guards it.
type pace struct {
	answered map[string]time.Time // by txn: when its last postback was answered
	reads    map[string]txnRead   // by txn: the answers last read, and when
	provider map[string]string    // by txn: the provider the shop has it under
	slowest  time.Duration        // the slowest latency timed
	spread   time.Duration        // the widest spread timed
	timed    int                  // how many latencies were timed
}

// txnRead is a transaction's answers as last read, when, since when they
// have been the same, and the first change seen after the answer in
// force then. It is kept across calls, so that callers asking in short
// waits still see the answers settle.
type txnRead struct {
	answers, parent string
	known           bool // the shop has a row for it
	at, since       time.Time
	first           time.Time
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

// answeredAt is when the last postback about txn or its parent was
// answered (a payment arriving after its refund releases the refund).
// The adapter's mutex is held.
func (p *pace) answeredAt(txn, parent string) time.Time {
	answered := p.answered[txn]
	if t := p.answered[parent]; parent != "" && t.After(answered) {
		answered = t
	}
	return answered
}

// read notes txn's answers (with its parent, if any, and whether the
// shop knows it) as read at at. A
// change seen after an answer about txn, at most paceGap after the read
// before it, times the write: the first since that answer is a latency
// (it landed at most at minus the answer later), a later one a spread
// from the first.
func (a *Adapter) read(txn, parent, answers string, known bool, at time.Time) {
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
		return
	}
	answered := p.answeredAt(txn, parent)
	now := txnRead{answers: answers, parent: parent, known: known, at: at, since: at}
	close := seen && at.Sub(prev.at) <= paceGap
	switch {
	case !seen || answered.IsZero() || !prev.at.After(answered):
		// A first look is no change; nor is one before any answer, nor
		// one whose read before it came before the answer: that write
		// may be older (a row saved at the ack, before verifying).
		if seen && close && !answered.IsZero() && at.After(answered) {
			// It still bounds the latency, if it followed the answer.
			p.timed++
			p.slowest = max(p.slowest, at.Sub(answered))
		}
	case prev.first.After(answered):
		// A second write after the same answer.
		now.first = prev.first
		if close {
			p.spread = max(p.spread, at.Sub(prev.first))
		}
	default:
		now.first = at
		if close {
			p.timed++
			p.slowest = max(p.slowest, at.Sub(answered))
		}
	}
	p.reads[txn] = now
}

// quietFor reports whether txn's answers have been quiet long enough at
// now to count as idle: settle from its last answer or change until the
// pace is learned; then, written since its last answer, the spread
// period from its last change; else the latency period from the later
// of its last answer and last change. The adapter's mutex is held.
func (a *Adapter) quietFor(txn string, now time.Time) bool {
	p := &a.pace
	r := p.reads[txn]
	answered := p.answeredAt(txn, r.parent)
	last := r.since
	if answered.After(last) {
		last = answered
	}
	switch {
	case p.timed < paceSamples:
		return now.Sub(last) >= a.m.Settle
	case !answered.IsZero() && r.first.After(answered):
		return now.Sub(r.since) >= a.spreadQuiet()
	}
	return now.Sub(last) >= a.latencyQuiet()
}

// drained reports whether the shop has recorded txn and both its
// answers and the verifier's last answer about it are a spread period
// old at now (Drained). The adapter's mutex is held.
func (a *Adapter) drained(txn string, now time.Time) bool {
	p := &a.pace
	r := p.reads[txn]
	still := a.spreadQuiet()
	return r.known && now.Sub(r.since) >= still && now.Sub(p.answeredAt(txn, r.parent)) >= still
}

func (a *Adapter) latencyQuiet() time.Duration {
	return min(a.m.Settle, max(paceFloor, paceFactor*a.pace.slowest))
}

func (a *Adapter) spreadQuiet() time.Duration {
	return min(a.m.Settle, max(spreadFloor, paceFactor*a.pace.spread))
}

// Quiet is how long after the last postback before the runner trusts an
// idle claim: settle until the shop's pace is learned, then the spread
// period (each transaction's own answers also wait the latency period
// when no write followed its answer: Idle). The idle query is the shop's
// own SQL, which may claim idle before a shop that acks first has even
// posted back (SELECT 0).
func (a *Adapter) Quiet() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pace.timed < paceSamples {
		return a.m.Settle
	}
	return a.spreadQuiet()
}

// failFactor is how many settle periods a failing judgement waits: a
// shop on a busy machine wrote a few hundred milliseconds late (false
// failures beside a CPU hog at one settle of 200 ms), and a failure is
// the rare case, so its wait costs little.
const failFactor = 5

// Longest is what a failing judgement waits: failFactor times the map's
// settle, or paceFactor times the slowest write seen when that is longer
// (a machine that got busy). The quiet periods a passing judgement waits
// stay within settle.
func (a *Adapter) Longest() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(failFactor*a.m.Settle, paceFactor*a.pace.slowest)
}
