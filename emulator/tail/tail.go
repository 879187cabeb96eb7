// Package tail turns the emulator's events into one line each, as `stripe
// listen` does: every message created, delivery attempt, manual resend,
// postback verdict and clock move, for `ipnlab tail` and `serve --tail`.
package tail

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// Tone colours a line on a terminal.
type Tone int

// The tones: plain, good (acknowledged, VERIFIED), bad (INVALID, failed)
// and waiting (a retry is coming, no postback yet).
const (
	Plain Tone = iota
	Good
	Bad
	Waiting
)

// Line is one event as a person reads it.
type Line struct {
	Time time.Time // clock time
	Text string
	Tone Tone
}

// Format makes the line of ev; ok is false for events a tail skips.
func Format(ev events.Event) (Line, bool) {
	l := Line{Time: ev.Time}
	switch ev.Type {
	case events.MessageQueued:
		var s api.Summary
		if json.Unmarshal(ev.Data, &s) != nil {
			return l, false
		}
		l.Text = fmt.Sprintf("%s  created  %s %s %s → %s", s.ID, s.Provider, orDash(s.Kind), txn(s.TxnID), orDash(s.URL))
		if s.Status == string(delivery.Held) {
			l.Text += " (Held: IPN is off)"
			l.Tone = Waiting
		}
	case events.Attempt:
		var d struct {
			Message api.Summary      `json:"message"`
			Attempt delivery.Attempt `json:"attempt"`
		}
		if json.Unmarshal(ev.Data, &d) != nil {
			return l, false
		}
		a := d.Attempt
		l.Text = fmt.Sprintf("%s  attempt %d (%s) → %s", d.Message.ID, a.Number, a.Trigger, a.Result())
		switch {
		case a.Acked:
			l.Text += ": acknowledged"
			l.Tone = Good
		case d.Message.NextAttempt != nil:
			l.Text += fmt.Sprintf(": not acknowledged; next attempt %s", d.Message.NextAttempt.UTC().Format("2006-01-02 15:04:05"))
			l.Tone = Waiting
		default:
			l.Text += ": not acknowledged; no more attempts (" + d.Message.Status + ")"
			l.Tone = Bad
		}
	case events.Resend:
		var s api.Summary
		if json.Unmarshal(ev.Data, &s) != nil {
			return l, false
		}
		l.Text = fmt.Sprintf("%s  resend queued → %s", s.ID, s.URL)
	case events.Postback:
		var p paypal.PostbackRecord
		if json.Unmarshal(ev.Data, &p) != nil {
			return l, false
		}
		id := ev.MessageID
		if id == "" {
			id = "(no message)"
		}
		l.Text = fmt.Sprintf("%s  postback → %s", id, receivedText(p))
		l.Tone = Good
		if p.Fault != "" || p.Verdict.Result != paypal.Verified || ev.MessageID == "" {
			l.Tone = Bad
		}
	case events.PayDoLookup:
		var lk paydo.Lookup
		if json.Unmarshal(ev.Data, &lk) != nil {
			return l, false
		}
		found := "found"
		if !lk.Found {
			found, l.Tone = "not found", Bad
		}
		l.Text = fmt.Sprintf("paydo lookup %s from %s: %s", lk.Key, lk.Remote, found)
	case events.Note:
		var n events.NoteData
		if json.Unmarshal(ev.Data, &n) != nil || n.Text == "" {
			return l, false
		}
		l.Text, l.Tone = ev.Provider+" "+n.Text, Good
		if n.Bad {
			l.Tone = Bad
		}
	case events.ClockAdvanced:
		var d struct {
			By string `json:"by"`
		}
		_ = json.Unmarshal(ev.Data, &d)
		if by, err := time.ParseDuration(d.By); err == nil {
			d.By = clock.FormatDuration(by)
		}
		l.Text = "clock advanced by " + d.By
	case events.Profile:
		var p paypal.Profile
		if json.Unmarshal(ev.Data, &p) != nil {
			return l, false
		}
		state := "off"
		if p.Enabled {
			state = "on"
		}
		l.Text = fmt.Sprintf("IPN %s, profile URL %s", state, orDash(p.NotifyURL))
	default:
		return l, false
	}
	return l, true
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func txn(id string) string {
	if id == "" {
		return ""
	}
	return "txn " + id
}

// Printer writes lines, coloured or plain.
type Printer struct {
	W     io.Writer
	Color bool
}

// Print writes one line: the clock time, then the text.
func (p Printer) Print(l Line) error {
	text := l.Text
	if p.Color {
		if code := map[Tone]string{Good: "32", Bad: "31", Waiting: "33"}[l.Tone]; code != "" {
			text = "\x1b[" + code + "m" + text + "\x1b[0m"
		}
	}
	_, err := fmt.Fprintf(p.W, "%s  %s\n", l.Time.UTC().Format("2006-01-02 15:04:05"), text)
	return err
}

// ColorFor reports whether lines to f should be coloured: only on a
// terminal, never with NO_COLOR set (no-color.org) or in CI.
func ColorFor(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("CI") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Source gives the events after seq, waiting for some; it returns the
// sequence number to continue from. A client's long poll is one; a bus in
// the same process is another (BusSource).
type Source func(ctx context.Context, after uint64) ([]events.Event, uint64, error)

// BusSource reads a bus in this process.
func BusSource(b *events.Bus) Source {
	return func(ctx context.Context, after uint64) ([]events.Event, uint64, error) {
		evs, _, err := b.Wait(ctx, after, 1000)
		if err != nil {
			return nil, after, err
		}
		return evs, evs[len(evs)-1].Seq, nil
	}
}

// Follow prints the lines of the events after seq, from src, until ctx
// ends (then it returns nil). keep, if set, chooses the events.
//
// A listener that verifies before it answers posts back while the
// attempt that delivered the message is still under way, so the verifier
// answers before the attempt ends: the bus has them in that order. A
// person reads a postback as the answer to an attempt, so Follow holds a
// postback made during an attempt until that attempt's line is printed.
func Follow(ctx context.Context, src Source, after uint64, p Printer, keep func(events.Event) bool) error {
	held := map[string][]heldLine{} // by message: postbacks waiting for their attempt
	emit := func(l Line) error {
		if err := p.Print(l); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		return nil
	}
	for {
		evs, next, err := src(ctx, after)
		if err != nil {
			// What is held is printed: its attempt's line will not come.
			for _, id := range sortedKeys(held) {
				for _, h := range held[id] {
					if perr := emit(h.line); perr != nil {
						return perr
					}
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tail: %w", err)
		}
		after = next
		for _, ev := range evs {
			kept := keep == nil || keep(ev)
			l, ok := Format(ev)
			if kept && ok && ev.Type == events.Postback {
				if n := duringAttempt(ev); n > 0 {
					held[ev.MessageID] = append(held[ev.MessageID], heldLine{n, l})
					continue
				}
			}
			if kept && ok {
				if err := emit(l); err != nil {
					return err
				}
			}
			if ev.Type == events.Attempt {
				if err := releaseHeld(held, ev, emit); err != nil {
					return err
				}
			}
		}
	}
}

// heldLine is a postback's line waiting for the line of attempt.
type heldLine struct {
	attempt int
	line    Line
}

// duringAttempt is the attempt under way when a postback event's
// postback came (0: none).
func duringAttempt(ev events.Event) int {
	var p struct {
		DuringAttempt int `json:"during_attempt"`
	}
	_ = json.Unmarshal(ev.Data, &p)
	return p.DuringAttempt
}

// releaseHeld prints the postbacks held for the attempt ev reports, and
// for earlier attempts of its message.
func releaseHeld(held map[string][]heldLine, ev events.Event, emit func(Line) error) error {
	var d struct {
		Attempt struct {
			Number int `json:"number"`
		} `json:"attempt"`
	}
	if json.Unmarshal(ev.Data, &d) != nil {
		return nil
	}
	waiting := held[ev.MessageID]
	rest := waiting[:0]
	for _, h := range waiting {
		if h.attempt > d.Attempt.Number {
			rest = append(rest, h)
			continue
		}
		if err := emit(h.line); err != nil {
			return err
		}
	}
	if len(rest) == 0 {
		delete(held, ev.MessageID)
	} else {
		held[ev.MessageID] = rest
	}
	return nil
}

func sortedKeys(m map[string][]heldLine) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// receivedText is what the listener was answered, first; with a fault,
// the emulator's own verdict after it, labelled: the listener never saw
// it.
func receivedText(p paypal.PostbackRecord) string {
	received := p.Received
	if received == "" {
		if p.Fault == "" {
			return p.Verdict.Summary() // a record from before Received was kept
		}
		received = p.Answered()
	}
	if p.Fault == "" {
		if received == string(p.Verdict.Result) {
			return p.Verdict.Summary()
		}
		return received + " (" + p.Verdict.Summary() + ")"
	}
	return fmt.Sprintf("%s (fault %s injected; the emulator's verdict, not sent: %s)", received, p.Fault, p.Verdict.Summary())
}
