package load

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// Phase names what a run is doing.
type Phase string

// The phases, in the order a run goes through them.
const (
	PhaseBacklogQueue Phase = "backlog: queueing during an outage"
	PhaseBacklogFlush Phase = "backlog: released at once"
	PhaseSend         Phase = "sending"
	PhaseRetries      Phase = "retrying on the schedule"
	PhaseSettle       Phase = "waiting for postbacks"
	PhaseDone         Phase = "done"
)

// record is what happened to one message.
type record struct {
	created   time.Time // wall
	txn       string
	slot      bool // holds a sending slot until its first attempt ends
	backlog   bool
	reached   int // attempts that reached (or tried to reach) the listener
	acked     bool
	ackedOn   int // which of those acked it
	status    delivery.Status
	waiting   bool // a retry is scheduled
	postbacks int
	verdict   paypal.Result // of the first postback
	lookups   int
}

// accounts hears the emulator's observer calls and keeps the tallies.
type accounts struct {
	provider string

	mu         sync.Mutex
	phase      Phase
	wallStart  time.Time // the Wall clock's
	realStart  time.Time
	clockStart time.Time // the manual delivery clock's
	msgs       map[string]*record
	byTxn      map[string]*record
	// retired tallies the records of messages that left the emulator's
	// History: a long load's memory stays flat, its counts whole.
	retired    tallies
	rssStart   int64
	sem        chan struct{}
	kinds      int
	sent       int
	backlogN   int
	steadyWall time.Duration
	steadyN    int
	held       int
	answers    map[string]int
	samples    map[string]string // one error text per class
	outage     int
	latency    sampler
	acked      int
	notAcked   int // answers and errors that were not acks
	retries    int // scheduled retries that reached the listener
	verifiedN  int // messages whose first postback was VERIFIED, or looked up
	invalidN   int // messages whose first postback was INVALID
	unverified int // acked messages not yet posted back or looked up
	postbacks  int
	unmatched  int
	rules      map[string]int
	verify     sampler
	lookups    int
	unknown    int
	changed    chan struct{} // closed and renewed on every ack, postback or lookup
	flush      *Flush
	flushAt    time.Time // clock time the backlog was released at
	lastTick   struct {
		at   time.Time
		sent int
	}
}

func newAccounts(cfg Config) *accounts {
	return &accounts{
		provider: cfg.Provider, phase: PhaseSend,
		msgs: map[string]*record{}, byTxn: map[string]*record{},
		answers: map[string]int{}, samples: map[string]string{}, rules: map[string]int{},
		changed: make(chan struct{}),
	}
}

func (a *accounts) begin(wall, clockNow time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wallStart, a.realStart, a.clockStart = wall, time.Now(), clockNow
	a.rssStart = residentBytes()
	a.lastTick.at = wall
}

func (a *accounts) setPhase(p Phase) {
	a.mu.Lock()
	a.phase = p
	a.mu.Unlock()
}

// openSlots returns the semaphore steady sending holds a slot of per
// message whose first attempt has not finished.
func (a *accounts) openSlots(n int) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sem = make(chan struct{}, n)
	return a.sem
}

func (a *accounts) heldBack() {
	a.mu.Lock()
	a.held++
	a.mu.Unlock()
}

func (a *accounts) nextKind() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kinds++
	return a.kinds - 1
}

func (a *accounts) steadyEnded(wall time.Duration) {
	a.mu.Lock()
	a.steadyWall = wall
	a.mu.Unlock()
}

func (a *accounts) flushStarted(at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushAt = at
	a.flush = &Flush{Messages: a.backlogN, ReleasedAfter: at.Sub(a.clockStart), Answers: map[string]int{}}
}

func (a *accounts) flushEnded(wall time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flush.Wall = wall
}

// notifyLocked wakes whoever waits for the run to settle.
func (a *accounts) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// delivery is the emulator's observer of delivery changes.
func (a *accounts) delivery(ev delivery.Event) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.msgs[ev.Message.ID]
	if ev.Type == delivery.EventQueued {
		if rec != nil {
			return
		}
		rec = &record{created: now, txn: ev.Message.TxnID, status: ev.Message.Status}
		switch a.phase {
		case PhaseBacklogQueue:
			rec.backlog = true
			a.backlogN++
		case PhaseSend:
			rec.slot = a.sem != nil
			a.steadyN++
		}
		a.sent++
		a.msgs[ev.Message.ID] = rec
		if rec.txn != "" {
			a.byTxn[rec.txn] = rec
		}
		return
	}
	if rec == nil || ev.Type != delivery.EventAttempt || ev.Attempt == nil {
		return
	}
	at := ev.Attempt
	rec.status, rec.waiting = ev.Message.Status, ev.Message.NextAttempt != nil
	if rec.slot && at.Number == 1 {
		rec.slot = false
		<-a.sem
	}
	class := classify(*at)
	if class == classOutage {
		a.outage++
		return
	}
	rec.reached++
	a.answers[class]++
	if at.Trigger == delivery.Retry {
		a.retries++
	}
	if at.Error != "" {
		if _, ok := a.samples[class]; !ok {
			a.samples[class] = at.Error
		}
	}
	if at.StatusCode != 0 {
		a.latency.add(at.Duration)
	}
	if !at.Acked {
		a.notAcked++
	}
	inFlush := a.flush != nil && rec.backlog && at.Start.Equal(a.flushAt)
	if inFlush {
		a.flush.Answers[class]++
	}
	if at.Acked && !rec.acked {
		rec.acked, rec.ackedOn = true, rec.reached
		a.acked++
		// A REST webhook's listener verifies it itself: nothing to wait
		// for once it is acknowledged.
		if rec.postbacks == 0 && rec.lookups == 0 && a.provider != PayPalREST {
			a.unverified++
		}
		if inFlush {
			a.flush.Acked++
		}
		a.notifyLocked()
	}
}

