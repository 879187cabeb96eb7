// Package sandbox is an emulator shared by several teams, as PayPal's
// sandbox is: it holds merchant accounts, each with its own API token,
// receiver, IPN profile, PayDo projects, faults and History (an emulator
// of its own, on a clock of its own), behind one address. A token sees and
// changes only its account. Listeners post back to one verifier, which
// hands each postback to the account whose message it is, so one
// account's messages are never judged, shown or counted for another. An
// admin token manages the accounts (/api/v1/accounts).
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/console"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// Sentinel errors callers branch on.
var (
	ErrNoAccount = errors.New("no such account")
	ErrTaken     = errors.New("account name taken")
)

// Account is a merchant account of the sandbox.
type Account = api.Account

// AccountToken is a new account with its tokens.
type AccountToken = api.AccountToken

// NewAccount is what creating an account takes.
type NewAccount = api.NewAccount

// Config shapes a sandbox.
type Config struct {
	// AdminToken manages accounts; required.
	AdminToken string
	// MetricsToken, if set, also opens /metrics.
	MetricsToken string
	// Base is every account's emulator: verify mode, schedules, allowlist,
	// logger ...; the sandbox sets its clock, journal, profile, token and
	// account per account.
	Base emulator.Config
	// NewClock gives each account's emulator its clock (a manual clock
	// moved by one account does not move another's). Default: real time.
	NewClock func() clock.Clock
	// Journal keeps the accounts and, each within its own prefix, their
	// emulators' records; nil keeps them in memory.
	Journal journal.Journal
}

// Sandbox is the accounts and the handler in front of them.
type Sandbox struct {
	cfg     Config
	admin   [32]byte
	metrics [32]byte
	log     *slog.Logger
	runtime *prometheus.Registry

	handler http.Handler

	mu       sync.RWMutex
	accounts map[string]*member // by ID
	byToken  map[[32]byte]*member

	// What the sandbox routes by, one account's each (registry.go).
	signs       *registry // PayPal messages' verify_sign
	payDoTokens *registry // PayDo projects' lookup tokens
	payDoTxns   *registry // PayDo transaction ids
}

// member is an account and its emulator.
type member struct {
	Account
	token      [32]byte // the SHA-256 of its API token
	payDoToken string   // its default PayDo project's lookup token
	emu        *emulator.Emulator
	jnl        *journal.Scoped // nil in memory
}

// stored is an account's journal record.
type stored struct {
	Account
	TokenSHA256 string `json:"token_sha256"`
	NotifyURL   string `json:"notify_url,omitempty"`
	// PayDoToken is the default PayDo project's lookup token: the
	// account's emulator checks it, so it is kept as it is.
	PayDoToken string `json:"paydo_token,omitempty"`
}

const accountKind = "sandbox.account"

