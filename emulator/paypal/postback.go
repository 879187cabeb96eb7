package paypal

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/journal"
)

// MaxPostbackBytes bounds a postback body; a real IPN is a few KiB.
const MaxPostbackBytes = 1 << 20

// PostbackRecord is what the verifier saw and answered.
type PostbackRecord struct {
	api.Postback

	gone bool // forgotten: its message left the history, or it was an old unattached one
}

// Postbacks that match no message are kept for diagnosis, but bounded:
// /cgi-bin/webscr needs no token, so anyone could otherwise grow the
// emulator's memory and journal without end.
const (
	MaxUnattached     = 1000    // the newest kept
	MaxUnattachedBody = 4 << 10 // bytes of each body kept
)

// PostbacksPage returns up to limit postbacks of messageID ("" for all;
// with unattached, only those that matched no message) recorded after the
// one with sequence number after (0: from the first), oldest first, and
// the sequence number to pass next (0 when none is left).
func (s *Service) PostbacksPage(messageID string, unattached bool, after, limit int) (page []PostbackRecord, next int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	src := s.postbacks
	if messageID != "" {
		src = s.pbByMsg[messageID]
	}
	i, _ := slices.BinarySearchFunc(src, after+1, func(p *PostbackRecord, seq int) int { return p.seq() - seq })
	for ; i < len(src); i++ {
		if src[i].gone || (unattached && src[i].MessageID != "") {
			continue
		}
		if len(page) == limit {
			return page, page[len(page)-1].seq()
		}
		page = append(page, *src[i])
	}
	return page, 0
}

// seq is the postback's sequence number, from its id PBn.
func (p *PostbackRecord) seq() int {
	n, _ := strconv.Atoi(strings.TrimPrefix(p.ID, "PB"))
	return n
}

// Answer is what one postback of a message got: the verdict and any
// fault the verifier was told to answer with.
type Answer struct {
	Verdict Verdict
	Fault   FaultKind
}

// Answers lists what message id's postbacks got, oldest first: the cheap
// read a message's outcome needs (no headers, no bodies copied).
func (s *Service) Answers(messageID string) []Answer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	src := s.pbByMsg[messageID]
	if len(src) == 0 {
		return nil
	}
	out := make([]Answer, 0, len(src))
	for _, p := range src {
		if !p.gone {
			out = append(out, Answer{p.Verdict, p.Fault})
		}
	}
	return out
}

// Wire is records as the API shows them.
func Wire(records []PostbackRecord) []api.Postback {
	out := make([]api.Postback, len(records))
	for i, r := range records {
		out[i] = r.Postback
	}
	return out
}

// Postbacks returns the postbacks of message id ("" for all), oldest first.
func (s *Service) Postbacks(messageID string) []PostbackRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	src := s.postbacks
	if messageID != "" {
		src = s.pbByMsg[messageID]
	}
	out := make([]PostbackRecord, 0, len(src))
	for _, p := range src {
		if !p.gone {
			out = append(out, *p)
		}
	}
	return out
}