// postback is the emulator's observer of PayPal postbacks.
func (a *accounts) postback(p paypal.PostbackRecord) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.postbacks++
	rec := a.msgs[p.MessageID]
	if p.Verdict.Result == paypal.Invalid {
		a.rules[string(p.Verdict.Rule)]++
	}
	if rec == nil {
		a.unmatched++
		a.notifyLocked()
		return
	}
	rec.postbacks++
	if rec.postbacks == 1 {
		a.firstVerificationLocked(rec)
		rec.verdict = p.Verdict.Result
		if rec.verdict == paypal.Verified {
			a.verifiedN++
			a.verify.add(now.Sub(rec.created))
		} else {
			a.invalidN++
		}
	}
	a.notifyLocked()
}

// lookup is the emulator's observer of PayDo status lookups.
func (a *accounts) lookup(l paydo.Lookup) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups++
	rec := a.byTxn[l.Key]
	if rec == nil || !l.Found {
		a.unknown++
		a.notifyLocked()
		return
	}
	rec.lookups++
	if rec.lookups == 1 {
		a.firstVerificationLocked(rec)
		a.verifiedN++
		a.verify.add(now.Sub(rec.created))
	}
	a.notifyLocked()
}

// firstVerificationLocked takes rec off the unverified count once its
// first postback or lookup (already counted on rec) has come.
func (a *accounts) firstVerificationLocked(rec *record) {
	if rec.acked && rec.postbacks+rec.lookups == 1 {
		a.unverified--
	}
}

// settled reports whether every acked message was verified (posted back
// or looked up), and otherwise a channel closed at the next change.
func (a *accounts) settled() (bool, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unverified == 0 {
		return true, nil
	}
	return false, a.changed
}

// Attempt classes besides HTTP status codes.
const (
	classOutage  = "outage"
	classTimeout = "timeout"
	classRefused = "refused"
	classReset   = "reset"
	classError   = "error"
)

// classify names an attempt's outcome: its status code, or what went wrong.
func classify(a delivery.Attempt) string {
	switch {
	case a.StatusCode != 0:
		return strconv.Itoa(a.StatusCode)
	case a.Error == delivery.OutageError:
		return classOutage
	case strings.HasPrefix(a.Error, "no answer within"):
		return classTimeout
	case strings.Contains(a.Error, "connection refused"):
		return classRefused
	case strings.Contains(a.Error, "connection reset"), strings.Contains(a.Error, "EOF"):
		return classReset
	}
	return classError
}

// Progress is how a run is going.
type Progress struct {
	Phase    Phase
	Elapsed  time.Duration // wall
	Sent     int
	Rate     float64 // messages created per second since the last report
	InFlight int     // messages whose first delivery has not finished
	Acked    int
	Failed   int // answers that were not acks (and transport errors)
	Verified int // messages posted back VERIFIED (or looked up, PayDo)
	Invalid  int
	RSSBytes int64 // the process's resident memory (0 where unknown)
}

// String is the one-line form, for a terminal's progress line.
func (p Progress) String() string {
	s := fmt.Sprintf("%-26s %7.1fs  sent %s (%s/s)  in flight %s  acked %s  not acked answers %s  verified %s  invalid %s",
		p.Phase, p.Elapsed.Seconds(), group(p.Sent), group(int(p.Rate+0.5)), group(p.InFlight),
		group(p.Acked), group(p.Failed), group(p.Verified), group(p.Invalid))
	if p.RSSBytes > 0 {
		s += fmt.Sprintf("  rss %.0f MB", float64(p.RSSBytes)/1e6)
	}
	return s
}

func (a *accounts) progress(wall time.Time) Progress {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := Progress{
		Phase: a.phase, Elapsed: wall.Sub(a.wallStart), Sent: a.sent, Acked: a.acked,
		Failed: a.notAcked, Verified: a.verifiedN, Invalid: a.invalidN, RSSBytes: residentBytes(),
	}
	if d := wall.Sub(a.lastTick.at); d > 0 {
		p.Rate = float64(a.sent-a.lastTick.sent) / d.Seconds()
	}
	a.lastTick.at, a.lastTick.sent = wall, a.sent
	if a.sem != nil {
		p.InFlight = len(a.sem)
	}
	return p
}
