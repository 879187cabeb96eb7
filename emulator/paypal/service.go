package paypal

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/form"

	"github.com/ipnlab/ipnlab/emulator/watchdog"
)

// Provider is the name PayPal messages carry in delivery records.
const Provider = "paypal"

// Sentinel errors callers branch on; the control API answers each with
// the status it carries.
var (
	ErrNotFound = plugin.StatusError(http.StatusNotFound, "no such message")
	ErrNoTarget = plugin.StatusError(http.StatusBadRequest, "no notification URL: give the message a notify_url or set the profile's URL")
	ErrBadFault = errors.New("bad verifier fault")
	// ErrSignTaken: the message's verify_sign is another account's (a
	// sandbox routes postbacks by it).
	ErrSignTaken = plugin.StatusError(http.StatusConflict, "verify_sign taken")
)

// Profile is the merchant's IPN settings (see api.Profile).
type Profile = api.Profile

// validateProfile reports a profile PayPal would not save.
func validateProfile(p Profile) error {
	if p.NotifyURL != "" {
		if err := delivery.CheckURL(p.NotifyURL); err != nil {
			return fmt.Errorf("profile notify_url: %w", err)
		}
	}
	if p.Enabled && p.NotifyURL == "" {
		return errors.New("profile: notifications cannot be on without a notify_url")
	}
	return nil
}

// Config configures a Service.
type Config struct {
	Clock   clock.Clock
	Engine  *delivery.Engine
	Mode    Mode
	Profile Profile
	// Schedule defaults to PayPal's (15 retries over about three days).
	Schedule delivery.Schedule
	// OnPostback, if set, hears of every postback once it is recorded.
	OnPostback func(PostbackRecord)
	// Journal, if set, keeps messages, postbacks, faults and the profile
	// (see Restore).
	Journal journal.Journal
	// OnError hears of journal writes that failed outside a caller's
	// request (while answering postbacks).
	OnError func(error)
	// Secrets are redacted wherever they appear in a recorded postback's
	// headers or URI (the control API's token): /cgi-bin/webscr needs no
	// token, so a listener that sends one anyway must not leave it in
	// History and the journal.
	Secrets []string
	// Claim, if set, is asked before a message is sent whether its
	// verify_sign may be used: a sandbox routes postbacks by it, so it
	// must be unique across accounts. An error refuses the message.
	Claim func(verifySign string) error
}

// Service is the fake PayPal.
type Service struct {
	cfg    Config
	faults faults

	mu        sync.RWMutex
	profile   Profile
	messages  map[string]*Message
	byVerify  map[string][]*Message
	byTxn     map[string][]*Message
	byTrack   map[string][]*Message
	postbacks []*PostbackRecord
	pbByMsg   map[string][]*PostbackRecord
	pbSeq     int // postbacks recorded, for their ids
	pbGone    int // forgotten postbacks still in the postbacks slice
	// unattached are the kept postbacks of no known message, oldest
	// first (at most MaxUnattached).
	unattached []*PostbackRecord
}

// New returns a Service; Clock and Engine are required.
func New(cfg Config) (*Service, error) {
	if cfg.Clock == nil || cfg.Engine == nil {
		return nil, errors.New("paypal: a clock and a delivery engine are required")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModePayPal
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if err := validateProfile(cfg.Profile); err != nil {
		return nil, err
	}
	if u := cfg.Profile.NotifyURL; u != "" {
		// The same rule as a profile set later: a start-up URL outside
		// the allowlist is refused now, not at the first delivery.
		if err := cfg.Engine.CheckTarget(u); err != nil {
			return nil, fmt.Errorf("profile notify_url: %w", err)
		}
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule()
	}
	cfg.Secrets = slices.DeleteFunc(slices.Clone(cfg.Secrets), func(s string) bool { return s == "" })
	return &Service{
		cfg: cfg, profile: cfg.Profile,
		messages: map[string]*Message{}, byVerify: map[string][]*Message{},
		byTxn: map[string][]*Message{}, byTrack: map[string][]*Message{},
		pbByMsg: map[string][]*PostbackRecord{},
	}, nil
}

// Mode returns the verifier's mode.
func (s *Service) Mode() Mode { return s.cfg.Mode }

// Profile returns the IPN settings.
func (s *Service) Profile() Profile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.profile
}

// SetProfile changes the IPN settings. Messages created while
// notifications were off stay Held unless the profile asks ReleaseHeld.
func (s *Service) SetProfile(p Profile) error {
	if err := validateProfile(p); err != nil {
		return err
	}
	if p.NotifyURL != "" {
		if err := s.cfg.Engine.CheckTarget(p.NotifyURL); err != nil {
			return fmt.Errorf("profile notify_url: %w", err)
		}
	}
	if err := s.saveProfile(p); err != nil {
		return err
	}
	s.mu.Lock()
	s.profile = p
	s.mu.Unlock()
	if !p.Enabled || !p.ReleaseHeld {
		return nil
	}
	for _, id := range s.cfg.Engine.Held() {
		if err := s.cfg.Engine.Release(id, p.NotifyURL); err != nil && !errors.Is(err, delivery.ErrNotHeld) {
			return fmt.Errorf("release held messages: %w", err)
		}
	}
	return nil
}

