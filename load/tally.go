package load

import (
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// tallies are the per-message outcomes a report counts.
type tallies struct {
	acked, ackedFirst, waiting, failed          int
	verified, invalid, lookedUp, none, repeated int
}

// add counts one message's record.
func (t *tallies) add(rec *record) {
	switch {
	case rec.acked:
		t.acked++
		if rec.ackedOn == 1 {
			t.ackedFirst++
		}
	case rec.waiting:
		t.waiting++
	case rec.status == delivery.Failed:
		t.failed++
	}
	switch {
	case rec.verdict == paypal.Verified:
		t.verified++
	case rec.verdict == paypal.Invalid:
		t.invalid++
	case rec.lookups > 0:
		t.lookedUp++
	case rec.acked:
		t.none++
	}
	if rec.postbacks > 1 || rec.lookups > 1 {
		t.repeated++
	}
}

// evicted retires the records of messages that left the emulator's
// History, into the tallies: a postback for one of them now matches no
// message, as the emulator says too.
func (a *accounts) evicted(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		rec, ok := a.msgs[id]
		if !ok {
			continue
		}
		a.retired.add(rec)
		if rec.acked && rec.postbacks+rec.lookups == 0 && a.provider != PayPalREST {
			// Its postback can no longer be matched: stop waiting for it.
			a.unverified--
			a.notifyLocked()
		}
		delete(a.msgs, id)
		if rec.txn != "" && a.byTxn[rec.txn] == rec {
			delete(a.byTxn, rec.txn)
		}
	}
}

// VerificationGrace is how long (wall time) a message acknowledged but
// not yet posted back (or looked up) stays in the load's History past its
// limit (up to twice the limit): a listener that verifies from a queue may
// lag by seconds, and its postback must find the message. A later one
// matches no message, and the report counts it so.
const VerificationGrace = 2 * time.Minute

// awaitingVerification tells the emulator to keep message id: acked,
// not yet verified, and within VerificationGrace of its creation. The
// engine asks under its lock; the accounts never call the engine under
// theirs.
func (a *accounts) awaitingVerification(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.msgs[id]
	return ok && rec.acked && rec.postbacks+rec.lookups == 0 && time.Since(rec.created) < VerificationGrace
}

// maxSamples bounds the latencies a sampler keeps: percentiles of a long
// load come from a uniform sample of this many (Algorithm R), its count
// and maximum stay exact.
const maxSamples = 1 << 16

// sampler keeps a bounded uniform sample of durations.
type sampler struct {
	n    int
	max  time.Duration
	keep []time.Duration
	rng  *rand.Rand
}

func (s *sampler) add(d time.Duration) {
	s.n++
	s.max = max(s.max, d)
	if len(s.keep) < maxSamples {
		s.keep = append(s.keep, d)
		return
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(1, 2))
	}
	if i := s.rng.IntN(s.n); i < maxSamples {
		s.keep[i] = d
	}
}

// percentiles summarizes the sample, with the exact count and maximum.
func (s *sampler) percentiles() Percentiles {
	p := PercentilesOf(slices.Clone(s.keep))
	if s.n > 0 {
		p.Count, p.Max = s.n, s.max
	}
	return p
}

// residentBytes is the process's resident set (VmRSS in /proc/self/status),
// or 0 where there is none to read.
func residentBytes() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
