package emulator

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

// The History API: listing, reading and resending messages, and their
// postbacks.

// MessageFilter selects messages for History.
type MessageFilter struct {
	Provider string
	Status   delivery.Status
	Kind     string
	TxnID    string
	Since    time.Time
	Until    time.Time
}

func (f MessageFilter) keep(m *delivery.Message) bool {
	return (f.Provider == "" || m.Provider == f.Provider) &&
		(f.Status == "" || m.Status == f.Status) &&
		(f.Kind == "" || m.Kind == f.Kind) &&
		(f.TxnID == "" || m.TxnID == f.TxnID) &&
		(f.Since.IsZero() || !m.Created.Before(f.Since)) &&
		(f.Until.IsZero() || m.Created.Before(f.Until))
}

func parseStatus(s string) (delivery.Status, error) {
	for _, st := range delivery.Statuses {
		if strings.EqualFold(s, string(st)) {
			return st, nil
		}
	}
	if strings.EqualFold(s, "Disabled") {
		return "", badRequest("status %q: PayPal shows it when the merchant's account is disabled, which the emulator does not model; a message created while IPN is off is Held", s)
	}
	return "", badRequest("status %q: want Queued, Sent, Retrying, Failed or Held", s)
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, badRequest("%s %q: want an RFC 3339 time such as 2026-11-20T12:00:00Z", name, s)
	}
	return t, nil
}

func (e *Emulator) listMessages(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "provider", "status", "verdict", "kind", "txn_id", "since", "until", "limit", "offset", "order")
	if err != nil {
		return err
	}
	f := MessageFilter{Provider: q.Get("provider"), Kind: q.Get("kind"), TxnID: q.Get("txn_id")}
	if _, ok := e.Provider(f.Provider); f.Provider != "" && !ok {
		return badRequest("provider %q: want one of %s", f.Provider, strings.Join(e.providerNames(), ", "))
	}
	if s := q.Get("status"); s != "" {
		if f.Status, err = parseStatus(s); err != nil {
			return err
		}
	}
	if f.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", q.Get("until")); err != nil {
		return err
	}
	limit, err := parseInt("limit", q.Get("limit"), 100, 1, 10000)
	if err != nil {
		return err
	}
	offset, err := parseInt("offset", q.Get("offset"), 0, 0, 1<<30)
	if err != nil {
		return err
	}
	verdict, err := parseVerdict(q.Get("verdict"))
	if err != nil {
		return err
	}
	newest := false
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		newest = true
	default:
		return badRequest("order %q: want newest or oldest", q.Get("order"))
	}
	// Read first: a change after it is an event after it, so a client
	// that follows events from here misses nothing.
	last := e.bus.Last()
	all := e.engine.List(f.keep)
	if newest {
		slices.Reverse(all)
	}
	if verdict != "" {
		// The outcome is judged per message: filter on it before paging.
		all = slices.DeleteFunc(all, func(m delivery.Message) bool { return e.outcome(m).State != verdict })
	}
	total := len(all)
	out := make([]Summary, 0, min(limit, max(total-offset, 0)))
	for i := offset; i < total && len(out) < limit; i++ {
		out = append(out, e.summarize(all[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "total": total, "last_event": last})
	return nil
}

func parseVerdict(s string) (api.OutcomeState, error) {
	if s == "" {
		return "", nil
	}
	for _, st := range api.OutcomeStates {
		if strings.EqualFold(s, string(st)) {
			return st, nil
		}
	}
	names := make([]string, len(api.OutcomeStates))
	for i, st := range api.OutcomeStates {
		names[i] = string(st)
	}
	return "", badRequest("verdict %q: want one of %s", s, strings.Join(names, ", "))
}

func (e *Emulator) getMessage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	v, ok := e.View(id)
	if !ok {
		return fmt.Errorf("message %s: %w", id, delivery.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (e *Emulator) resendMessage(w http.ResponseWriter, r *http.Request) error {
	var req ResendRequest
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	if req.Since != "" || req.Status != "" {
		return badRequest("since and status belong to POST /api/v1/messages/resend")
	}
	if req.URL != "" && req.UseProfileURL {
		return badRequest("give url or use_profile_url, not both")
	}
	id := r.PathValue("id")
	if err := e.Resend(id, req); err != nil {
		return err
	}
	e.WaitIdle()
	v, _ := e.View(id)
	writeJSON(w, http.StatusAccepted, v)
	return nil
}

// Resend resends one message by hand, the way its provider does: PayPal's
// carry resend=true, PayDo's are the same bytes again.
func (e *Emulator) Resend(id string, req ResendRequest) error {
	rec, ok := e.engine.Get(id)
	if !ok {
		return fmt.Errorf("resend %s: %w", id, delivery.ErrNotFound)
	}
	p, err := e.providerOf(rec)
	if err != nil {
		return err
	}
	return p.Resend(id, req)
}

func (e *Emulator) resendFailed(w http.ResponseWriter, r *http.Request) error {
	var req ResendRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Since == "" {
		return badRequest("since is required: resend the messages created since when?")
	}
	since, err := parseTime("since", req.Since)
	if err != nil {
		return err
	}
	status := delivery.Failed
	if req.Status != "" {
		if status, err = parseStatus(req.Status); err != nil {
			return err
		}
	}
	if req.URL != "" && req.UseProfileURL {
		return badRequest("give url or use_profile_url, not both")
	}
	// Per message: one it cannot resend does not stop the others, and the
	// answer says which went and which did not (and why). Nothing went: the
	// first refusal is the answer.
	ids, refused := []string{}, []ResendRefusal{}
	var first error
	for _, m := range e.engine.List(MessageFilter{Status: status, Since: since}.keep) {
		if err := e.Resend(m.ID, req); err != nil {
			refused = append(refused, ResendRefusal{ID: m.ID, Error: messageOf(err)})
			first = cmp.Or(first, err)
			continue
		}
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 && first != nil {
		return first
	}
	e.WaitIdle()
	writeJSON(w, http.StatusAccepted, map[string]any{"resent": ids, "refused": refused})
	return nil
}
