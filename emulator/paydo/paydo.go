// Package paydo is the fake PayDo: JSON notifications for transfers and
// checkout payments, resent until the listener answers 200 for at most 24
// hours, sent from a configurable source address, with PayDo's IPN URL
// registration rules and a transaction status lookup.
package paydo

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/generate"
	"github.com/ipnlab/ipnlab/orderedjson"

	"github.com/ipnlab/ipnlab/emulator/watchdog"
)

// Provider is the name PayDo messages carry in delivery records.
const Provider = "paydo"

// UserAgent is the header PayDo deliveries carry (PayDo documents none).
const UserAgent = "PayDo-IPN/1.0 (ipnlab)"

// Sentinel errors callers branch on.
var (
	ErrNotFound      = errors.New("no such transaction")
	ErrNoTarget      = errors.New("no IPN URL: give a notify URL or register one for the project or user")
	ErrAlreadyExists = errors.New("PayDo allows one transfer IPN URL per user")
)

// DefaultSchedule resends after 1 min, doubling to at most 1 h, for 24 h:
// PayDo documents "within 24 hours" and no interval.
func DefaultSchedule() delivery.Backoff {
	return delivery.Backoff{Initial: time.Minute, Factor: 2, Max: time.Hour, Window: 24 * time.Hour}
}

// Config configures a Service.
type Config struct {
	Clock  clock.Clock
	Engine *delivery.Engine
	// Schedule defaults to DefaultSchedule.
	Schedule delivery.Schedule
	// SourceAddr is the local IP deliveries leave from (e.g. 127.0.0.2,
	// standing in for PayDo's 52.49.204.201); empty lets the OS choose.
	SourceAddr string
	// ForwardedFor, if set, is sent as X-Forwarded-For, as if a proxy in
	// front of the listener had seen PayDo's address.
	ForwardedFor string
	// OnLookup, if set, hears of every status lookup.
	OnLookup func(Lookup)
	// TLS configures HTTPS deliveries (nil: the system's roots).
	TLS *tls.Config
	// Allow limits delivery targets; the clients made here check it.
	Allow *delivery.Allowlist
	// Journal, if set, keeps registrations and transactions (see Restore).
	Journal journal.Journal
	// APIToken is the default project's token for the status lookup
	// (default DefaultAPIToken); SetAPIToken sets other projects'.
	APIToken string
	// Claim, if set, is asked before a transaction id or a lookup token
	// is used (what is "transaction id" or "lookup token"): a sandbox
	// routes lookups by them, so they must be one account's. An error
	// refuses the message or the token.
	Claim func(what, key string) error
}

// ErrTaken wraps a Claim's refusal (the control API answers 409).
var ErrTaken = plugin.StatusError(http.StatusConflict, "taken by another account")

// DefaultProject is the project checkouts belong to unless one is named.
const DefaultProject = "default"

// DefaultAPIToken is the default project's lookup token: ipnlab's own
// value (PayDo issues a JWT per merchant), for listeners to configure.
const DefaultAPIToken = "ipnlab-paydo-token"

// Transaction is PayDo's current view of a transaction, for lookups.
type Transaction struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Status    int       `json:"status"` // transfer status or checkout state
	Amount    string    `json:"amount,omitempty"`
	Currency  string    `json:"currency,omitempty"`
	InvoiceID string    `json:"invoice_id,omitempty"`
	TxID      string    `json:"txid,omitempty"`
	OrderID   string    `json:"order_id,omitempty"`
	Updated   time.Time `json:"updated"`
	Created   time.Time `json:"created"`
	// Project is a checkout's: only its token looks it up.
	Project      string   `json:"project,omitempty"`
	ErrorMessage string   `json:"error_message,omitempty"` // a failed checkout's
	Messages     []string `json:"messages"`                // ids of the notifications sent for it
	// LookedUp is when the listener first looked the checkout up and
	// found it (PayDo's advice: confirm a checkout's IPN by lookup).
	LookedUp *time.Time `json:"looked_up,omitempty"`
}

// Lookup records one status lookup a listener made.
type Lookup struct {
	Time   time.Time `json:"time"`
	Key    string    `json:"key"`
	Found  bool      `json:"found"`
	Remote string    `json:"remote"`
}

// Service is the fake PayDo.
type Service struct {
	cfg     Config
	client  *http.Client
	sources map[string]*http.Client // per-message source addresses
	header  http.Header             // shared by deliveries without their own X-Forwarded-For

	mu       sync.Mutex
	projects map[string]string // project -> checkout IPN URL
	tokens   map[string]string // project -> status lookup token
	users    map[string]string // user -> transfer IPN URL
	txs      map[string]*Transaction
	byTxID   map[string]*Transaction
}

