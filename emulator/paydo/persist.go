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

// saveRegistration writes (or, for url "", removes) a registered URL.
func (s *Service) saveRegistration(kind, name, url string) error {
	if s.cfg.Journal == nil {
		return nil
	}
	if url == "" {
		return s.cfg.Journal.Write(journal.Entry{Kind: kind, Key: name, Delete: true})
	}
	return s.cfg.Journal.Write(journal.Entry{Kind: kind, Key: name, Value: []byte(url)})
}

func (s *Service) saveTransaction(tx *Transaction) error {
	if s.cfg.Journal == nil {
		return nil
	}
	v, err := json.Marshal(tx)
	if err != nil {
		return err
	}
	return s.cfg.Journal.Write(journal.Entry{Kind: KindTransaction, Key: tx.ID, Value: v})
}

func (s *Service) report(err error) {
	if err != nil && s.cfg.OnError != nil {
		s.cfg.OnError(fmt.Errorf("paydo journal: %w", err))
	}
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