// Notification is a message to send: Body is the exact bytes.
type Notification struct {
	Body []byte
	// Kind names the message in History; derived from the fields if empty.
	Kind string
	// NotifyURL is the per-payment URL; it wins over the profile's and is
	// used even when notifications are off.
	NotifyURL string
	// Fault, if set, applies to this message's postbacks. It is in force
	// before the first delivery leaves, so a listener that posts back from
	// inside its handler meets it too.
	Fault *Fault
	// Seed is the fixture seed the message was generated from (0: not
	// generated), kept with it so History can replay it.
	Seed uint64
	// Burst, if set, makes its first delivery leave together with the
	// other members' (identical copies racing).
	Burst *delivery.Burst
}

// Send records a message and delivers it (or holds it while notifications
// are off). The body must be valid form encoding in a known charset.
func (s *Service) Send(n Notification) (*Message, delivery.Message, error) {
	if n.Fault != nil {
		if err := n.Fault.Validate(); err != nil {
			return nil, delivery.Message{}, fmt.Errorf("%w: %w", ErrBadFault, err)
		}
	}
	id := newID()
	m, err := newMessage(id, n.Body, n.Kind)
	if err != nil {
		return nil, delivery.Message{}, err
	}
	m.NotifyURL, m.Seed = n.NotifyURL, n.Seed
	m.Created = s.cfg.Clock.Now()
	if s.cfg.Claim != nil && m.VerifySign != "" {
		if err := s.cfg.Claim(m.VerifySign); err != nil {
			return nil, delivery.Message{}, fmt.Errorf("%w: %w", ErrSignTaken, err)
		}
	}

	target, hold := n.NotifyURL, false
	if target == "" {
		p := s.Profile()
		switch {
		case !p.Enabled:
			// Kept with the profile's URL, "the URL associated with the
			// message" that a manual resend goes to.
			target, hold = p.NotifyURL, true
		case p.NotifyURL == "":
			return nil, delivery.Message{}, ErrNoTarget
		default:
			target = p.NotifyURL
		}
	}
	if !hold {
		if err := s.cfg.Engine.CheckTarget(target); err != nil {
			return nil, delivery.Message{}, err
		}
	}
	// The message and its fault are journaled in the delivery's commit:
	// after a restart the verifier knows every message that was sent.
	records, err := s.sendRecords(m, n.Fault)
	if err != nil {
		return nil, delivery.Message{}, fmt.Errorf("send %s: %w", id, err)
	}
	s.register(m)
	if n.Fault != nil {
		f := *n.Fault
		s.faults.set(id, &f)
	}
	// Only 200 acknowledges, in both modes: every source says 200; a 204
	// is retried, with a note on the attempt saying why.
	ack := delivery.Only200
	rec, err := s.cfg.Engine.Submit(delivery.Submission{
		ID: id, Provider: Provider, Kind: m.Kind, TxnID: m.TxnID, URL: target,
		Body: m.Body, ResendBody: m.ResendBody,
		Header:   deliveryHeader,
		Schedule: s.cfg.Schedule, Ack: ack, Hold: hold, Records: records, Burst: n.Burst,
	})
	if err != nil {
		if n.Fault != nil {
			s.faults.set(id, nil)
		}
		s.unregister(m)
		return nil, delivery.Message{}, fmt.Errorf("send %s: %w", id, err)
	}
	return m, rec, nil
}

// deliveryHeader is every delivery's header, shared (the engine keeps it
// as given and nothing changes it).
var deliveryHeader = http.Header{
	"Content-Type": {"application/x-www-form-urlencoded"},
	"User-Agent":   {UserAgent},
}

// Resend sends message id again by hand, with resend=true. url overrides
// the original URL; useProfile sends to the profile's current URL instead.
func (s *Service) Resend(id, url string, useProfile bool) (delivery.Message, error) {
	if _, ok := s.Message(id); !ok {
		return delivery.Message{}, fmt.Errorf("resend %s: %w", id, ErrNotFound)
	}
	if useProfile {
		p := s.Profile()
		if p.NotifyURL == "" {
			return delivery.Message{}, fmt.Errorf("resend %s: %w", id, ErrNoTarget)
		}
		url = p.NotifyURL
	}
	if rec, ok := s.cfg.Engine.Get(id); ok && url == "" && rec.URL == "" {
		return delivery.Message{}, fmt.Errorf("resend %s: it was created while IPN was off and the profile had no URL: %w", id, ErrNoTarget)
	}
	return s.cfg.Engine.Resend(id, url)
}

// Message returns a message by id.
func (s *Service) Message(id string) (*Message, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.messages[id]
	return m, ok
}

