package flawed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store"
)

// The ledger bugs, each a decoration of the listener's store
// (Config.WrapStore).

// nonUnique is a store whose ledger lost its unique key on payments'
// credits: a credit of a transaction already credited is added again,
// under a key of its own (the first keeps the plain one, so refunds and
// reversals still find it).
type nonUnique struct{ store.Store }

func (s nonUnique) Tx(ctx context.Context, f func(store.Tx) error) error {
	return s.Store.Tx(ctx, func(tx store.Tx) error { return f(nonUniqueTx{tx}) })
}

type nonUniqueTx struct{ store.Tx }

func (tx nonUniqueTx) AddEntry(e store.Entry) (bool, error) {
	if isCredit(e) {
		taken, err := tx.HasEntry(e.Provider, e.TxnID, e.Status)
		if err != nil {
			return false, err
		}
		if taken {
			e.Status = fmt.Sprintf("%s#%d", e.Status, e.InboxID)
		}
	}
	return tx.Tx.AddEntry(e)
}

// isCredit reports whether e credits a PayPal payment (IPN's or a REST
// capture's).
func isCredit(e store.Entry) bool {
	return isIPNCredit(e) || (e.Provider == listener.PayPalREST && e.Status == "COMPLETED")
}

// isIPNCredit reports whether e credits a PayPal IPN payment: the racy
// ledger counts IPN copies only.
func isIPNCredit(e store.Entry) bool { return e.Provider == listener.PayPal && e.Status == "Completed" }

// racy is a store with no transactions and no unique key on credits: the
// listener checks for an earlier credit, then credits, in two steps, and
// concurrent copies of a payment both pass the check.
type racy struct {
	store.Store
	workers int

	mu sync.Mutex
	// pending counts the copies of each transaction stored and not yet
	// processed; racing, those whose worker is between the check and the
	// credit; txnOf, what each stored item counts for.
	pending map[string]int
	racing  map[string]int
	txnOf   map[int64]string
}

func newRacy(e *env, st store.Store) store.Store {
	return &racy{Store: st, workers: e.cfg.Workers, pending: map[string]int{}, racing: map[string]int{}, txnOf: map[int64]string{}}
}

func (s *racy) AddInbox(ctx context.Context, it store.InboxItem) (int64, error) {
	id, err := s.Store.AddInbox(ctx, it)
	if err != nil || it.Provider != listener.PayPal || it.State == store.InboxRejected {
		return id, err
	}
	if f, perr := form.Parse(it.Body); perr == nil {
		if txn, _ := f.Get("txn_id"); txn != "" {
			s.mu.Lock()
			s.pending[txn]++
			s.txnOf[id] = txn
			s.mu.Unlock()
		}
	}
	return id, nil
}

func (s *racy) SetInboxState(ctx context.Context, id int64, state, detail string, attempts int) error {
	s.processed(id, state)
	return s.Store.SetInboxState(ctx, id, state, detail, attempts)
}

// processed counts an item out once it is no longer pending.
func (s *racy) processed(id int64, state string) {
	if state == store.InboxPending {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if txn, ok := s.txnOf[id]; ok {
		delete(s.txnOf, id)
		if s.pending[txn]--; s.pending[txn] <= 0 {
			delete(s.pending, txn)
		}
	}
}

// Tx runs f with no transaction: each step lands on its own.
func (s *racy) Tx(ctx context.Context, f func(store.Tx) error) error {
	return f(racyTx{s: s, ctx: ctx})
}

type racyTx struct {
	s   *racy
	ctx context.Context
}

// step runs one operation in a transaction of its own.
func (tx racyTx) step(op func(store.Tx) error) error { return tx.s.Store.Tx(tx.ctx, op) }

func (tx racyTx) Txn(provider, txnID string) (t store.Txn, err error) {
	err = tx.step(func(in store.Tx) error { t, err = in.Txn(provider, txnID); return err })
	return t, err
}

func (tx racyTx) PutTxn(t store.Txn) error {
	return tx.step(func(in store.Tx) error { return in.PutTxn(t) })
}

func (tx racyTx) Children(provider, parentID string) (kids []store.Txn, err error) {
	err = tx.step(func(in store.Tx) error { kids, err = in.Children(provider, parentID); return err })
	return kids, err
}

func (tx racyTx) HasEntry(provider, txnID, status string) (ok bool, err error) {
	err = tx.step(func(in store.Tx) error { ok, err = in.HasEntry(provider, txnID, status); return err })
	return ok, err
}

func (tx racyTx) AddLog(l store.LogLine) error {
	return tx.step(func(in store.Tx) error { return in.AddLog(l) })
}

func (tx racyTx) SetInboxState(id int64, state, detail string, attempts int) error {
	tx.s.processed(id, state)
	return tx.step(func(in store.Tx) error { return in.SetInboxState(id, state, detail, attempts) })
}

// AddEntry checks for an earlier credit, waits in the window every real
// race has (made wide), then credits with no unique key.
func (tx racyTx) AddEntry(e store.Entry) (added bool, err error) {
	if isIPNCredit(e) {
		credited, err := tx.HasEntry(e.Provider, e.TxnID, e.Status)
		if err != nil || credited {
			return false, err
		}
		tx.s.window(e.TxnID)
	}
	err = tx.step(func(in store.Tx) error { added, err = nonUniqueTx{in}.AddEntry(e); return err })
	return added, err
}

// window waits until every copy of the transaction stored so far is in
// its window too, and 200 ms more for later ones, at most 3 s. Waiting for
// the other copies to be taken up, not only stored, keeps the race when
// the other workers are busy elsewhere: with a fixed window the copies met
// or missed each other depending on what else the listener had to do.
func (s *racy) window(txn string) {
	s.mu.Lock()
	s.racing[txn]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.racing[txn]--; s.racing[txn] <= 0 {
			delete(s.racing, txn)
		}
		s.mu.Unlock()
	}()
	now := time.Now()
	deadline, quiet := now.Add(3*time.Second), now.Add(200*time.Millisecond)
	for t := now; t.Before(deadline); t = time.Now() {
		s.mu.Lock()
		// More copies wait outside while a worker is free to take them.
		waiting := s.pending[txn] > s.racing[txn] && s.racing[txn] < s.workers
		s.mu.Unlock()
		if waiting {
			quiet = t.Add(200 * time.Millisecond)
		} else if !t.Before(quiet) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
