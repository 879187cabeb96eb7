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
