package delivery

import (
	"slices"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// Eviction: the finished messages past HistoryLimit leave memory and the
// journal.

// retireLocked lists ent as finished if it is, and evicts the oldest
// finished messages past HistoryLimit, returning them.
func (e *Engine) retireLocked(ent *entry) []*entry {
	if e.cfg.HistoryLimit <= 0 || ent.inDone || !ent.finished() {
		return nil
	}
	now := e.cfg.Clock.Now()
	ent.inDone, ent.doneAt = true, now
	e.done = append(e.done, ent.rec.ID)
	var out []*entry
	for len(e.done) > e.cfg.HistoryLimit {
		id := e.done[0]
		old, ok := e.msgs[id]
		if ok && now.Sub(old.doneAt) < e.cfg.EvictAfter {
			break // the oldest is too recent: so are the others
		}
		if ok && e.cfg.Hold != nil && len(e.done) <= 2*e.cfg.HistoryLimit && e.cfg.Hold(id) {
			break // kept in order: the others wait behind it
		}
		e.done = e.done[1:]
		if !ok {
			continue
		}
		old.inDone = false
		if !old.finished() { // resent by hand since: it comes back when done
			continue
		}
		delete(e.msgs, id)
		e.dropped++
		out = append(out, old)
	}
	if e.dropped > len(e.order)/2 {
		e.order = slices.DeleteFunc(e.order, func(id string) bool { _, ok := e.msgs[id]; return !ok })
		e.dropped = 0
	}
	return out
}

// evicted removes evicted messages from the journal and tells OnEvict.
func (e *Engine) evicted(ents []*entry) {
	if len(ents) == 0 {
		return
	}
	ids := make([]string, len(ents))
	var del []journal.Lazy
	for i, ent := range ents {
		ids[i] = ent.rec.ID
		if e.writer == nil {
			continue
		}
		del = append(del, journal.Lazy{Kind: KindMessage, Key: ent.rec.ID, Delete: true},
			journal.Lazy{Kind: KindContent, Key: ent.rec.ID, Delete: true})
		for _, a := range ent.rec.Attempts {
			del = append(del, journal.Lazy{Kind: KindAttempt, Key: attemptKey(ent.rec.ID, a.Number), Delete: true})
		}
	}
	if len(del) > 0 {
		e.writer.Post(del...)
	}
	if e.cfg.OnEvict != nil {
		e.cfg.OnEvict(ids)
	}
}
