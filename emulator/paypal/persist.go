package paypal

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/delivery"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// Journal kinds the fake PayPal writes.
const (
	KindMessage  = "paypal.message"
	KindPostback = "paypal.postback"
	KindFault    = "paypal.fault"
	KindProfile  = "paypal.profile"
)

// globalFaultKey is the journal key of the fault for every message.
const globalFaultKey = "*"

// storedMessage is what a message is rebuilt from: its exact bytes are
// the delivery engine's record of it (delivery.Bodies), written in the
// same commit; journals written before that hold them here.
type storedMessage struct {
	Body      []byte    `json:"body,omitempty"`
	Kind      string    `json:"kind"`
	NotifyURL string    `json:"notify_url,omitempty"`
	Created   time.Time `json:"created"`
	Seed      uint64    `json:"seed,omitempty"`
}

func (s *Service) write(entries ...journal.Entry) error {
	if s.cfg.Journal == nil {
		return nil
	}
	return s.cfg.Journal.Write(entries...)
}

// sendRecords are the journal records of a message being sent, and of its
// fault if it has one; the delivery engine writes them with the message.
func (s *Service) sendRecords(m *Message, fault *Fault) ([]journal.Entry, error) {
	if s.cfg.Journal == nil {
		return nil, nil
	}
	v, err := json.Marshal(storedMessage{Kind: m.Kind, NotifyURL: m.NotifyURL, Created: m.Created, Seed: m.Seed})
	if err != nil {
		return nil, err
	}
	records := []journal.Entry{{Kind: KindMessage, Key: m.ID, Value: v}}
	if fault != nil {
		fv, err := json.Marshal(fault)
		if err != nil {
			return nil, fmt.Errorf("fault: %w", err)
		}
		records = append(records, journal.Entry{Kind: KindFault, Key: m.ID, Value: fv})
	}
	return records, nil
}

// postbackRecords is a postback's journal record (none without a
// journal).
func (s *Service) postbackRecords(p *PostbackRecord) ([]journal.Entry, error) {
	if s.cfg.Journal == nil {
		return nil, nil
	}
	v, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return []journal.Entry{{Kind: KindPostback, Key: p.ID, Value: v}}, nil
}

// saveFault writes the fault now set under key ("" global).
func (s *Service) saveFault(key string) error {
	if s.cfg.Journal == nil {
		return nil
	}
	jkey := key
	if key == "" {
		jkey = globalFaultKey
	}
	f := s.faults.exact(key)
	if f == nil {
		return s.write(journal.Entry{Kind: KindFault, Key: jkey, Delete: true})
	}
	v, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.write(journal.Entry{Kind: KindFault, Key: jkey, Value: v})
}

func (s *Service) saveProfile(p Profile) error {
	if s.cfg.Journal == nil {
		return nil
	}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.write(journal.Entry{Kind: KindProfile, Key: "profile", Value: v})
}

func (s *Service) report(err error) {
	if err != nil && s.cfg.OnError != nil {
		s.cfg.OnError(fmt.Errorf("paypal journal: %w", err))
	}
}

// Restore loads messages, postbacks, faults and the profile from the
// journal. A profile given in Config wins over the journal's when its
// NotifyURL is set (the command line says where to deliver now).
func (s *Service) Restore() (messages, postbacks int, err error) {
	j := s.cfg.Journal
	if j == nil {
		return 0, 0, fmt.Errorf("paypal restore: no journal")
	}
	var stale []journal.Entry
	bodies, err := delivery.Bodies(j)
	if err != nil {
		return 0, 0, fmt.Errorf("paypal restore: %w", err)
	}
	err = j.Scan(KindMessage, func(id string, value []byte) error {
		var st storedMessage
		if err := json.Unmarshal(value, &st); err != nil {
			return err
		}
		if st.Body == nil {
			body, ok := bodies[id]
			if !ok {
				// Evicted: the engine's records left first, and a stop
				// came before this one's (eviction deletes both).
				stale = append(stale, journal.Entry{Kind: KindMessage, Key: id, Delete: true})
				return nil
			}
			st.Body = body
		}
		m, err := newMessage(id, st.Body, st.Kind)
		if err != nil {
			return err
		}
		m.NotifyURL, m.Created, m.Seed = st.NotifyURL, st.Created, st.Seed
		s.register(m)
		messages++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("paypal restore: %w", err)
	}
	if err := s.write(stale...); err != nil {
		return 0, 0, fmt.Errorf("paypal restore: %w", err)
	}
	err = j.Scan(KindPostback, func(_ string, value []byte) error {
		var p PostbackRecord
		if err := json.Unmarshal(value, &p); err != nil {
			return err
		}
		s.mu.Lock()
		if n, err := strconv.Atoi(strings.TrimPrefix(p.ID, "PB")); err == nil && n > s.pbSeq {
			s.pbSeq = n
		}
		s.postbacks = append(s.postbacks, &p)
		if p.MessageID != "" {
			s.pbByMsg[p.MessageID] = append(s.pbByMsg[p.MessageID], &p)
		}
		s.mu.Unlock()
		postbacks++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("paypal restore: %w", err)
	}
	s.orderPostbacks()
	err = j.Scan(KindFault, func(key string, value []byte) error {
		var f Fault
		if err := json.Unmarshal(value, &f); err != nil {
			return err
		}
		if key == globalFaultKey {
			key = ""
		}
		s.faults.set(key, &f)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("paypal restore: %w", err)
	}
	err = j.Scan(KindProfile, func(_ string, value []byte) error {
		var p Profile
		if err := json.Unmarshal(value, &p); err != nil {
			return err
		}
		s.mu.Lock()
		if s.cfg.Profile.NotifyURL == "" {
			s.profile = p
		}
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("paypal restore: %w", err)
	}
	return messages, postbacks, nil
}

// orderPostbacks puts restored postbacks back in the order they were
// recorded (the journal scans keys as text: PB10 before PB2) and finds the
// unattached ones again.
func (s *Service) orderPostbacks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	bySeq := func(a, b *PostbackRecord) int { return a.seq() - b.seq() }
	slices.SortFunc(s.postbacks, bySeq)
	for _, list := range s.pbByMsg {
		slices.SortFunc(list, bySeq)
	}
	s.unattached = s.unattached[:0]
	for _, p := range s.postbacks {
		if p.MessageID == "" {
			s.unattached = append(s.unattached, p)
		}
	}
}
