// Package plugin is the contract between the emulator and the payment
// providers plugged into it (as database/sql/driver is between database/sql
// and its drivers): what a provider is (Provider), how the emulator makes
// one for itself (Factory), what it shares with it (Host), and the control
// API's HTTP conventions a provider's routes follow. It depends on no
// provider and on no part of the emulator but the shared engine, so that a
// provider's package, the built-in ones' too, imports it and not the
// emulator.
package plugin

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
)

// Provider is one fake payment provider plugged into an Emulator: what it
// serves, how its messages are shown, resent, restored and forgotten. The
// delivery engine, History, the clock, the journal and the events are the
// emulator's and shared; a provider builds its messages and hands them to
// the engine with its Name as their provider.
//
// The emulator's Config.Providers adds providers next to the built-in
// ones. What a new provider needs is listed in docs/architecture.md. A
// provider that holds something of its own (a server it runs) is also an
// io.Closer: the emulator closes it when it closes or shuts down.
type Provider interface {
	// Name is how History, the journal, events and the API name it:
	// lower case letters and digits, unique in the emulator.
	Name() string
	// Routes are its HTTP routes: its control API (under /api/v1/, behind
	// the API token) and, marked Public, what listeners call (a verifier,
	// a status lookup).
	Routes() []Route
	// Restore loads what it journaled; New calls it when there is a
	// journal, before the delivery engine resumes the queued attempts. It
	// returns what it knew again, counted by kind of record ("messages",
	// and any of its own); nil when it knew nothing.
	Restore() (RestoredCounts, error)
	// ClientFor is the HTTP client that sends a restored message of this
	// provider journaled with route (delivery.Submission.Route); nil means
	// the emulator's.
	ClientFor(route string) (*http.Client, error)
	// Describe adds to a message view what the provider knows of the
	// message beyond its delivery record: body, fields, postbacks.
	Describe(id string, v *api.MessageView)
	// Resend resends message id by hand.
	Resend(id string, req api.ResendRequest) error
	// Forget drops what it keeps of messages evicted from History.
	Forget(ids []string)
}

// Factory makes a provider for one emulator, bound to its shared parts
// (as database/sql drivers open connections): New calls it once, before
// Restore and before anything is served. Every emulator gets its own
// provider: each sandbox account, each replica that becomes the leader.
type Factory func(h Host) (Provider, error)

// Notify asks a Sender for messages: Kind and Set mean what the provider
// says they mean.
type Notify struct {
	Kind      string
	Set       map[string]any
	NotifyURL string
	Seed      uint64
	Copies    int
}

// Host is what the emulator shares with its providers.
type Host struct {
	Clock  clock.Clock
	Engine *delivery.Engine
	// Journal is nil when the emulator keeps nothing on disk; writes go
	// through the emulator's ordered writer.
	Journal journal.Journal
	// Client sends for the emulator (deliveries, lookups): allowlist on
	// the dialled address, no redirects, no proxy from the environment.
	Client *http.Client
	Logger *slog.Logger
	// Report hears of errors no request is waiting for.
	Report func(error)
	// Publish adds an event to the emulator's journal of events.
	Publish func(typ string, at time.Time, provider, messageID string, data any)
	// Seed is the emulator's: a provider's generated values derive from it.
	Seed uint64
	// View is a message as the API shows it (after Describe).
	View func(id string) (api.MessageView, bool)
	// Metrics registers the provider's own figures, served at /metrics
	// with the emulator's account label. Messages, attempts and their
	// latency are counted for it already, by provider name.
	Metrics prometheus.Registerer
	// Schedule plans a send for a later clock time (see Planned): a
	// provider that plans is a Scheduler.
	Schedule func(Planned) error
	// DrawSeed draws the seed of a message generated without one, from
	// the emulator's seed: the same emulator seed draws the same seeds.
	DrawSeed func() uint64
	// WaitIdle returns when no delivery attempt is due or running (a send
	// through the API answers once its first attempts were made).
	WaitIdle func()
	// TLS and Allow are the emulator's settings for clients a provider
	// makes of its own (a delivery from another source address): the
	// roots HTTPS deliveries trust, and the allowlist of targets.
	TLS   *tls.Config
	Allow *delivery.Allowlist
	// Account names the sandbox account the emulator is in ("" when it
	// is in none): a provider whose public requests carry credentials of
	// its own makes them per account (see Claimer).
	Account string
}

// Claimer is a provider whose public routes are called with credentials
// of its own, not the account's API token (an OAuth token, an app's
// client id, a certificate's name): a team sandbox, which routes by the
// API token, asks every account's providers which one claims such a
// request, and hands it to that account when exactly one does.
type Claimer interface {
	Claims(r *http.Request) bool
}

// Route is one HTTP route of a provider.
type Route struct {
	// Method is the HTTP method; "" takes every method (a verifier that
	// records wrong ones).
	Method  string
	Pattern string // a net/http pattern path, such as /api/v1/x/notifications
	Handler http.Handler
	// Public routes are called by listeners and need no API token.
	Public bool
}

// Planned is a send a provider plans for a later clock time
// (Host.Schedule): the emulator journals it, arms it on the clock, after a
// restart too, and when its time comes hands Payload back to the
// provider's SendScheduled. Label names it in logs and in what the clock
// says is waiting ("lifecycle chargeback step reversed").
type Planned struct {
	Provider string          `json:"provider"`
	At       time.Time       `json:"at"`
	Label    string          `json:"label"`
	Payload  json.RawMessage `json:"payload"`
}

// RestoredCounts is what one provider restored, by kind of record.
type RestoredCounts map[string]int

// Unacknowledged is the outcome of a message not acknowledged (yet), as
// History shows it, and acked=true when it was: a provider's Outcome says
// the rest.
func Unacknowledged(m delivery.Message) (o api.Outcome, acked bool) {
	if m.AckedAt != nil {
		return api.Outcome{}, true
	}
	o.State = api.Undelivered
	switch {
	case m.Status == delivery.Held && m.URL == "":
		// The usual cause on a bare emulator: nowhere to send it.
		o.Summary = "not sent: no IPN URL was set when it was created (Held until resent): set one with serve --listener URL or ipnlab profile --listener URL --on, or send with --listener URL"
	case m.Status == delivery.Held:
		o.Summary = "not sent: IPN was off when it was created (Held until resent): ipnlab profile --on switches it on"
	case len(m.Attempts) == 0:
		o.Summary = "not delivered yet"
	case m.NextAttempt != nil:
		o.Summary = fmt.Sprintf("not acknowledged: %s (attempt %d; next %s)", m.Attempts[len(m.Attempts)-1].Result(),
			len(m.Attempts), m.NextAttempt.UTC().Format(time.RFC3339))
	default:
		o.Summary = fmt.Sprintf("not acknowledged after %d attempts: %s", len(m.Attempts), m.Attempts[len(m.Attempts)-1].Result())
	}
	return o, false
}

// NonZero is c without its zero counts, nil when nothing is left (what a
// provider's Restore returns).
func NonZero(c RestoredCounts) RestoredCounts {
	maps.DeleteFunc(c, func(_ string, n int) bool { return n == 0 })
	if len(c) == 0 {
		return nil
	}
	return c
}