// readBody reads a request body in one allocation when its length is
// announced (a postback's is), growing as io.ReadAll does otherwise.
func readBody(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 || length > MaxPostbackBytes {
		return io.ReadAll(r)
	}
	buf := make([]byte, length, length+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("the body ended before its Content-Length: %w", err)
		}
		return nil, err
	}
	// The body should end here; anything more (the server refuses it for
	// a request) is read as ReadAll would.
	var one [1]byte
	n, err := r.Read(one[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return buf, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	rest, err := io.ReadAll(r)
	return append(append(buf, one[:n]...), rest...), err
}

// ServeHTTP is the verifier at /cgi-bin/webscr.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxPostbackBytes), r.ContentLength)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("postback larger than %d bytes", MaxPostbackBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the postback: "+err.Error(), http.StatusBadRequest)
		return
	}
	// A secret the listener sent along is taken out before anything is
	// judged or kept: verdicts quote what they find.
	if len(s.cfg.Secrets) > 0 {
		body = []byte(s.redact(string(body)))
	}
	endpoint, legacy := EndpointOf(r.Host)
	pb := Postback{Method: r.Method, RawQuery: s.redact(r.URL.RawQuery), Body: body, UserAgent: s.redact(r.UserAgent()), Endpoint: endpoint, Host: r.Host}
	v := s.Check(pb)
	rec := &PostbackRecord{Postback: api.Postback{
		Time: s.cfg.Clock.Now(), MessageID: v.MessageID, Method: r.Method, URI: s.redact(r.URL.RequestURI()),
		Host: r.Host, Endpoint: endpoint, Header: s.redactHeader(r.Header), Body: body, Verdict: v,
	}}
	if legacy && s.cfg.Mode == ModeStrict {
		// The documentation's letter: the legacy host redirects to the
		// current one, and a client that follows with a GET loses the body.
		to := "https://" + HostOf(endpoint) + r.URL.RequestURI()
		rec.Verdict = Verdict{Result: Invalid, MessageID: v.MessageID, Rule: RuleLegacyHost, Findings: []Finding{{Rule: RuleLegacyHost, Fatal: true,
			Expected: HostOf(endpoint), Got: r.Host,
			Detail: fmt.Sprintf("%s is PayPal's legacy verify host: it redirects to %s, and a client that follows the redirect with a GET posts nothing back", r.Host, to)}}}
		rec.Status = http.StatusFound
		s.record(rec)
		http.Redirect(w, r, to, http.StatusFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rec.Status, rec.Answer = http.StatusMethodNotAllowed, "postback must be a POST\n"
		s.record(rec)
		http.Error(w, "postback must be a POST", http.StatusMethodNotAllowed)
		return
	}

	fault, used, counted := s.faults.take(v.MessageID)
	if counted {
		s.report(s.saveFault(used))
	}
	rec.Fault = fault.Kind
	status, answer := http.StatusOK, string(v.Result)
	switch fault.Kind {
	case FaultInvalid:
		answer = string(Invalid)
	case FaultStatus500:
		status = http.StatusInternalServerError
	case FaultNewline:
		answer += "\n"
	case FaultGarbage:
		answer = "<html><body><h1>Service Temporarily Unavailable</h1></body></html>"
	case FaultUnavailable:
		status, answer = http.StatusServiceUnavailable, "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>"
	case FaultSlow:
		t := time.NewTimer(fault.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	case FaultDrop:
		s.record(rec)
		// Aborting the handler closes the connection with no response.
		panic(http.ErrAbortHandler)
	}
	rec.Status, rec.Answer = status, answer
	if err := s.record(rec); err != nil {
		// An answer the store did not take is never given: a verifier
		// that lost its store (another process leads now) would answer
		// VERIFIED where History shows nothing. The listener asks again.
		http.Error(w, "the verifier could not record this postback: ask again", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(answer)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

// Redacted replaces a credential in what the verifier keeps.
const Redacted = "[redacted]"

// credentialHeaders never keep their values.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Api-Token"}

// redactHeader copies h without credentials: the values of credential
// headers, and the configured secrets wherever else they appear.
func (s *Service) redactHeader(h http.Header) http.Header {
	// Most postbacks carry nothing to hide: keep the request's own map
	// (net/http makes one per request and never reuses it).
	clean := len(s.cfg.Secrets) == 0
	for _, k := range credentialHeaders {
		clean = clean && len(h[k]) == 0
	}
	if clean {
		return h
	}
	out := h.Clone()
	if len(s.cfg.Secrets) > 0 {
		for _, vs := range out {
			for i, v := range vs {
				vs[i] = s.redact(v)
			}
		}
	}
	for _, k := range credentialHeaders {
		for i := range out[k] {
			out[k][i] = Redacted
		}
	}
	return out
}

func (s *Service) redact(v string) string {
	for _, secret := range s.cfg.Secrets {
		v = strings.ReplaceAll(v, secret, Redacted)
	}
	return v
}

// record keeps a postback and journals it, returning the journal's error
// (also reported).

func (s *Service) record(p *PostbackRecord) error {
	p.Received = p.Answered()
	if p.MessageID == "" && len(p.Body) > MaxUnattachedBody {
		p.BodyBytes, p.Body = len(p.Body), p.Body[:MaxUnattachedBody:MaxUnattachedBody]
	}
	s.mu.Lock()
	s.pbSeq++
	p.ID = "PB" + strconv.Itoa(s.pbSeq)
	s.postbacks = append(s.postbacks, p)
	var dropped *PostbackRecord
	if p.MessageID != "" {
		s.pbByMsg[p.MessageID] = append(s.pbByMsg[p.MessageID], p)
	} else {
		s.unattached = append(s.unattached, p)
		if len(s.unattached) > MaxUnattached {
			dropped = s.unattached[0]
			s.unattached[0] = nil
			s.unattached = s.unattached[1:]
			dropped.gone = true
			s.pbGone++
			s.compactLocked()
		}
	}
	snap := *p
	// Queued under the lock, in order; the commit is waited for after
	// it, so that no send, verify or History read waits on the disk.
	records, err := s.postbackRecords(p)
	if dropped != nil {
		records = append(records, journal.Entry{Kind: KindPostback, Key: dropped.ID, Delete: true})
	}
	wait := journal.Enqueue(s.cfg.Journal, records...)
	s.mu.Unlock()
	err = errors.Join(err, wait())
	s.report(err)
	if s.cfg.OnPostback != nil {
		s.cfg.OnPostback(snap)
	}
	return err
}
