// Package listener is ipnlab's reference IPN listener: the behaviour every
// conformance check is calibrated on, and a library teams can adopt.
//
// It stores each notification durably before answering 200, processes it
// asynchronously (replaying the inbox after a crash), verifies PayPal
// messages by posting back the exact bytes, applies them to a per-
// transaction state machine, and keeps a ledger of customer top-ups whose
// entries are unique per (provider, transaction, status), so duplicates
// cannot double-credit. It talks to the payment providers over HTTP only,
// like any listener, and imports no emulator package.
package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
)

// Providers.
const (
	PayPal     = "paypal"
	PayDo      = "paydo"
	PayPalREST = "paypalrest" // PayPal's REST webhooks
)

// The listener's endpoints, under its base URL.
const (
	PayPalPath     = "/ipn/paypal"
	PayDoPath      = "/ipn/paydo"
	PayPalRESTPath = "/webhooks/paypal"
)

// MaxBody bounds a notification; real ones are a few KiB.
const MaxBody = 1 << 20

// Listener receives, stores, verifies and applies notifications.
type Listener struct {
	cfg       Config
	store     store.Store
	log       *slog.Logger
	client    *http.Client
	customers map[string]string // lower-case email -> customer id
	receivers map[string]bool   // lower-case emails and ids of the merchant
	currency  map[string]bool
	allowed   []netip.Prefix
	proxies   []netip.Prefix
	verifier  Verifier
	// webhookVerifier checks PayPal REST webhooks.
	webhookVerifier WebhookVerifier
	rules           Rules

	mu    sync.Mutex
	queue []queued
	busy  int // queued, running or waiting to retry
	idle  chan struct{}
	// busyTxns counts the busy items of each transaction (an item counts
	// for its txn_id and its parent's), itemTxns what each item counts
	// for, and changed closes whenever an item is done: a probe can wait
	// for one check's transactions while other checks keep the listener
	// busy.
	busyTxns map[string]int
	itemTxns map[int64][]string
	changed  chan struct{}
	wake     chan struct{}
	started  bool
	closed   bool
	workers  sync.WaitGroup
	timers   map[*time.Timer]struct{}
}

// New checks cfg and opens the store. Nothing is processed until Start.
func New(cfg Config) (*Listener, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("listener config:\n%w", err)
	}
	st, err := sqlite.Open(cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("listener store: %w", err)
	}
	l, err := NewWithStore(cfg, st)
	if err != nil {
		_ = st.Close()
	}
	return l, err
}

// NewWithStore is New with a store of the caller's (e.g. PostgreSQL).
func NewWithStore(cfg Config, st store.Store) (*Listener, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("listener config:\n%w", err)
	}
	l := &Listener{
		cfg: cfg, store: st, log: cfg.Logger, client: cfg.Client,
		customers: map[string]string{}, receivers: map[string]bool{}, currency: map[string]bool{},
		idle: make(chan struct{}), wake: make(chan struct{}, 1), timers: map[*time.Timer]struct{}{},
		busyTxns: map[string]int{}, itemTxns: map[int64][]string{}, changed: make(chan struct{}),
	}
	close(l.idle)
	if cfg.WrapStore != nil {
		if l.store = cfg.WrapStore(st); l.store == nil {
			return nil, errors.New("listener config: WrapStore returned no store")
		}
	}
	l.rules = RulesFunc(l.reference)
	if cfg.WrapRules != nil {
		if l.rules = cfg.WrapRules(l.rules); l.rules == nil {
			return nil, errors.New("listener config: WrapRules returned no rules")
		}
	}
	if l.client == nil {
		l.client = &http.Client{
			// HTTPS_PROXY is heard, as by most listeners (ipnlab --intercept
			// relies on it); loopback verify URLs are never proxied.
			Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	var err error
	l.verifier = Postback{URL: cfg.VerifyURL, Client: l.client, UserAgent: cfg.Verify.UserAgent, Timeout: cfg.Verify.Timeout}
	if cfg.WrapVerifier != nil {
		if l.verifier = cfg.WrapVerifier(l.verifier); l.verifier == nil {
			return nil, errors.New("listener config: WrapVerifier returned no verifier")
		}
	}
	if l.webhookVerifier, err = l.newWebhookVerifier(); err != nil {
		return nil, err
	}
	for _, c := range cfg.Customers {
		l.customers[strings.ToLower(c.Email)] = c.ID
	}
	for _, r := range append(append([]string{}, cfg.ReceiverEmails...), cfg.ReceiverIDs...) {
		l.receivers[strings.ToLower(r)] = true
	}
	for _, c := range cfg.Currencies {
		l.currency[c] = true
	}
	for _, s := range cfg.PayDo.AllowedSources {
		p, _ := parsePrefix(s)
		l.allowed = append(l.allowed, p)
	}
	for _, s := range cfg.PayDo.TrustedProxies {
		p, _ := parsePrefix(s)
		l.proxies = append(l.proxies, p)
	}
	return l, nil
}

// Start replays the inbox (items acked but not processed before a crash)
// and starts the workers.
func (l *Listener) Start(ctx context.Context) error {
	// Started before the inbox is read: an item accepted meanwhile is
	// queued by accept (not left for the next restart), and skipped here.
	// No worker runs yet, so what accept queued is still queued.
	l.mu.Lock()
	if l.started || l.closed {
		l.mu.Unlock()
		return errors.New("listener already started or closed")
	}
	l.started = true
	l.mu.Unlock()
	pending, err := l.store.PendingInbox(ctx)
	if err != nil {
		return fmt.Errorf("replay inbox: %w", err)
	}
	l.mu.Lock()
	already := make(map[int64]bool, len(l.itemTxns))
	for id := range l.itemTxns {
		already[id] = true
	}
	l.mu.Unlock()
	if len(pending) > 0 {
		l.log.Info("replaying inbox", "items", len(pending))
	}
	for i := range pending {
		if !already[pending[i].ID] {
			l.enqueue(queued{id: pending[i].ID, item: &pending[i]})
		}
	}
	for range l.cfg.Workers {
		l.workers.Add(1)
		go l.work()
	}
	return nil
}

// Close stops the workers (after the item each is on) and closes the store.
// Items not processed stay in the inbox for the next Start.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	for t := range l.timers {
		t.Stop()
	}
	l.mu.Unlock()
	l.signal()
	l.workers.Wait()
	return l.store.Close()
}