// New opens a sandbox, with the accounts its journal holds.
func New(cfg Config) (*Sandbox, error) {
	if cfg.AdminToken == "" {
		return nil, errors.New("sandbox: an admin token is required")
	}
	if cfg.NewClock == nil {
		cfg.NewClock = func() clock.Clock { return clock.NewScaled(1) }
	}
	log := cfg.Base.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Sandbox{cfg: cfg, admin: sha256.Sum256([]byte(cfg.AdminToken)), log: log,
		accounts: map[string]*member{}, byToken: map[[32]byte]*member{}, runtime: prometheus.NewRegistry(),
		signs: newRegistry("verify_sign"), payDoTokens: newRegistry("lookup token"), payDoTxns: newRegistry("transaction id")}
	if cfg.MetricsToken != "" {
		s.metrics = sha256.Sum256([]byte(cfg.MetricsToken))
	}
	s.runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.handler = s.routes()
	if cfg.Journal != nil {
		var records []stored
		err := cfg.Journal.Scan(accountKind, func(_ string, value []byte) error {
			var r stored
			if err := json.Unmarshal(value, &r); err != nil {
				return err
			}
			records = append(records, r)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sandbox: reading the accounts: %w", err)
		}
		for _, r := range records {
			sum, err := hex.DecodeString(r.TokenSHA256)
			if err != nil || len(sum) != sha256.Size {
				s.Close()
				return nil, fmt.Errorf("sandbox: account %s: bad token hash", r.ID)
			}
			fresh := r.PayDoToken == "" // an account from before each had its own
			if fresh {
				r.PayDoToken = newPayDoToken()
			}
			m, err := s.start(r.Account, r.NotifyURL, r.PayDoToken)
			if err != nil {
				s.Close()
				return nil, err
			}
			copy(m.token[:], sum)
			if fresh {
				if err := s.save(m, r.NotifyURL); err != nil {
					s.Close()
					return nil, err
				}
			}
			s.accounts[m.ID], s.byToken[m.token] = m, m
		}
	}
	return s, nil
}

// start runs an account's emulator.
func (s *Sandbox) start(a Account, notifyURL, payDoToken string) (*member, error) {
	cfg := s.cfg.Base
	cfg.Clock, cfg.Account, cfg.APIToken, cfg.MetricsToken = s.cfg.NewClock(), a.ID, "", ""
	cfg.PayDo.APIToken = payDoToken
	cfg.PayPal.Profile = paypal.Profile{NotifyURL: notifyURL, Enabled: notifyURL != "", ReceiverEmail: a.ReceiverEmail, ReceiverID: a.ReceiverID}
	cfg.Logger = s.log.With("account", a.ID)
	m := &member{Account: a, payDoToken: payDoToken}
	if s.cfg.Journal != nil {
		m.jnl = journal.Within(s.cfg.Journal, "acct/"+a.ID+"/")
		cfg.Journal = m.jnl
	}
	cfg.PayPal.ClaimVerifySign = func(sign string) error {
		return s.claim(s.signs, a.ID, sign, "the same seed in two accounts makes the same message")
	}
	cfg.PayDo.Claim = func(what, key string) error {
		if what == "lookup token" {
			return s.claim(s.payDoTokens, a.ID, key, "lookups find the account by their token")
		}
		return s.claim(s.payDoTxns, a.ID, key, "the same seed in two accounts makes the same transaction")
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: account %s: %w", a.ID, err)
	}
	m.emu = emu
	s.signs.add(a.ID, emu.PayPal().VerifySigns())
	s.payDoTokens.add(a.ID, emu.PayDo().Tokens())
	txns := emu.PayDo().Transactions()
	ids := make([]string, len(txns))
	for i, t := range txns {
		ids[i] = t.ID
	}
	s.payDoTxns.add(a.ID, ids)
	return m, nil
}

// newPayDoToken draws an account's default PayDo project's lookup token.
func newPayDoToken() string { return "ipnlab_paydo_" + randomHex(16) }

// claim gives key to account id in r, unless another account has it:
// the sandbox routes by it, and two accounts' could not be told apart.
func (s *Sandbox) claim(r *registry, id, key, why string) error {
	if !r.claim(id, key) {
		return fmt.Errorf("another account already has %s %s (%s, and the sandbox could not tell whose is whose): use another", r.what, key, why)
	}
	return nil
}

// owner is the one account whose message a postback names: by its
// verify_sign, unique across accounts; else, by txn_id or ipn_track_id,
// when exactly one account has such a message. Never the first of
// several: a message carrying another account's txn_id must not take
// that account's postbacks.
func (s *Sandbox) owner(pb paypal.Postback) *member {
	if sign := paypal.KeysOf(pb).VerifySign; sign != "" {
		if id, ok := s.signs.find(sign); ok {
			return s.member(id)
		}
	}
	var found *member
	for _, m := range s.members() {
		if m.emu.PayPal().Owns(pb) {
			if found != nil {
				return nil
			}
			found = m
		}
	}
	return found
}

var accountName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Create adds an account and returns it with its API token, which is
// shown this once (the sandbox keeps only its hash).
func (s *Sandbox) Create(req NewAccount) (AccountToken, error) {
	if !accountName.MatchString(req.Name) {
		return AccountToken{}, emulator.BadRequest("name %q: want 1 to 40 lower-case letters, digits and dashes, starting with a letter or digit", req.Name)
	}
	if req.ReceiverEmail == "" {
		req.ReceiverEmail = req.Name + "@business.example.com"
	}
	if req.ReceiverID == "" {
		req.ReceiverID = strings.ToUpper(strings.ReplaceAll(req.Name, "-", ""))
		req.ReceiverID = (req.ReceiverID + "MERCHANT0000")[:13]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.accounts {
		if m.Name == req.Name {
			return AccountToken{}, fmt.Errorf("%w: %s", ErrTaken, req.Name)
		}
	}
	a := Account{ID: "A-" + randomHex(6), Name: req.Name, ReceiverEmail: req.ReceiverEmail, ReceiverID: req.ReceiverID, Created: time.Now().UTC().Truncate(time.Second)}
	token := "ipnlab_" + randomHex(24)
	m, err := s.start(a, req.NotifyURL, newPayDoToken())
	if err != nil {
		return AccountToken{}, err
	}
	m.token = sha256.Sum256([]byte(token))
	if err := s.save(m, req.NotifyURL); err != nil {
		m.emu.Close()
		return AccountToken{}, err
	}
	s.accounts[a.ID], s.byToken[m.token] = m, m
	s.log.Info("account created", "account", a.ID, "name", a.Name)
	return AccountToken{Account: a, Token: token, PayDoToken: m.payDoToken}, nil
}

func (s *Sandbox) save(m *member, notifyURL string) error {
	if s.cfg.Journal == nil {
		return nil
	}
	raw, err := json.Marshal(stored{Account: m.Account, TokenSHA256: hex.EncodeToString(m.token[:]), NotifyURL: notifyURL, PayDoToken: m.payDoToken})
	if err != nil {
		return err
	}
	if err := s.cfg.Journal.Write(journal.Entry{Kind: accountKind, Key: m.ID, Value: raw}); err != nil {
		return fmt.Errorf("sandbox: saving account %s: %w", m.ID, err)
	}
	return nil
}

// List returns the accounts, oldest first.
func (s *Sandbox) List() []Account {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Account, 0, len(s.accounts))
	for _, m := range s.accounts {
		out = append(out, m.Account)
	}
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Created.String()+a.ID, b.Created.String()+b.ID) })
	return out
}

