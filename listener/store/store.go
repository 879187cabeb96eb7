// Package store is the reference listener's durable state: the inbox of
// raw notifications (written before the ack), the per-transaction state,
// the ledger of balance effects (unique per provider, transaction and
// status, so a duplicate can never credit twice) and the payment log.
// Store is an interface; sqlite.Open is the default implementation.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// Inbox states.
const (
	InboxPending  = "pending"  // stored and acked, not processed yet
	InboxDone     = "done"     // processed (whatever the outcome)
	InboxRejected = "rejected" // refused at the door (malformed, not allowlisted)
	InboxFailed   = "failed"   // verification could not be done after every retry
)

// InboxItem is a notification as it arrived.
type InboxItem struct {
	ID         int64
	Provider   string
	ReceivedAt time.Time
	RemoteAddr string
	Headers    map[string][]string
	Body       []byte
	State      string
	Detail     string
	Attempts   int
}

// Txn is the listener's view of one transaction.
type Txn struct {
	Provider   string
	TxnID      string
	ParentID   string // refunds, reversals: the payment they undo
	Kind       string
	Status     string
	Customer   string
	Gross      int64 // cents
	Fee        int64 // cents
	Currency   string
	PayerEmail string
	PayerName  string // decoded from the message's charset
	Held       string // why a balance effect waits ("" when none does)
	FirstSeen  time.Time
	Updated    time.Time
}

// Entry is one balance effect.
type Entry struct {
	ID       int64
	Provider string
	TxnID    string
	Status   string // the status that caused it: Completed, Refunded, Reversed, ...
	Customer string
	Amount   int64 // cents, negative for debits
	Currency string
	ParentID string
	InboxID  int64
	At       time.Time
}

// LogLine is one line of the payment log: what a notification did.
type LogLine struct {
	ID       int64
	InboxID  int64
	Provider string
	TxnID    string
	Kind     string
	Status   string
	Verdict  string // VERIFIED, INVALID, allowlisted, ...
	Action   string // credited, debited, held, ignored, ...
	Detail   string
	At       time.Time
}

// Store is the listener's durable state.
type Store interface {
	// AddInbox stores a notification durably and returns its id.
	AddInbox(ctx context.Context, it InboxItem) (int64, error)
	// Inbox reads one item.
	Inbox(ctx context.Context, id int64) (InboxItem, error)
	// PendingInbox lists the items still to be processed, oldest first.
	PendingInbox(ctx context.Context) ([]InboxItem, error)
	// SetInboxState records an item's outcome outside a transaction.
	SetInboxState(ctx context.Context, id int64, state, detail string, attempts int) error
	// Tx runs f in one transaction: everything f does lands, or nothing.
	Tx(ctx context.Context, f func(Tx) error) error
	// Txn reads a transaction.
	Txn(ctx context.Context, provider, txnID string) (Txn, error)
	// Entries lists the ledger entries of a transaction (or of its
	// children, when it is a parent).
	Entries(ctx context.Context, provider, txnID string) ([]Entry, error)
	// Balances sums a customer's entries per currency.
	Balances(ctx context.Context, customer string) (map[string]int64, error)
	// Log lists the payment log, newest last; txnID "" for all.
	Log(ctx context.Context, txnID string, limit int) ([]LogLine, error)
	// Counts counts inbox items per state.
	Counts(ctx context.Context) (map[string]int, error)
	Close() error
}

// Tx is what business rules may do inside one transaction.
type Tx interface {
	Txn(provider, txnID string) (Txn, error)
	PutTxn(t Txn) error
	// Children lists transactions whose parent is txnID.
	Children(provider, parentID string) ([]Txn, error)
	// AddEntry inserts an entry; it reports false (and no error) when the
	// same (provider, txn, status) entry exists already.
	AddEntry(e Entry) (bool, error)
	// HasEntry reports whether (provider, txn, status) was applied.
	HasEntry(provider, txnID, status string) (bool, error)
	AddLog(l LogLine) error
	SetInboxState(id int64, state, detail string, attempts int) error
}
