// Package journal keeps the emulator's state on disk so a restart (also a
// kill -9) loses no message, attempt, postback or pending retry.
//
// The journal is a key-value log of records grouped by kind ("delivery",
// "attempt", "paypal.message", ...). Each component writes its own kinds
// and reads them back on start; a write of several entries is atomic, so a
// component can move a record and its queue in one step. Records come back
// in the order they were first written.
package journal

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