// New returns a Service; Clock and Engine are required.
func New(cfg Config) (*Service, error) {
	if cfg.Clock == nil || cfg.Engine == nil {
		return nil, errors.New("paydo: a clock and a delivery engine are required")
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule()
	}
	if b, ok := cfg.Schedule.(delivery.Backoff); ok {
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("paydo %w", err)
		}
	}
	s := &Service{cfg: cfg, header: deliveryHeader(cfg.ForwardedFor), sources: map[string]*http.Client{}, projects: map[string]string{}, tokens: map[string]string{}, users: map[string]string{}, txs: map[string]*Transaction{}, byTxID: map[string]*Transaction{}}
	if cfg.SourceAddr != "" || cfg.TLS != nil {
		var local net.Addr
		if cfg.SourceAddr != "" {
			ip := net.ParseIP(cfg.SourceAddr)
			if ip == nil {
				return nil, fmt.Errorf("paydo source address %q: not an IP address", cfg.SourceAddr)
			}
			local = &net.TCPAddr{IP: ip}
		}
		s.client = delivery.NewClient(delivery.NewTransport(local, cfg.TLS, cfg.Allow))
	}
	if cfg.ForwardedFor != "" && net.ParseIP(cfg.ForwardedFor) == nil {
		return nil, fmt.Errorf("paydo forwarded-for %q: not an IP address", cfg.ForwardedFor)
	}
	s.tokens[DefaultProject] = cmp.Or(cfg.APIToken, DefaultAPIToken)
	return s, nil
}

// SetAPIToken sets the token a project's status lookups must carry
// (Authorization: Bearer TOKEN); "" removes it, and with it the lookup.
func (s *Service) SetAPIToken(project, token string) error {
	if project == "" {
		return errors.New("project name is empty")
	}
	if strings.ContainsAny(token, " \t\r\n") {
		return errors.New("token: no spaces")
	}
	return s.change("project "+project, func() (journal.Entry, error) {
		if _, known := s.tokens[project]; !known && token != "" && len(s.tokens) >= MaxRegistrations {
			return journal.Entry{}, ErrTooMany
		}
		if token != "" && s.cfg.Claim != nil {
			if err := s.cfg.Claim("lookup token", token); err != nil {
				return journal.Entry{}, fmt.Errorf("%w: %w", ErrTaken, err)
			}
		}
		if token == "" {
			delete(s.tokens, project)
		} else {
			s.tokens[project] = token
		}
		return registrationRecord(KindToken, project, token), nil
	})
}

// change applies a registration under the lock and queues its record
// there, in order, then waits for the commit after letting go: no lookup,
// send or listing waits on the disk.
func (s *Service) change(what string, apply func() (journal.Entry, error)) error {
	s.mu.Lock()
	rec, err := apply()
	wait := func() error { return nil }
	if err == nil && s.cfg.Journal != nil {
		wait = journal.Enqueue(s.cfg.Journal, rec)
	}
	s.mu.Unlock()
	if err == nil {
		err = wait()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// projectOf is the project whose token a request carries ("" for none).
func (s *Service) projectOf(r *http.Request) string {
	return s.ProjectOf(BearerOf(r))
}

// BearerOf is a request's bearer token ("" for none).
func BearerOf(r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return token
}

// Tokens lists the projects' lookup tokens, for a sandbox to index them.
func (s *Service) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, t)
	}
	return out
}

// ProjectOf is the project whose lookup token token is ("" for none).
func (s *Service) ProjectOf(token string) string {
	if token == "" {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for project, t := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return project
		}
	}
	return ""
}

// MaxRegistrations bounds the projects, and the users, with an IPN URL:
// each is one API request, and nothing else would stop them piling up.
const MaxRegistrations = 10_000

// ErrTooMany is returned for a registration past MaxRegistrations.
var ErrTooMany = fmt.Errorf("more than %d registrations: remove some first", MaxRegistrations)

// RegisterCheckoutURL sets a project's checkout IPN URL ("" removes it).
func (s *Service) RegisterCheckoutURL(project, url string) error {
	if project == "" {
		return errors.New("project name is empty")
	}
	return s.change("project "+project, func() (journal.Entry, error) {
		if url != "" {
			if err := s.cfg.Engine.CheckTarget(url); err != nil {
				return journal.Entry{}, err
			}
			if _, known := s.projects[project]; !known && len(s.projects) >= MaxRegistrations {
				return journal.Entry{}, ErrTooMany
			}
		}
		if url == "" {
			delete(s.projects, project)
		} else {
			s.projects[project] = url
		}
		return registrationRecord(KindProject, project, url), nil
	})
}