// AdoptSeed records the fixture seed of message id where an older journal
// kept it apart; a message it no longer has (evicted) is skipped.
func (s *Service) AdoptSeed(id string, seed uint64) error {
	s.mu.Lock()
	m, ok := s.messages[id]
	if ok && m.Seed == 0 {
		m.Seed = seed
	}
	s.mu.Unlock()
	if !ok {
		return nil
	}
	records, err := s.sendRecords(m, nil)
	if err != nil {
		return err
	}
	return s.write(records...)
}

// SetFault injects f into postbacks of messageID ("" for all messages);
// nil clears it.
func (s *Service) SetFault(messageID string, f *Fault) error {
	if f != nil {
		if err := f.Validate(); err != nil {
			return err
		}
	}
	if messageID != "" {
		if _, ok := s.Message(messageID); !ok {
			return fmt.Errorf("fault for %s: %w", messageID, ErrNotFound)
		}
	}
	s.faults.set(messageID, f)
	return s.saveFault(messageID)
}

// Fault returns the fault set for messageID ("" for the global one).
func (s *Service) Fault(messageID string) *Fault { return s.faults.get(messageID) }

func (s *Service) register(m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages[m.ID] = m
	if m.VerifySign != "" {
		s.byVerify[m.VerifySign] = append(s.byVerify[m.VerifySign], m)
	}
	if m.TxnID != "" {
		s.byTxn[m.TxnID] = append(s.byTxn[m.TxnID], m)
	}
	if m.TrackID != "" {
		s.byTrack[m.TrackID] = append(s.byTrack[m.TrackID], m)
	}
}

func (s *Service) unregister(m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregisterLocked(m)
}

func (s *Service) unregisterLocked(m *Message) {
	delete(s.messages, m.ID)
	drop := func(idx map[string][]*Message, key string) {
		list := idx[key]
		for i, x := range list {
			if x == m {
				idx[key] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(idx[key]) == 0 {
			delete(idx, key)
		}
	}
	drop(s.byVerify, m.VerifySign)
	drop(s.byTxn, m.TxnID)
	drop(s.byTrack, m.TrackID)
}

// Forget drops messages that left the delivery history, with their
// postbacks, from memory and the journal.
func (s *Service) Forget(ids []string) {
	var del []journal.Entry
	// One hold of the lock for the batch: under load, evictions come one
	// per finished message, and every verify and send waits on this lock.
	s.mu.Lock()
	for _, id := range ids {
		m, ok := s.messages[id]
		if !ok {
			continue
		}
		s.unregisterLocked(m)
		for _, p := range s.pbByMsg[id] {
			p.gone = true
			s.pbGone++
			del = append(del, journal.Entry{Kind: KindPostback, Key: p.ID, Delete: true})
		}
		delete(s.pbByMsg, id)
		del = append(del, journal.Entry{Kind: KindMessage, Key: id, Delete: true})
	}
	s.compactLocked()
	s.mu.Unlock()
	if len(del) > 0 {
		s.report(s.write(del...))
	}
}

// compactLocked drops forgotten postbacks from the list once they are
// half of it.
func (s *Service) compactLocked() {
	if s.pbGone > len(s.postbacks)/2 {
		s.postbacks = slices.DeleteFunc(s.postbacks, func(p *PostbackRecord) bool { return p.gone })
		s.pbGone = 0
	}
}

// find looks a postback's message up by verify_sign, then txn_id, then
// ipn_track_id: verify_sign is unique per message, while a txn_id is shared
// by the messages of one lifecycle (Pending, then Completed).
func (s *Service) find(verifySign, txnID, trackID string) []*Message {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, try := range []struct {
		idx map[string][]*Message
		key string
	}{{s.byVerify, verifySign}, {s.byTxn, txnID}, {s.byTrack, trackID}} {
		if try.key == "" {
			continue
		}
		if list := try.idx[try.key]; len(list) > 0 {
			return append([]*Message(nil), list...)
		}
	}
	return nil
}

// Owns reports whether a postback is about a message this service sent
// (found as Check would find it): a sandbox of several accounts sends
// each postback to the account whose message it is.
func (s *Service) Owns(pb Postback) bool { return identify(pb, s.find) != "" }

// VerifySigns lists the verify_sign of every message kept, for a sandbox
// to index them after a restart.
func (s *Service) VerifySigns() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.byVerify))
	for sign := range s.byVerify {
		out = append(out, sign)
	}
	return out
}

// Check judges a postback without recording it.
func (s *Service) Check(pb Postback) Verdict { return check(s.cfg.Mode, pb, s.find) }

// TextFields returns a message's fields decoded to UTF-8.
func (m *Message) TextFields() form.Form { return m.Fields.Text(m.Charset) }

// Responsive reports whether the service's lock can be taken within d
// (see package watchdog).
func (s *Service) Responsive(d time.Duration) bool { return watchdog.Free(&s.mu, d) }
