// Package probe is the probe contract's wire types: the small read-only
// HTTP API a listener serves so that business-level conformance checks can
// ask what it did with the money (docs/probe.md). The reference listener
// serves these types and the conformance suite reads them, so the two
// cannot drift. Amounts are strings with two decimals; debits are
// negative.
package probe

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The contract's paths, under a listener's probe base URL.
const (
	TransactionsPath = "/probe/v1/transactions/" // + {provider}/{txn_id}
	CustomersPath    = "/probe/v1/customers/"    // + {id}
	IdlePath         = "/probe/v1/idle"          // ?wait=MILLISECONDS[&txn_id=...]
	LogPath          = "/probe/v1/log"           // ?txn_id=...&limit=1000
	OrdersPath       = "/probe/v1/orders/"       // + {ref}
)

// ErrNoTransaction is what a probe reader returns for a transaction the
// listener does not know (the API's 404).
var ErrNoTransaction = errors.New("the listener has no such transaction")

// Effect is one balance effect of a transaction.
type Effect struct {
	TxnID    string `json:"txn_id"`
	Status   string `json:"status"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	Customer string `json:"customer"`
}

// Transaction is GET /probe/v1/transactions/{provider}/{txn_id}.
type Transaction struct {
	Provider    string `json:"provider"`
	TxnID       string `json:"txn_id"`
	ParentTxnID string `json:"parent_txn_id,omitempty"`
	// Status is the latest status the listener accepted.
	Status    string `json:"status"`
	Customer  string `json:"customer,omitempty"`
	PayerName string `json:"payer_name,omitempty"` // decoded in the message's charset
	Held      string `json:"held,omitempty"`       // why an effect waits, if one does
	// Effects are this transaction's and its children's (refunds,
	// reversals), oldest first.
	Effects []Effect `json:"effects"`
	// Net sums the effects per currency.
	Net map[string]string `json:"net"`
}

// Order is GET /probe/v1/orders/{ref}: what an order-based shop did with
// an order the harness paid.
type Order struct {
	Ref string `json:"ref"`
	// Paid is whether the shop marked the order paid.
	Paid bool `json:"paid"`
	// Received is what the shop counted as paid for it, by currency.
	Received map[string]string `json:"received"`
}

// ErrNoOrder is what a probe reader returns for an order the shop does
// not have (the API's 404).
var ErrNoOrder = errors.New("the shop has no such order")

// Customer is GET /probe/v1/customers/{id}.
type Customer struct {
	ID       string            `json:"id"`
	Balances map[string]string `json:"balances"`
}

// Idle is GET /probe/v1/idle: whether nothing (or nothing of the
// transactions asked about) is queued, running or waiting to retry.
type Idle struct {
	Idle   bool           `json:"idle"`
	Busy   int            `json:"busy"`
	TxnIDs []string       `json:"txn_ids,omitempty"`
	Inbox  map[string]int `json:"inbox,omitempty"`
	// Knows declares what the probe answers beyond money (Facts); absent,
	// it answers every field of its transactions (ContractFacts).
	Knows []Fact `json:"knows,omitempty"`
}

// Fact is something a probe can answer beyond money. Every probe answers
// money: a transaction's effects and net, and no row for one it never
// moved money for. A shop that records only what it credited knows
// nothing more, and the checks judge it on money alone: what it records
// about money it did not move is judged only where its probe declares
// the fact (docs/probe.md).
type Fact string

// The facts.
const (
	// Statuses: the status of every transaction the listener accepted,
	// credited or not (Denied, Failed, Pending), by the rules of
	// docs/probe.md.
	Statuses Fact = "statuses"
	// Holds: why a payment it did not credit is waiting (held).
	Holds Fact = "holds"
	// PayerNames: the payer's name, decoded in the message's charset.
	PayerNames Fact = "payer_names"
	// Orders: an order-based shop's orders, paid or not, and what it
	// received for each (GET /probe/v1/orders/{ref}).
	Orders Fact = "orders"
)

// Facts are every fact, in the order docs and messages list them.
var Facts = []Fact{Statuses, Holds, PayerNames, Orders}

// ContractFacts are what a probe API answers when it declares nothing:
// every field of its transactions.
var ContractFacts = []Fact{Statuses, Holds, PayerNames}

// ParseFacts reads a list of facts, refusing an unknown or repeated one.
func ParseFacts(names []string) ([]Fact, error) {
	out := make([]Fact, 0, len(names))
	for _, n := range names {
		f := Fact(strings.TrimSpace(n))
		if !slices.Contains(Facts, f) {
			return nil, fmt.Errorf("unknown fact %q; want %s", n, FactList(Facts))
		}
		if slices.Contains(out, f) {
			return nil, fmt.Errorf("fact %s given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// FactList writes facts for a message: "statuses, holds", or "money only".
func FactList(facts []Fact) string {
	if len(facts) == 0 {
		return "money only"
	}
	s := make([]string, len(facts))
	for i, f := range facts {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}
