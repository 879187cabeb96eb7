package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/probe"
)

// Probe reads a listener's probe API (docs/probe.md).
type Probe struct {
	base string
	http *http.Client

	mu    sync.Mutex
	knows []probe.Fact // from its last idle answer; nil: not asked yet
}

// ErrNoTransaction is returned when the probe does not know a transaction.
var ErrNoTransaction = probe.ErrNoTransaction

// ProbeReader is what business expectations read: a listener's probe API
// (Probe), or an adapter over its database (package sqlprobe).
type ProbeReader interface {
	// Transaction is one transaction, or ErrNoTransaction.
	Transaction(ctx context.Context, provider, txnID string) (ProbeTransaction, error)
	// Idle waits (up to wait) until the listener has nothing in progress
	// for txns (and their children), or nothing at all when none are
	// given.
	Idle(ctx context.Context, wait time.Duration, txns ...string) (bool, error)
}

// Drainer is a probe that can tell when the shop has done the work it
// was sent, short of judging that no late write follows: a SQL probe,
// whose Idle must wait out a quiet period at the shop's pace, paces a
// sender by it (bursts, burst.go).
type Drainer interface {
	Drained(ctx context.Context, wait time.Duration, txn string) (bool, error)
}

// Knower is a probe that says what it answers beyond money. A probe that
// does not is taken to answer every field of the contract.
type Knower interface {
	Knows() []probe.Fact
}

// KnowsOf is what p answers beyond money.
func KnowsOf(p ProbeReader) []probe.Fact {
	if k, ok := p.(Knower); ok {
		return k.Knows()
	}
	return probe.ContractFacts
}

// BalanceReader is a probe that also reads a customer's balances (the
// probe API's /customers/{id}, or a SQL probe map's balances query).
type BalanceReader interface {
	// Balances are the customer's balances by currency, as amounts; an
	// unknown customer has none.
	Balances(ctx context.Context, customer string) (map[string]string, error)
}

// BalancesOf is p's balance reader, if it reads balances: a SQL probe
// whose map has no balances query says so (ReadsBalances).
func BalancesOf(p ProbeReader) (BalanceReader, bool) {
	br, ok := p.(BalanceReader)
	if r, says := p.(interface{ ReadsBalances() bool }); ok && says && !r.ReadsBalances() {
		return nil, false
	}
	return br, ok
}

// NewProbe returns a client for the probe API under base.
func NewProbe(base string) (*Probe, error) { return NewProbeWith(base, nil) }

// NewProbeWith is NewProbe sending through client's transport and redirect
// rule (an emulator's Outgoing client, which keeps to its allowlist); nil
// uses the default transport.
func NewProbeWith(base string, client *http.Client) (*Probe, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("probe URL %q: want http://host:port", base)
	}
	c := &http.Client{Timeout: 6 * time.Minute}
	if client != nil {
		c.Transport, c.CheckRedirect = client.Transport, client.CheckRedirect
	}
	return &Probe{base: strings.TrimRight(base, "/"), http: c}, nil
}

// ErrNoProbe is a probe URL where the listener serves no probe: it
// answered 501, or its idle path answered a web page.
var ErrNoProbe = errors.New("your listener serves no probe at this URL")

func orType(contentType string) string {
	if contentType == "" {
		return "no Content-Type"
	}
	return contentType
}

// foreignExcerpt is at most this much of a probe's unexpected answer in an
// error: the harness must not relay what another server says.
const foreignExcerpt = 200

// excerpt labels and bounds a foreign answer for an error message.
func excerpt(raw []byte) string {
	text := strings.TrimSpace(string(raw))
	if len(text) <= foreignExcerpt {
		return fmt.Sprintf("the probe answered %q", text)
	}
	return fmt.Sprintf("the probe answered %q (and %d bytes more)", text[:foreignExcerpt], len(text)-foreignExcerpt)
}

// ProbeEffect and ProbeTransaction are the probe contract's types.
type (
	ProbeEffect      = probe.Effect
	ProbeTransaction = probe.Transaction
)

func (p *Probe) get(ctx context.Context, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("probe %s: %w", path, err)
	}
	html := strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "html")
	if resp.StatusCode == http.StatusNotImplemented || (html && strings.HasPrefix(path, probe.IdlePath)) {
		return resp.StatusCode, fmt.Errorf("%w (%s%s answered HTTP %d, %s): leave out --probe, or see docs/probe.md", ErrNoProbe, p.base, path, resp.StatusCode, orType(resp.Header.Get("Content-Type")))
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("probe %s: HTTP %d: %s", path, resp.StatusCode, excerpt(raw))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, fmt.Errorf("probe %s: not the probe's JSON (%v): %s", path, err, excerpt(raw))
	}
	return resp.StatusCode, nil
}

// Transaction reads one transaction.
func (p *Probe) Transaction(ctx context.Context, provider, txnID string) (ProbeTransaction, error) {
	var t ProbeTransaction
	code, err := p.get(ctx, probe.TransactionsPath+url.PathEscape(provider)+"/"+url.PathEscape(txnID), &t)
	if code == http.StatusNotFound {
		return t, ErrNoTransaction
	}
	return t, err
}

// Balances reads a customer's balances; a 404 is a customer with none.
func (p *Probe) Balances(ctx context.Context, customer string) (map[string]string, error) {
	var c probe.Customer
	code, err := p.get(ctx, probe.CustomersPath+url.PathEscape(customer), &c)
	if code == http.StatusNotFound {
		return map[string]string{}, nil
	}
	return c.Balances, err
}

// Order reads one order of a shop that keeps orders.
func (p *Probe) Order(ctx context.Context, ref string) (probe.Order, error) {
	var o probe.Order
	code, err := p.get(ctx, probe.OrdersPath+url.PathEscape(ref), &o)
	if code == http.StatusNotFound {
		return o, probe.ErrNoOrder
	}
	return o, err
}

// Idle waits (up to wait) until the listener has nothing in progress for
// txns (and their children), or nothing at all when none are given. A
// listener that does not know the txn_id parameter answers for all its
// work, which is slower but still true.
func (p *Probe) Idle(ctx context.Context, wait time.Duration, txns ...string) (bool, error) {
	var out probe.Idle
	// Whole milliseconds, an integer any language parses (docs/probe.md);
	// rounded up, so that a short wait is not asked as none.
	q := url.Values{"wait": {strconv.FormatInt(int64((max(wait, 0)+time.Millisecond-1)/time.Millisecond), 10)}}
	for _, t := range txns {
		q.Add("txn_id", t)
	}
	_, err := p.get(ctx, probe.IdlePath+"?"+q.Encode(), &out)
	if err == nil {
		knows := probe.ContractFacts
		if out.Knows != nil {
			knows = out.Knows
		}
		p.mu.Lock()
		p.knows = knows
		p.mu.Unlock()
	}
	return out.Idle, err
}

// Knows is what the probe declared in its last idle answer (knows), or
// every field of its transactions when it declared nothing (or was not
// asked yet).
func (p *Probe) Knows() []probe.Fact {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.knows == nil {
		return probe.ContractFacts
	}
	return p.knows
}