// Store gives access to the listener's state (for probes and tests).
func (l *Listener) Store() store.Store { return l.store }

// WaitIdle returns when nothing is queued, running or waiting to retry.
func (l *Listener) WaitIdle(ctx context.Context) error {
	return l.waitUntilIdle(ctx, func() (int, chan struct{}) { return l.busy, l.idle })
}

// WaitIdleTxns returns when no item of these transactions (or of their
// children: refunds, reversals) is queued, running or waiting to retry.
func (l *Listener) WaitIdleTxns(ctx context.Context, txns []string) error {
	return l.waitUntilIdle(ctx, func() (int, chan struct{}) { return l.busyTxnsLocked(txns), l.changed })
}

// waitUntilIdle waits until state (read under l.mu) counts nothing busy,
// waking when its channel closes.
func (l *Listener) waitUntilIdle(ctx context.Context, state func() (int, chan struct{})) error {
	for {
		l.mu.Lock()
		busy, ch := state()
		l.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// BusyTxns counts the busy items of these transactions.
func (l *Listener) BusyTxns(txns []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busyTxnsLocked(txns)
}

func (l *Listener) busyTxnsLocked(txns []string) int {
	n := 0
	for _, t := range txns {
		n += l.busyTxns[t]
	}
	return n
}

// Busy counts items queued, running or waiting to retry.
func (l *Listener) Busy() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy
}

// queued is an inbox item waiting for a worker: with the item as stored
// when the worker can trust it (just stored or just read), or only its id
// when it must read the item's current state (a retry).
type queued struct {
	id   int64
	item *store.InboxItem
}

func (l *Listener) enqueue(q queued) {
	keys := transactionKeys(q.item)
	l.mu.Lock()
	if l.busy == 0 {
		l.idle = make(chan struct{})
	}
	l.busy++
	l.itemTxns[q.id] = keys
	for _, k := range keys {
		l.busyTxns[k]++
	}
	l.queue = append(l.queue, q)
	l.mu.Unlock()
	l.signal()
}

// retryLater puts an item back after wait, keeping it counted as busy.
func (l *Listener) retryLater(id int64, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.doneLocked(id)
		return
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		l.mu.Lock()
		delete(l.timers, t)
		if l.closed {
			l.doneLocked(id)
			l.mu.Unlock()
			return
		}
		l.queue = append(l.queue, queued{id: id})
		l.mu.Unlock()
		l.signal()
	})
	l.timers[t] = struct{}{}
}

func (l *Listener) doneLocked(id int64) {
	l.busy--
	if l.busy == 0 {
		close(l.idle)
	}
	for _, k := range l.itemTxns[id] {
		if l.busyTxns[k]--; l.busyTxns[k] <= 0 {
			delete(l.busyTxns, k)
		}
	}
	delete(l.itemTxns, id)
	close(l.changed)
	l.changed = make(chan struct{})
}