// RegisterTransferURL sets a user's transfer IPN URL. PayDo allows one: a
// second, different URL is refused until the first is removed ("").
func (s *Service) RegisterTransferURL(user, url string) error {
	if user == "" {
		return errors.New("user name is empty")
	}
	return s.change("user "+user, func() (journal.Entry, error) {
		if url != "" {
			if err := s.cfg.Engine.CheckTarget(url); err != nil {
				return journal.Entry{}, err
			}
			if cur, ok := s.users[user]; ok && cur != url {
				return journal.Entry{}, fmt.Errorf("it has %s: %w; remove it first", cur, ErrAlreadyExists)
			}
			if _, known := s.users[user]; !known && len(s.users) >= MaxRegistrations {
				return journal.Entry{}, ErrTooMany
			}
		}
		if url == "" {
			delete(s.users, user)
		} else {
			s.users[user] = url
		}
		return registrationRecord(KindUser, user, url), nil
	})
}

// Registrations returns the registered URLs.
func (s *Service) Registrations() (projects, users map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	projects, users = map[string]string{}, map[string]string{}
	for k, v := range s.projects {
		projects[k] = v
	}
	for k, v := range s.users {
		users[k] = v
	}
	return projects, users
}

// Notification is one PayDo message to send.
type Notification struct {
	Message generate.PayDoMessage
	// URL overrides the registered one.
	URL string
	// Project (checkout) or User (transfer) picks the registered URL;
	// "default" when empty.
	Project, User string
	// Source, if set, is the local IP this message leaves from instead of
	// the configured one (to test an allowlist with a stranger's address).
	Source string
	// ForwardedFor, if set, is this message's X-Forwarded-For instead of
	// the configured one (a spoof, when Source is a stranger).
	ForwardedFor string
}

// Send records the transaction's new state and delivers the message.
func (s *Service) Send(n Notification) (delivery.Message, error) {
	body, err := n.Message.JSON()
	if err != nil {
		return delivery.Message{}, fmt.Errorf("paydo message: %w", err)
	}
	target, err := s.target(n)
	if err != nil {
		return delivery.Message{}, err
	}
	client := s.client
	if n.Source != "" {
		if client, err = s.clientFrom(n.Source); err != nil {
			return delivery.Message{}, err
		}
	}
	id := newID()
	key := n.Message.TransactionID()
	if s.cfg.Claim != nil && key != "" {
		if err := s.cfg.Claim("transaction id", key); err != nil {
			return delivery.Message{}, fmt.Errorf("%w: %w", ErrTaken, err)
		}
	}
	// The transaction's state goes to disk in its message's commit: never
	// one without the other.
	records, err := s.update(id, cmp.Or(n.Project, DefaultProject), n.Message)
	if err != nil {
		return delivery.Message{}, fmt.Errorf("paydo transaction %s: %w", key, err)
	}
	header := s.header
	if n.ForwardedFor != "" {
		header = deliveryHeader(n.ForwardedFor)
	}
	return s.cfg.Engine.Submit(delivery.Submission{
		ID: id, Provider: Provider, Kind: n.Message.Kind, TxnID: key, URL: target, Body: body,
		Header: header, Schedule: s.cfg.Schedule, Ack: delivery.Only200, Client: client, Route: n.Source, Records: records,
	})
}

// ClientFor returns the client of a message's route (its source address,
// "" for the configured one), for messages restored from a journal; nil
// means the engine's default.
func (s *Service) ClientFor(route string) (*http.Client, error) {
	if route == "" {
		return s.client, nil
	}
	return s.clientFrom(route)
}

// ErrBadSource is wrapped when a source address is not an IP.
var ErrBadSource = errors.New("bad source address")

