package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/events"
)

// The events API: long polls and server-sent events over the event journal.

// eventQuery reads the filters shared by the event endpoints.
type eventQuery struct {
	after     uint64
	types     []string
	messageID string
	limit     int
	timeout   time.Duration
}

func parseEventQuery(r *http.Request, poll bool) (eventQuery, error) {
	allowed := []string{"after", "type", "message_id", "limit"}
	if poll {
		allowed = append(allowed, "timeout")
	}
	q, err := query(r, allowed...)
	if err != nil {
		return eventQuery{}, err
	}
	eq := eventQuery{messageID: q.Get("message_id"), timeout: 25 * time.Second}
	after := q.Get("after")
	if after == "" {
		after = r.Header.Get("Last-Event-ID")
	}
	if after != "" {
		if eq.after, err = strconv.ParseUint(after, 10, 64); err != nil {
			return eq, badRequest("after %q: want an event sequence number", after)
		}
	}
	if t := q.Get("type"); t != "" {
		known := events.Types
		for _, typ := range strings.Split(t, ",") {
			if !slices.Contains(known, typ) {
				return eq, badRequest("event type %q: want %s", typ, strings.Join(known, ", "))
			}
			eq.types = append(eq.types, typ)
		}
	}
	if eq.limit, err = parseInt("limit", q.Get("limit"), 1000, 1, 10000); err != nil {
		return eq, err
	}
	if t := q.Get("timeout"); t != "" {
		if eq.timeout, err = time.ParseDuration(t); err != nil || eq.timeout < 0 || eq.timeout > 5*time.Minute {
			return eq, badRequest("timeout %q: want a duration up to 5m", t)
		}
	}
	return eq, nil
}

func (q eventQuery) match(ev events.Event) bool {
	return (len(q.types) == 0 || slices.Contains(q.types, ev.Type)) && (q.messageID == "" || ev.MessageID == q.messageID)
}

// next waits for matching events after q.after; it moves q.after past
// everything it looked at.
func (e *Emulator) next(ctx context.Context, q *eventQuery) ([]events.Event, bool, error) {
	for {
		evs, missed, err := e.bus.Wait(ctx, q.after, q.limit)
		if err != nil {
			return nil, false, err
		}
		var out []events.Event
		for _, ev := range evs {
			if q.match(ev) {
				out = append(out, ev)
			}
		}
		q.after = evs[len(evs)-1].Seq
		if len(out) > 0 || missed {
			return out, missed, nil
		}
	}
}

func (e *Emulator) pollEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := parseEventQuery(r, true)
	if err != nil {
		return err
	}
	base, stop := e.streamContext(r)
	defer stop()
	ctx, cancel := context.WithTimeout(base, q.timeout)
	defer cancel()
	evs, missed, err := e.next(ctx, &q)
	if err != nil && r.Context().Err() != nil {
		return apiError(499, "client went away")
	}
	if evs == nil {
		evs = []events.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "last": q.after, "missed": missed})
	return nil
}

func (e *Emulator) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := parseEventQuery(r, false)
	if err != nil {
		return err
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return apiError(http.StatusInternalServerError, "streaming unsupported")
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, ": ipnlab events after %d\n\n", q.after)
	flusher.Flush()
	base, stop := e.streamContext(r)
	defer stop()
	for {
		ctx, cancel := context.WithTimeout(base, 15*time.Second)
		evs, missed, err := e.next(ctx, &q)
		cancel()
		if base.Err() != nil {
			return nil
		}
		if err != nil { // heartbeat keeps proxies from closing an idle stream
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
			continue
		}
		if missed {
			_, _ = fmt.Fprint(w, "event: missed\ndata: {}\n\n")
		}
		for _, ev := range evs {
			data, _ := json.Marshal(ev)
			_, _ = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data)
		}
		flusher.Flush()
	}
}
