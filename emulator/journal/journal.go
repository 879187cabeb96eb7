// Package journal keeps the emulator's state on disk so a restart (also a
// kill -9) loses no message, attempt, postback or pending retry.
//
// The journal is a key-value log of records grouped by kind ("delivery",
// "attempt", "paypal.message", ...). Each component writes its own kinds
// and reads them back on start; a write of several entries is atomic, so a
// component can move a record and its queue in one step. Records come back
// in the order they were first written.
package journal

import "fmt"

// Entry is one record to write (or, with Delete, to remove).
type Entry struct {
	Kind   string
	Key    string
	Value  []byte
	Delete bool
}

// Journal stores records.
type Journal interface {
	// Write applies entries atomically.
	Write(entries ...Entry) error
	// Scan calls fn for every record of kind, oldest first.
	Scan(kind string, fn func(key string, value []byte) error) error
	// Close flushes and closes the journal.
	Close() error
}

// Rows is a SQL store's answer to a query for (key, value) pairs, as
// database/sql and pgx give it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanRows calls fn for each (key, value) row of kind, naming the kind and
// key in errors: the part of Scan every SQL store shares.
func ScanRows(kind string, rows Rows, fn func(key string, value []byte) error) error {
	for rows.Next() {
		var key string
		var value []byte
		if err := rows.Scan(&key, &value); err != nil {
			return fmt.Errorf("journal scan %s: %w", kind, err)
		}
		if err := fn(key, value); err != nil {
			return fmt.Errorf("journal %s/%s: %w", kind, key, err)
		}
	}
	return rows.Err()
}

// Purger is a journal that can drop every record whose kind starts with
// a prefix, in one step.
type Purger interface {
	Purge(kindPrefix string) error
}

// Within is j seen through prefix on every kind: components sharing one
// store (the accounts of a sandbox) each see only their own records.
// Closing it leaves j open: j's owner closes it.
func Within(j Journal, prefix string) *Scoped {
	return &Scoped{store: j, prefix: prefix}
}

// Scoped is a journal within a prefix of another (Within).
type Scoped struct {
	store  Journal
	prefix string
}

// Write implements Journal.
func (s *Scoped) Write(entries ...Entry) error {
	scoped := make([]Entry, len(entries))
	for i, e := range entries {
		e.Kind = s.prefix + e.Kind
		scoped[i] = e
	}
	return s.store.Write(scoped...)
}

// Scan implements Journal.
func (s *Scoped) Scan(kind string, fn func(key string, value []byte) error) error {
	return s.store.Scan(s.prefix+kind, fn)
}

// Close implements Journal; the store stays open.
func (s *Scoped) Close() error { return nil }

// Purge drops every record within the prefix.
func (s *Scoped) Purge() error {
	p, ok := s.store.(Purger)
	if !ok {
		return fmt.Errorf("journal: %T cannot drop records by kind", s.store)
	}
	return p.Purge(s.prefix)
}