func (s *Service) clientFrom(source string) (*http.Client, error) {
	ip := net.ParseIP(source)
	if ip == nil {
		return nil, fmt.Errorf("%w: %q is not an IP address", ErrBadSource, source)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.sources[source]
	if !ok {
		c = delivery.NewClient(delivery.NewTransport(&net.TCPAddr{IP: ip}, s.cfg.TLS, s.cfg.Allow))
		s.sources[source] = c
	}
	return c, nil
}

func (s *Service) target(n Notification) (string, error) {
	if n.URL != "" {
		return n.URL, s.cfg.Engine.CheckTarget(n.URL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.Message.Kind == generate.PayDoTransfer {
		user := n.User
		if user == "" {
			user = "default"
		}
		if url, ok := s.users[user]; ok {
			return url, nil
		}
		return "", fmt.Errorf("transfer for user %s: %w", user, ErrNoTarget)
	}
	project := n.Project
	if project == "" {
		project = "default"
	}
	if url, ok := s.projects[project]; ok {
		return url, nil
	}
	return "", fmt.Errorf("checkout for project %s: %w", project, ErrNoTarget)
}

// update records the state a message announces.
func (s *Service) update(messageID, project string, m generate.PayDoMessage) ([]journal.Entry, error) {
	str := func(path string) string {
		v, _ := m.Body.Get(path)
		switch x := v.(type) {
		case string:
			return x
		case json.Number:
			return x.String()
		}
		return ""
	}
	statusPath := "transaction.state"
	if m.Kind == generate.PayDoTransfer {
		statusPath = "transaction.status"
	}
	var status int
	_, _ = fmt.Sscan(str(statusPath), &status)
	key := m.TransactionID()
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, ok := s.txs[key]
	if !ok {
		tx = &Transaction{ID: key, Kind: m.Kind, Created: s.cfg.Clock.Now()}
		s.txs[key] = tx
	}
	tx.Status, tx.Updated = status, s.cfg.Clock.Now()
	tx.Messages = append(tx.Messages, messageID)
	if m.Kind == generate.PayDoTransfer {
		tx.Amount, tx.Currency = str("transaction.amount"), str("transaction.currency")
	} else {
		tx.Amount, tx.Currency = m.Amount.String(), m.Currency
		tx.InvoiceID, tx.TxID, tx.OrderID = str("invoice.id"), str("invoice.txid"), str("transaction.order.id")
		tx.Project = project
		tx.ErrorMessage = str("transaction.error.message")
		if tx.TxID != "" {
			s.byTxID[tx.TxID] = tx
		}
	}
	return s.transactionRecords(tx)
}

// Transaction returns the current state of a transaction by its id
// (transfer identifierTxFrom, checkout transaction.id) or checkout txid.
func (s *Service) Transaction(key string) (Transaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, ok := s.txs[key]
	if !ok {
		tx, ok = s.byTxID[key]
	}
	if !ok {
		return Transaction{}, false
	}
	c := *tx
	c.Messages = append([]string(nil), tx.Messages...)
	return c, true
}

// lookedUp notes the first lookup that found the transaction key names.
func (s *Service) lookedUp(key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, ok := s.txs[key]
	if !ok {
		tx, ok = s.byTxID[key]
	}
	if ok && tx.LookedUp == nil {
		tx.LookedUp = &at
	}
}

// Transactions lists every transaction, oldest update first.
func (s *Service) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transaction, 0, len(s.txs))
	for _, tx := range s.txs {
		out = append(out, *tx)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Updated.Before(out[j].Updated) })
	return out
}

// LookupHandler serves GET /paydo/v1/transactions/{id}, PayDo's checkout
// "Get transaction info" under ipnlab's path: the caller's project token
// as Authorization: Bearer (401 without a known one), a checkout of that
// project by its transaction id (404 otherwise), answered as PayDo does:
// {"data": {"identifier", "type": 7, "amount" (a number), "currency",
// "payAmount", "state", "error", "createdAt" (Unix seconds), "orderId",
// "payerInformation"}}.
func (s *Service) LookupHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("id")
		project := s.projectOf(r)
		tx, ok := s.Transaction(key)
		ok = ok && project != "" && tx.Kind == generate.PayDoCheckout && tx.Project == project
		if ok {
			s.lookedUp(key, s.cfg.Clock.Now())
		}
		if s.cfg.OnLookup != nil {
			s.cfg.OnLookup(Lookup{Time: s.cfg.Clock.Now(), Key: key, Found: ok, Remote: r.RemoteAddr})
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case project == "":
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": "Unauthorized: send the project's token as Authorization: Bearer TOKEN"})
			return
		case !ok:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": "Transaction not found"})
			return
		}
		amount := json.Number(cmp.Or(tx.Amount, "0"))
		var txErr any // null unless the checkout failed
		if tx.ErrorMessage != "" {
			txErr = orderedjson.Object{{Key: "message", Value: tx.ErrorMessage}, {Key: "code", Value: ""}}
		}
		data := orderedjson.Object{
			{Key: "identifier", Value: tx.ID},
			{Key: "type", Value: json.Number("7")}, // 7: checkout
			{Key: "amount", Value: amount},
			{Key: "currency", Value: tx.Currency},
			{Key: "payAmount", Value: amount},
			{Key: "state", Value: json.Number(fmt.Sprint(tx.Status))},
			{Key: "error", Value: txErr},
			{Key: "createdAt", Value: json.Number(fmt.Sprint(tx.Created.Unix()))},
			{Key: "orderId", Value: tx.OrderID},
			{Key: "payerInformation", Value: []any{}},
		}
		_ = json.NewEncoder(w).Encode(orderedjson.Object{{Key: "data", Value: data}})
	})
}

// deliveryHeader is the header of deliveries with X-Forwarded-For xff
// (none if empty). The engine keeps headers as given: one is shared by
// every message sent with it.
func deliveryHeader(xff string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {UserAgent}}
	if xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	return h
}

func newID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	out := []byte("pd_")
	for _, c := range b {
		out = append(out, alphabet[c&31])
	}
	return string(out)
}

// Responsive reports whether the service's lock can be taken within d
// (see package watchdog).
func (s *Service) Responsive(d time.Duration) bool { return watchdog.Free(&s.mu, d) }