// RotateToken gives an account a new token; the old one stops working at
// once.
func (s *Sandbox) RotateToken(id string) (Account, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.accounts[id]
	if !ok {
		return Account{}, "", fmt.Errorf("%w: %s", ErrNoAccount, id)
	}
	token := "ipnlab_" + randomHex(24)
	old := m.token
	m.token = sha256.Sum256([]byte(token))
	if err := s.save(m, m.emu.PayPal().Profile().NotifyURL); err != nil {
		m.token = old
		return Account{}, "", err
	}
	delete(s.byToken, old)
	s.byToken[m.token] = m
	s.log.Info("account token rotated", "account", id)
	return m.Account, token, nil
}

// Delete stops an account's emulator and drops everything it kept.
func (s *Sandbox) Delete(id string) error {
	s.mu.Lock()
	m, ok := s.accounts[id]
	if ok {
		delete(s.accounts, id)
		delete(s.byToken, m.token)
	}
	s.mu.Unlock()
	for _, r := range []*registry{s.signs, s.payDoTokens, s.payDoTxns} {
		r.drop(id)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoAccount, id)
	}
	m.emu.Close()
	if s.cfg.Journal != nil {
		if err := m.jnl.Purge(); err != nil {
			return err
		}
		if err := s.cfg.Journal.Write(journal.Entry{Kind: accountKind, Key: id, Delete: true}); err != nil {
			return fmt.Errorf("sandbox: deleting account %s: %w", id, err)
		}
	}
	s.log.Info("account deleted", "account", id)
	return nil
}

// Emulator is an account's emulator.
func (s *Sandbox) Emulator(id string) (*emulator.Emulator, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.accounts[id]
	if !ok {
		return nil, false
	}
	return m.emu, true
}

// Close stops every account's emulator; the journal stays open (its owner
// closes it).
func (s *Sandbox) Close() {
	_ = s.Shutdown(context.Background())
}

