package journal

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Writer puts a journal's writes on one goroutine of their own: writes are
// applied in the order they were queued, and all that queued while the
// previous commit ran go in the next one (group commit). A component can
// queue a write while holding its lock, where it costs a slice append,
// and wait for it (or not) after letting go: what would have been one
// disk commit per change under the lock becomes one commit per batch,
// outside it.
//
// Writer is a Journal: Write queues and waits, so a caller that needs its
// record on disk before it goes on still gets that, and concurrent callers
// share a commit. Scan reads the store directly (call it before writing).
type Writer struct {
	store   Journal
	onError func(error)

	// applying keeps batches in order when, after Close, callers apply
	// them on their own goroutines (the writer's is gone by then).
	applying sync.Mutex

	onCommit atomic.Pointer[func(CommitStats)]

	mu     sync.Mutex
	open   *Commit // the batch queued writes join; nil when none waits
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

// Commit is one batch of writes; Wait returns when it is on disk.
type Commit struct {
	unwatched bool // some of its records were posted: report its error
	ops       []queued
	entries   []Entry // made from ops on the writer's goroutine
	index     map[recordKey]int
	done      chan struct{}
	err       error
}

type recordKey struct{ kind, key string }

type queued struct {
	Entry
	value func() ([]byte, error) // marshalled on the writer's goroutine
}

// NewWriter starts a writer over store. onError (may be nil) hears of
// failed commits of posted records, which nobody waits for.
func NewWriter(store Journal, onError func(error)) *Writer {
	w := &Writer{store: store, onError: onError, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// CommitStats describes one store write of a batch.
type CommitStats struct {
	Records int
	Took    time.Duration // making the values and writing them
	Err     error
}

// OnCommit sets f (nil: none) to hear of every batch written, on the
// writer's goroutine: it must be quick (metrics count them).
func (w *Writer) OnCommit(f func(CommitStats)) {
	if f == nil {
		w.onCommit.Store(nil)
		return
	}
	w.onCommit.Store(&f)
}

// Lazy is a record whose value is made on the writer's goroutine, so the
// caller only has to copy what it needs under its lock.
type Lazy struct {
	Kind, Key string
	Delete    bool
	Value     func() ([]byte, error)
}

// Bytes is a Lazy value made already.
func Bytes(v []byte) func() ([]byte, error) { return func() ([]byte, error) { return v, nil } }

// Queue adds records to the next commit, all in the same one, and returns
// it: the caller waits on it and handles its error. A record queued twice
// before its commit is written once, with the later value.
func (w *Writer) Queue(records ...Lazy) *Commit { return w.add(false, records) }

// Post queues records nobody waits for: a failed commit of them goes to
// the writer's onError.
func (w *Writer) Post(records ...Lazy) { w.add(true, records) }

func (w *Writer) add(unwatched bool, records []Lazy) *Commit {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.openLocked()
	c.unwatched = c.unwatched || unwatched
	for _, r := range records {
		c.add(queued{Entry: Entry{Kind: r.Kind, Key: r.Key, Delete: r.Delete}, value: r.Value})
	}
	return c
}

func (w *Writer) queueEntries(entries ...Entry) *Commit {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.openLocked()
	for _, e := range entries {
		c.add(queued{Entry: e})
	}
	return c
}

// openLocked is the batch new writes join. After Close there is no
// goroutine: the batch is applied by whoever waits on it (Write does), so
// a late record (a postback after shutdown) still reaches the store.
func (w *Writer) openLocked() *Commit {
	if w.open == nil {
		w.open = &Commit{index: map[recordKey]int{}, done: make(chan struct{})}
		if !w.closed {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	return w.open
}

func (c *Commit) add(q queued) {
	k := recordKey{q.Kind, q.Key}
	if i, ok := c.index[k]; ok {
		c.ops[i] = q // same place: the record's first-write order is kept
		return
	}
	c.index[k] = len(c.ops)
	c.ops = append(c.ops, q)
}

// Wait returns when the batch is committed, with its error.
func (c *Commit) Wait() error {
	<-c.done
	return c.err
}

// Write implements Journal: it queues entries and waits for their commit.
func (w *Writer) Write(entries ...Entry) error { return w.Enqueue(entries...)() }

// Enqueue queues entries for the next commit and returns the wait for it:
// a component queues while it holds its own lock, in the order of its
// changes, and waits once it has let go, so that no lock of its is held
// while a commit goes to disk.
func (w *Writer) Enqueue(entries ...Entry) (wait func() error) {
	if len(entries) == 0 {
		return func() error { return nil }
	}
	c := w.queueEntries(entries...)
	return func() error {
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if closed {
			w.flushClosed()
		}
		return c.Wait()
	}
}

// Enqueue is Writer.Enqueue on j when it is a Writer. Any other journal
// writes at once (under the caller's lock, keeping the order of its
// changes) and the wait returns that write's error; nil writes nothing.
func Enqueue(j Journal, entries ...Entry) (wait func() error) {
	switch w := j.(type) {
	case nil:
		return func() error { return nil }
	case *Writer:
		return w.Enqueue(entries...)
	}
	if len(entries) == 0 {
		return func() error { return nil }
	}
	err := j.Write(entries...)
	return func() error { return err }
}

// Queued is how many records wait for the next commit (the one running
// not counted).
func (w *Writer) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == nil {
		return 0
	}
	return len(w.open.ops)
}

// Scan implements Journal by reading the store.
func (w *Writer) Scan(kind string, fn func(key string, value []byte) error) error {
	return w.store.Scan(kind, fn)
}

// Flush waits for everything queued so far.
func (w *Writer) Flush() error {
	w.mu.Lock()
	c := w.open
	closed := w.closed
	w.mu.Unlock()
	if c == nil {
		return nil
	}
	if closed {
		w.flushClosed()
	}
	return c.Wait()
}

// Close commits what is queued and stops the goroutine; the store stays
// open (its owner closes it). Writes after Close go to the store at once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.wake)
	<-w.done
	return nil
}

// run commits one batch at a time: the records queued while a commit
// runs wait for the next, all together.
func (w *Writer) run() {
	defer close(w.done)
	for range w.wake {
		// Let the goroutines that are ready queue their records first:
		// a third fewer commits for the same records.
		runtime.Gosched()
		w.commitOpen()
	}
	w.commitOpen() // what was queued while Close ran
}

func (w *Writer) take() *Commit {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.open
	w.open = nil
	return c
}

// flushClosed applies the open batch on the caller's goroutine, once the
// writer's goroutine is gone.
func (w *Writer) flushClosed() { w.commitOpen() }

// commitOpen takes the open batch, makes its values and writes it in one
// store write.
func (w *Writer) commitOpen() {
	w.applying.Lock()
	defer w.applying.Unlock()
	c := w.take()
	if c == nil {
		return
	}
	start := time.Now()
	err := c.make()
	if err == nil {
		err = w.store.Write(c.entries...)
	}
	if f := w.onCommit.Load(); f != nil {
		(*f)(CommitStats{Records: len(c.ops), Took: time.Since(start), Err: err})
	}
	w.finish(c, err)
}

func (w *Writer) finish(c *Commit, err error) {
	c.err = err
	if err != nil && c.unwatched && w.onError != nil {
		w.onError(err)
	}
	close(c.done)
}

// make turns the batch's records into entries, calling their values.
func (c *Commit) make() error {
	c.entries = make([]Entry, len(c.ops))
	for i, q := range c.ops {
		c.entries[i] = q.Entry
		if q.value != nil {
			v, err := q.value()
			if err != nil {
				return fmt.Errorf("journal %s/%s: %w", q.Kind, q.Key, err)
			}
			c.entries[i].Value = v
		}
	}
	return nil
}
