package listener

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/ipnlab/ipnlab/listener/store"
	"github.com/ipnlab/ipnlab/probe"
)

// The probe API is the contract the conformance suite reads at the
// business level (docs/probe.md). Amounts are strings with two decimals.

// ProbeEffect and ProbeTransaction are the probe contract's types.
type (
	ProbeEffect      = probe.Effect
	ProbeTransaction = probe.Transaction
)

func (l *Listener) probeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+probe.TransactionsPath+"{provider}/{txn}", l.probeTransaction)
	mux.HandleFunc("GET "+probe.CustomersPath+"{id}", l.probeCustomer)
	mux.HandleFunc("GET "+probe.IdlePath, l.probeIdle)
	mux.HandleFunc("GET "+probe.LogPath, l.probeLog)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func probeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"status": status, "message": msg}})
}

// Transaction returns the probe view of a transaction.
func (l *Listener) Transaction(ctx context.Context, provider, txnID string) (ProbeTransaction, error) {
	t, err := l.store.Txn(ctx, provider, txnID)
	if err != nil {
		return ProbeTransaction{}, err
	}
	entries, err := l.store.Entries(ctx, provider, txnID)
	if err != nil {
		return ProbeTransaction{}, err
	}
	p := ProbeTransaction{Provider: provider, TxnID: txnID, ParentTxnID: t.ParentID, Status: t.Status, Customer: t.Customer,
		PayerName: t.PayerName, Held: t.Held, Effects: []ProbeEffect{}, Net: map[string]string{}}
	net := map[string]int64{}
	for _, e := range entries {
		p.Effects = append(p.Effects, ProbeEffect{TxnID: e.TxnID, Status: e.Status, Amount: money(e.Amount), Currency: e.Currency, Customer: e.Customer})
		net[e.Currency] += e.Amount
	}
	for c, v := range net {
		p.Net[c] = money(v)
	}
	return p, nil
}

func (l *Listener) probeTransaction(w http.ResponseWriter, r *http.Request) {
	p, err := l.Transaction(r.Context(), r.PathValue("provider"), r.PathValue("txn"))
	if errors.Is(err, store.ErrNotFound) {
		probeError(w, http.StatusNotFound, "no transaction "+r.PathValue("txn")+" from "+r.PathValue("provider"))
		return
	}
	if err != nil {
		probeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (l *Listener) probeCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, err := l.store.Balances(r.Context(), id)
	if err != nil {
		probeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := map[string]string{}
	for c, v := range b {
		out[c] = money(v)
	}
	writeJSON(w, http.StatusOK, probe.Customer{ID: id, Balances: out})
}

func (l *Listener) probeIdle(w http.ResponseWriter, r *http.Request) {
	wait := time.Duration(0)
	if s := r.URL.Query().Get("wait"); s != "" {
		// Whole milliseconds (the contract); a Go duration ("10s") too.
		d, err := time.ParseDuration(s)
		if ms, merr := strconv.ParseInt(s, 10, 64); merr == nil {
			d, err = time.Duration(ms)*time.Millisecond, nil
		}
		if err != nil || d < 0 || d > 5*time.Minute {
			probeError(w, http.StatusBadRequest, "wait "+strconv.Quote(s)+": want whole milliseconds up to 300000 (or a duration such as 10s)")
			return
		}
		wait = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	if txns := r.URL.Query()["txn_id"]; len(txns) > 0 {
		// One check's transactions: other work does not hold it up.
		_ = l.WaitIdleTxns(ctx, txns)
		busy := l.BusyTxns(txns)
		counts, _ := l.store.Counts(r.Context())
		writeJSON(w, http.StatusOK, probe.Idle{Idle: busy == 0, Busy: busy, TxnIDs: txns, Inbox: counts, Knows: probe.ContractFacts})
		return
	}
	_ = l.WaitIdle(ctx)
	counts, _ := l.store.Counts(r.Context())
	busy := l.Busy()
	writeJSON(w, http.StatusOK, probe.Idle{Idle: busy == 0, Busy: busy, Inbox: counts, Knows: probe.ContractFacts})
}

func (l *Listener) probeLog(w http.ResponseWriter, r *http.Request) {
	limit := 1000
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100000 {
			probeError(w, http.StatusBadRequest, "limit "+strconv.Quote(s)+": want 1 to 100000")
			return
		}
		limit = n
	}
	lines, err := l.store.Log(r.Context(), r.URL.Query().Get("txn_id"), limit)
	if err != nil {
		probeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	type line struct {
		InboxID  int64     `json:"inbox_id"`
		Provider string    `json:"provider"`
		TxnID    string    `json:"txn_id"`
		Kind     string    `json:"kind"`
		Status   string    `json:"status"`
		Verdict  string    `json:"verdict"`
		Action   string    `json:"action"`
		Detail   string    `json:"detail"`
		At       time.Time `json:"at"`
	}
	out := make([]line, len(lines))
	for i, x := range lines {
		out[i] = line{x.InboxID, x.Provider, x.TxnID, x.Kind, x.Status, x.Verdict, x.Action, x.Detail, x.At}
	}
	writeJSON(w, http.StatusOK, map[string]any{"log": out})
}
