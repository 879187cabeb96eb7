package delivery

import (
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
)

// Status is a message's state in IPN History, in PayPal's words but
// for Held.
type Status string

// The statuses PayPal's IPN History shows, and Held.
const (
	Queued   Status = "Queued"   // created, first delivery not finished yet
	Sent     Status = "Sent"     // acknowledged
	Retrying Status = "Retrying" // not acknowledged, another attempt is scheduled
	Failed   Status = "Failed"   // not acknowledged and the schedule is over
	// Held is ipnlab's own: PayPal documents no status for a message
	// created while IPN was switched off (its Disabled means the merchant's
	// account is disabled, which the emulator does not model). Such a
	// message is sent only when someone resends it.
	Held Status = "Held"
)

// Statuses lists the History statuses in the order they are documented.
var Statuses = []Status{Queued, Sent, Retrying, Failed, Held}

// Valid reports whether s is one of the History statuses.
func (s Status) Valid() bool {
	switch s {
	case Queued, Sent, Retrying, Failed, Held:
		return true
	}
	return false
}

// ResendingSuffix follows the status while a manual resend waits or runs.
const ResendingSuffix = " - resending"

// Trigger says why an attempt was made.
type Trigger = api.Trigger

// Attempt triggers.
const (
	Initial Trigger = "initial" // the first delivery
	Retry   Trigger = "retry"   // a resend on the provider's schedule
	Manual  Trigger = "manual"  // a resend someone asked for
)

// Attempt is the record of one HTTP delivery, as the API carries it.
type Attempt = api.Attempt

// Message is the delivery record of one notification.
type Message struct {
	ID          string     `json:"id"`
	Provider    string     `json:"provider"`
	Kind        string     `json:"kind,omitempty"`
	TxnID       string     `json:"txn_id,omitempty"`
	URL         string     `json:"url"` // where the first delivery went (or will go)
	Created     time.Time  `json:"created"`
	Status      Status     `json:"status"`
	Resending   bool       `json:"resending,omitempty"`
	Resent      bool       `json:"resent,omitempty"` // a manual resend was asked for
	Retries     int        `json:"retries"`          // scheduled retries made
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	AckedAt     *time.Time `json:"acked_at,omitempty"`
	LastCode    int        `json:"last_status_code,omitempty"`
	Attempts    []Attempt  `json:"attempts"`
}

// HistoryStatus is the status as the History page prints it.
func (m Message) HistoryStatus() string {
	if m.Resending {
		return string(m.Status) + ResendingSuffix
	}
	return string(m.Status)
}
