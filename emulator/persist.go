package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
)

// Journal kinds the emulator itself writes.
const (
	kindMeta = "emulator.meta" // keys: "seeds" (base seed, sequence), "clock"
	kindSeed = "emulator.seed" // message id -> its fixture seed, in journals of older versions (now on paypal.message)
)

type storedSeeds struct {
	Seed uint64 `json:"seed"`
	Seq  uint64 `json:"seq"`
}

// storedClock lets a restarted emulator resume its clock: a manual clock
// at its last reading, a scaled one as if it had kept running.
type storedClock struct {
	Mode      string    `json:"mode"`
	Now       time.Time `json:"now"`
	Factor    float64   `json:"factor,omitempty"`
	WallStart time.Time `json:"wall_start,omitzero"`
	Start     time.Time `json:"start,omitzero"`
}

// Restored counts what New loaded from the journal.
type Restored struct {
	Messages  int `json:"messages"`  // delivery records
	Queued    int `json:"queued"`    // attempts waiting for their time
	Scheduled int `json:"scheduled"` // later sends re-armed (lifecycle steps, PayDo follow-ups)
	// Providers is what each provider knew again, by provider name, then
	// by what it counts (messages, postbacks, transactions...).
	Providers map[string]RestoredCounts `json:"providers,omitempty"`
}

func (e *Emulator) writeMeta(key string, v any) error {
	if e.cfg.Journal == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.cfg.Journal.Write(journal.Entry{Kind: kindMeta, Key: key, Value: b})
}

// saveSeedLocked posts the message counter, under e.mu so the counters
// reach the journal in the order they were drawn. Nobody waits: the writer
// keeps order, so the message drawn from it, whose delivery commit is
// waited for, is never on disk before it (a restart never draws the same
// seed twice).
func (e *Emulator) saveSeedLocked() {
	if e.writer == nil {
		return
	}
	seeds := storedSeeds{Seed: e.cfg.Seed, Seq: e.seq}
	e.writer.Post(journal.Lazy{Kind: kindMeta, Key: "seeds", Value: func() ([]byte, error) { return json.Marshal(seeds) }})
}

// saveClock writes the clock's state; at is the reading to resume from
// (an Advance writes its target first, so a crash mid-way resumes there).
func (e *Emulator) saveClock(at time.Time) error {
	st := storedClock{Mode: e.clock.Mode(), Now: at}
	if sc, ok := e.clock.(*clock.Scaled); ok {
		st.Factor = sc.Factor()
		st.WallStart, st.Start = sc.Origin()
	}
	return e.writeMeta("clock", st)
}

func (e *Emulator) report(err error) {
	if err != nil {
		e.log.Error("journal write failed", "err", err)
	}
}

// restoreMeta reads the seeds and the clock before anything is scheduled.
// It may replace cfg.Clock (a scaled clock continues from its origin).
func restoreMeta(cfg *Config) (seq uint64, err error) {
	var saved *storedClock
	err = cfg.Journal.Scan(kindMeta, func(key string, value []byte) error {
		switch key {
		case "seeds":
			var st storedSeeds
			if err := json.Unmarshal(value, &st); err != nil {
				return err
			}
			seq = st.Seq
			if cfg.Seed == 0 {
				cfg.Seed = st.Seed
			}
		case "clock":
			saved = &storedClock{}
			return json.Unmarshal(value, saved)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if saved != nil {
		switch c := cfg.Clock.(type) {
		case *clock.Manual:
			// A manual clock resumes at the journal's reading, whatever
			// clock wrote it; it never jumps to the wall time.
			if err := c.Reset(saved.Now); err != nil {
				return 0, fmt.Errorf("restore clock: %w", err)
			}
		case *clock.Scaled:
			if c.Factor() != 1 && saved.Factor == c.Factor() {
				cfg.Clock = clock.NewScaledFrom(saved.Factor, saved.WallStart, saved.Start)
			}
		}
	}
	return seq, nil
}

// adoptSeeds moves the seeds an older ipnlab journaled beside its
// messages (kindSeed) onto PayPal's records of them, where they live now.
func (e *Emulator) adoptSeeds() error {
	seeds := map[string]uint64{}
	err := e.cfg.Journal.Scan(kindSeed, func(id string, value []byte) error {
		n, err := strconv.ParseUint(string(value), 10, 64)
		seeds[id] = n
		return err
	})
	if err != nil {
		return fmt.Errorf("restore seeds: %w", err)
	}
	// Written after the scan: the store has one connection, which the
	// scan holds.
	var moved []journal.Entry
	for id, n := range seeds {
		if err := e.paypal.Service().AdoptSeed(id, n); err != nil {
			return fmt.Errorf("restore seed of %s: %w", id, err)
		}
		moved = append(moved, journal.Entry{Kind: kindSeed, Key: id, Delete: true})
	}
	return e.cfg.Journal.Write(moved...)
}

// restore loads the providers' records and resumes the delivery queue.
func (e *Emulator) restore() (Restored, error) {
	var r Restored
	var err error
	for _, p := range e.providers {
		counts, err := p.Restore()
		if err != nil {
			return r, fmt.Errorf("restore %s: %w", p.Name(), err)
		}
		if len(counts) > 0 {
			if r.Providers == nil {
				r.Providers = map[string]RestoredCounts{}
			}
			r.Providers[p.Name()] = counts
		}
	}
	if err := e.adoptSeeds(); err != nil {
		return r, err
	}
	clients := func(provider, route string) (*http.Client, error) {
		p, ok := e.Provider(provider)
		if !ok {
			return nil, fmt.Errorf("provider %q is not registered in this emulator", provider)
		}
		return p.ClientFor(route)
	}
	if r.Messages, r.Queued, err = e.engine.Restore(delivery.ClientFor(clients)); err != nil {
		return r, err
	}
	if err := e.saveClock(e.clock.Now()); err != nil {
		return r, fmt.Errorf("restore: %w", err)
	}
	if r.Scheduled, err = e.restoreScheduled(); err != nil {
		return r, fmt.Errorf("restore: %w", err)
	}
	return r, nil
}