// Shutdown stops every account's emulator, letting running deliveries
// finish within ctx.
func (s *Sandbox) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	members := make([]*member, 0, len(s.accounts))
	for _, m := range s.accounts {
		members = append(members, m)
	}
	s.mu.Unlock()
	var errs []error
	for _, m := range members {
		errs = append(errs, m.emu.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Handler serves the sandbox: the accounts API (admin token), /metrics,
// /healthz, the verifier and PayDo's lookup (by the message or transaction
// they name), the console's page, and each account's control API behind
// its token.
func (s *Sandbox) Handler() http.Handler { return s.handler }

// ServeHTTP serves the sandbox (Handler).
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// EndStreams ends every account's open event streams, which would hold a
// server's shutdown.
func (s *Sandbox) EndStreams() {
	for _, m := range s.members() {
		m.emu.EndStreams()
	}
}

func (s *Sandbox) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", emulator.APIHandler(s.health))
	mux.Handle("/metrics", http.HandlerFunc(s.serveMetrics))
	mux.Handle("POST /api/v1/accounts", s.adminOnly(s.createAccount))
	mux.Handle("GET /api/v1/accounts", s.adminOnly(s.listAccounts))
	mux.Handle("POST /api/v1/accounts/{id}/rotate-token", s.adminOnly(s.rotateToken))
	mux.Handle("DELETE /api/v1/accounts/{id}", s.adminOnly(s.deleteAccount))
	mux.Handle("/api/v1/accounts/", emulator.APIHandler(func(w http.ResponseWriter, r *http.Request) error {
		return emulator.StatusError(http.StatusNotFound, "no endpoint %s %s; accounts: POST|GET /api/v1/accounts, POST /api/v1/accounts/{id}/rotate-token, DELETE /api/v1/accounts/{id}", r.Method, r.URL.Path)
	}))
	mux.Handle("/cgi-bin/webscr", http.HandlerFunc(s.verify))
	mux.Handle("GET /paydo/v1/transactions/{id}", http.HandlerFunc(s.lookup))
	mux.Handle("GET /{$}", console.Handler())
	mux.Handle("GET "+console.Prefix, console.Handler())
	mux.Handle("/", http.HandlerFunc(s.account))
	return mux
}

// bearer reads the request's bearer token, hashed.
func bearer(r *http.Request) ([32]byte, bool) {
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return sha256.Sum256([]byte(given)), ok
}

func (s *Sandbox) isAdmin(r *http.Request) bool {
	got, ok := bearer(r)
	return ok && subtle.ConstantTimeCompare(got[:], s.admin[:]) == 1
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="ipnlab"`)
	emulator.WriteJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"status": http.StatusUnauthorized, "message": msg}})
}

func (s *Sandbox) adminOnly(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	api := emulator.APIHandler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			unauthorized(w, "managing accounts needs the admin token: Authorization: Bearer TOKEN (ipnlab accounts reads IPNLAB_ADMIN_TOKEN)")
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (s *Sandbox) createAccount(w http.ResponseWriter, r *http.Request) error {
	var req NewAccount
	if err := emulator.ReadJSON(w, r, &req); err != nil {
		return err
	}
	at, err := s.Create(req)
	if errors.Is(err, ErrTaken) {
		return emulator.StatusError(http.StatusConflict, "%v", err)
	} else if err != nil {
		return err
	}
	emulator.WriteJSON(w, http.StatusCreated, at)
	return nil
}

func (s *Sandbox) listAccounts(w http.ResponseWriter, _ *http.Request) error {
	emulator.WriteJSON(w, http.StatusOK, api.Accounts{Accounts: s.List()})
	return nil
}

func (s *Sandbox) rotateToken(w http.ResponseWriter, r *http.Request) error {
	a, token, err := s.RotateToken(r.PathValue("id"))
	if errors.Is(err, ErrNoAccount) {
		return emulator.StatusError(http.StatusNotFound, "%v", err)
	} else if err != nil {
		return err
	}
	emulator.WriteJSON(w, http.StatusOK, api.AccountToken{Account: a, Token: token})
	return nil
}

func (s *Sandbox) deleteAccount(w http.ResponseWriter, r *http.Request) error {
	err := s.Delete(r.PathValue("id"))
	if errors.Is(err, ErrNoAccount) {
		return emulator.StatusError(http.StatusNotFound, "%v", err)
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// member is account id's, or nil (several: no account).
func (s *Sandbox) member(id string) *member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.accounts[id]
}

// members is a snapshot of the accounts.
func (s *Sandbox) members() []*member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*member, 0, len(s.accounts))
	for _, m := range s.accounts {
		out = append(out, m)
	}
	return out
}

// account serves an account's control API and console data behind its
// token.
func (s *Sandbox) account(w http.ResponseWriter, r *http.Request) {
	got, ok := bearer(r)
	var m *member
	if ok {
		s.mu.RLock()
		m = s.byToken[got]
		s.mu.RUnlock()
	}
	if m == nil {
		// A call of a provider's own API (PayPal REST's OAuth, verify
		// and certificates) carries its credentials, not the account's
		// API token: the account whose provider claims it.
		m = s.claimant(r)
	}
	switch {
	case m != nil:
		m.emu.ServeHTTP(w, r)
	case !ok:
		unauthorized(w, "this sandbox needs your account's API token: send Authorization: Bearer TOKEN (ipnlab commands read IPNLAB_API_TOKEN)")
	default:
		unauthorized(w, "wrong API token: no account has it")
	}
}

// claimant is the one account whose provider claims r (plugin.Claimer);
// nil when none or several do.
func (s *Sandbox) claimant(r *http.Request) *member {
	var found *member
	for _, m := range s.members() {
		if m.emu.Claims(r) {
			if found != nil {
				return nil
			}
			found = m
		}
	}
	return found
}

// verify hands a postback to the account whose message it names (owner);
// one that names no account's message, or several accounts', is INVALID,
// as PayPal answers it, and no account records it.
func (s *Sandbox) verify(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, emulator.MaxAPIBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("postback larger than %d bytes", emulator.MaxAPIBody), http.StatusRequestEntityTooLarge)
		return
	}
	pb := paypal.Postback{Method: r.Method, RawQuery: r.URL.RawQuery, Body: body, UserAgent: r.UserAgent()}
	if m := s.owner(pb); m != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		m.emu.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "INVALID")
}

// lookup hands PayDo's status lookup to the account whose project's
// token it carries (each account's tokens are its own), which then looks
// for the transaction among that project's. Without a token any account
// has: 401, as PayDo answers.
func (s *Sandbox) lookup(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.payDoTokens.find(paydo.BearerOf(r)); ok {
		if m := s.member(id); m != nil {
			m.emu.ServeHTTP(w, r)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, `{"message":"Unauthorized: send the project's token as Authorization: Bearer TOKEN"}`+"\n")
}

// health is ok when every account's emulator is.
func (s *Sandbox) health(w http.ResponseWriter, r *http.Request) error {
	var stuck []string
	for _, m := range s.members() {
		rec := httptest.NewRecorder()
		m.emu.ServeHTTP(rec, r.Clone(r.Context()))
		if rec.Code != http.StatusOK {
			stuck = append(stuck, m.ID)
		}
	}
	if len(stuck) > 0 {
		slices.Sort(stuck)
		emulator.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "stuck", "accounts": stuck})
		return nil
	}
	emulator.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "accounts": len(s.members())})
	return nil
}

// serveMetrics serves every account's figures and the process's, to the
// admin token or the metrics token.
func (s *Sandbox) serveMetrics(w http.ResponseWriter, r *http.Request) {
	got, ok := bearer(r)
	metricsOK := ok && s.cfg.MetricsToken != "" && subtle.ConstantTimeCompare(got[:], s.metrics[:]) == 1
	if !s.isAdmin(r) && !metricsOK {
		unauthorized(w, "/metrics needs the admin token or the metrics token")
		return
	}
	gatherers := prometheus.Gatherers{s.runtime}
	for _, m := range s.members() {
		gatherers = append(gatherers, m.emu.Metrics().Registry())
	}
	promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))[:2*n]
}
