package paydo

import (
	"encoding/json"
	"fmt"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// Journal kinds the fake PayDo writes.
const (
	KindProject     = "paydo.project"
	KindUser        = "paydo.user"
	KindTransaction = "paydo.transaction"
	KindToken       = "paydo.token"
)

// registrationRecord keeps (or, for value "", removes) a registration:
// a URL, or a project's token.
func registrationRecord(kind, name, value string) journal.Entry {
	if value == "" {
		return journal.Entry{Kind: kind, Key: name, Delete: true}
	}
	return journal.Entry{Kind: kind, Key: name, Value: []byte(value)}
}

// transactionRecords is a transaction's journal record (none without a
// journal), made under the lock: its message's commit carries it.
func (s *Service) transactionRecords(tx *Transaction) ([]journal.Entry, error) {
	if s.cfg.Journal == nil {
		return nil, nil
	}
	v, err := json.Marshal(tx)
	if err != nil {
		return nil, err
	}
	return []journal.Entry{{Kind: KindTransaction, Key: tx.ID, Value: v}}, nil
}

// Restore loads registrations and transactions from the journal.
func (s *Service) Restore() (transactions int, err error) {
	j := s.cfg.Journal
	if j == nil {
		return 0, fmt.Errorf("paydo restore: no journal")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for kind, into := range map[string]map[string]string{KindProject: s.projects, KindUser: s.users, KindToken: s.tokens} {
		err := j.Scan(kind, func(name string, value []byte) error {
			into[name] = string(value)
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("paydo restore: %w", err)
		}
	}
	err = j.Scan(KindTransaction, func(key string, value []byte) error {
		tx := &Transaction{}
		if err := json.Unmarshal(value, tx); err != nil {
			return err
		}
		s.txs[key] = tx
		if tx.TxID != "" {
			s.byTxID[tx.TxID] = tx
		}
		transactions++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("paydo restore: %w", err)
	}
	return transactions, nil
}