// transactionKeys are the transactions an inbox item works on: its own
// and its parent's (PayPal), or its transfer or checkout id (PayDo). An
// item that cannot be read counts for none.
func transactionKeys(it *store.InboxItem) []string {
	if it == nil {
		return nil
	}
	var keys []string
	if it.Provider == PayPalREST {
		return restKeys(it.Body)
	}
	if it.Provider == PayDo {
		if _, key, _, _, err := parsePayDo(it.Body); err == nil {
			keys = append(keys, key)
		}
		return keys
	}
	// A scan, not a parse: this runs for every notification, and the
	// identifiers are plain ASCII, the same escaped or not.
	for pair := range bytes.SplitSeq(it.Body, []byte("&")) {
		name, value, ok := bytes.Cut(pair, []byte("="))
		if !ok || len(value) == 0 {
			continue
		}
		if bytes.Equal(name, []byte("txn_id")) || bytes.Equal(name, []byte("parent_txn_id")) || bytes.HasPrefix(name, []byte("masspay_txn_id_")) {
			keys = append(keys, string(value))
		}
	}
	return keys
}

func (l *Listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Listener) work() {
	defer l.workers.Done()
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			l.signal() // pass the news on to the next worker
			return
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			<-l.wake
			continue
		}
		q := l.queue[0]
		l.queue[0] = queued{}
		l.queue = l.queue[1:]
		more := len(l.queue) > 0
		l.mu.Unlock()
		if more {
			l.signal()
		}
		retry, wait := l.process(q)
		if retry {
			l.retryLater(q.id, wait)
			continue
		}
		l.mu.Lock()
		l.doneLocked(q.id)
		l.mu.Unlock()
	}
}

// Handler serves the notification endpoints, the probe API and /healthz.
func (l *Listener) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PayPalPath, l.receivePayPal)
	mux.HandleFunc(PayDoPath, l.receivePayDo)
	mux.HandleFunc(PayPalRESTPath, l.receivePayPalREST)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "busy": l.Busy()})
	})
	l.probeRoutes(mux)
	if l.cfg.WrapHandler != nil {
		return l.cfg.WrapHandler(mux)
	}
	return mux
}

// readBody reads a notification body within MaxBody, answering the error
// itself when it cannot.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "notifications are POSTed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("notification larger than %d bytes", MaxBody), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "reading the notification: "+err.Error(), http.StatusBadRequest)
		}
		return nil, false
	}
	return body, true
}

func (l *Listener) receivePayPal(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	item := store.InboxItem{Provider: PayPal, ReceivedAt: l.cfg.now(), RemoteAddr: r.RemoteAddr, Headers: r.Header.Clone(), Body: body}
	// Refuse what PayPal could never have sent, but keep it for the record.
	var why string
	if len(body) == 0 {
		why = "empty body"
	} else if _, err := form.Parse(body); err != nil {
		why = err.Error()
	}
	if why != "" {
		l.keepRejected(r.Context(), item, why)
		http.Error(w, "malformed IPN: "+why, http.StatusBadRequest)
		return
	}
	l.accept(w, r, item)
}

// MaxRejectedBody is how much of a refused notification's body is kept
// for the record: refusals are anyone's to send, so what they cost must be
// bounded.
const MaxRejectedBody = 4 << 10

// keepRejected records a refused notification, its body cut to
// MaxRejectedBody (the detail says how long it was).
func (l *Listener) keepRejected(ctx context.Context, item store.InboxItem, why string) {
	if n := len(item.Body); n > MaxRejectedBody {
		item.Body = item.Body[:MaxRejectedBody:MaxRejectedBody]
		why += fmt.Sprintf(" (body of %d bytes, first %d kept)", n, MaxRejectedBody)
	}
	item.State, item.Detail = store.InboxRejected, why
	if _, err := l.store.AddInbox(ctx, item); err != nil {
		l.log.Warn("could not record a refused notification", "error", err)
	}
}

// accept stores an item durably, then acks: only a stored message is
// acknowledged, so PayPal resends anything we could not keep.
func (l *Listener) accept(w http.ResponseWriter, r *http.Request, item store.InboxItem) {
	id, err := l.store.AddInbox(r.Context(), item)
	if err != nil {
		l.log.Error("inbox write failed; not acking so the provider resends", "error", err)
		http.Error(w, "temporarily unable to store the notification", http.StatusServiceUnavailable)
		return
	}
	l.mu.Lock()
	running := l.started && !l.closed
	l.mu.Unlock()
	if running {
		// The worker gets the item as stored, instead of reading it back
		// (that read was a tenth of the CPU under load).
		item.ID, item.State, item.Attempts = id, store.InboxPending, 0
		item.ReceivedAt = item.ReceivedAt.UTC() // as the store gives it back
		l.enqueue(queued{id: id, item: &item})
	}
	w.WriteHeader(http.StatusOK)
}
