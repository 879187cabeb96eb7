package testenv

import (
	"sync"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// SlowDisk is a journal whose commits wait until released, one by one: a
// disk that takes its time. Entered gets each commit's entries as it
// starts; a send on Release lets it finish.
type SlowDisk struct {
	Entered chan []journal.Entry
	Release chan struct{}

	mu    sync.Mutex
	kinds [][]string // per commit, the kinds it wrote
}

// NewSlowDisk returns a SlowDisk with unbuffered channels.
func NewSlowDisk() *SlowDisk {
	return &SlowDisk{Entered: make(chan []journal.Entry), Release: make(chan struct{})}
}

// Write implements journal.Journal.
func (d *SlowDisk) Write(entries ...journal.Entry) error {
	d.Entered <- entries
	<-d.Release
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
	}
	d.mu.Lock()
	d.kinds = append(d.kinds, kinds)
	d.mu.Unlock()
	return nil
}

// Scan implements journal.Journal: a new disk holds nothing.
func (d *SlowDisk) Scan(string, func(string, []byte) error) error { return nil }

// Close implements journal.Journal.
func (d *SlowDisk) Close() error { return nil }

// Drain lets every commit still to come finish (at Close).
func (d *SlowDisk) Drain() {
	go func() {
		for range d.Entered {
			d.Release <- struct{}{}
		}
	}()
}

// Kinds lists, per finished commit, the kinds it wrote.
func (d *SlowDisk) Kinds() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]string(nil), d.kinds...)
}
