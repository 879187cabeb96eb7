package intercept

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// What the proxy saw. A listener whose postbacks never reach the
// verifier under --intercept has one of three stories, and only the
// proxy can tell them apart: its HTTP client never came (it ignores
// its proxy variables), it came and the TLS handshake failed (it does
// not trust the CA), or it asked for a host the proxy does not serve.
// The proxy keeps every CONNECT and handshake, stamped, for reports.

// TrafficKind is what happened on one proxy connection.
type TrafficKind string

const (
	// Tunnelled is a CONNECT to a served host whose TLS handshake
	// succeeded: the client trusts the CA.
	Tunnelled TrafficKind = "tunnelled"
	// HandshakeFailed is a CONNECT to a served host whose TLS handshake
	// failed; Detail has the client's alert (unknown certificate
	// authority, bad certificate) or the error.
	HandshakeFailed TrafficKind = "handshake failed"
	// Forwarded is a request for a served host's https:// URL sent to
	// the proxy whole, in the clear (absolute form), and answered: no TLS
	// and no CA on that road.
	Forwarded TrafficKind = "forwarded"
	// Refused is a proxy request the proxy does not serve: another host
	// or port, or plain HTTP through the proxy.
	Refused TrafficKind = "refused"
)

// TrafficEvent is one proxy connection's outcome.
type TrafficEvent struct {
	At     time.Time   `json:"at"`
	Kind   TrafficKind `json:"kind"`
	Host   string      `json:"host"`             // what the client asked for (host:port)
	Client string      `json:"client,omitempty"` // the client's address
	Detail string      `json:"detail,omitempty"` // why it failed or was refused
}

// Traffic is what the proxy saw over a span of time.
type Traffic struct {
	Events []TrafficEvent `json:"events"`
}

// Count is how many events of kind there are.
func (t Traffic) Count(kind TrafficKind) int {
	n := 0
	for _, e := range t.Events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// Last is the latest event of kind, if any.
func (t Traffic) Last(kind TrafficKind) (TrafficEvent, bool) {
	for i := len(t.Events) - 1; i >= 0; i-- {
		if t.Events[i].Kind == kind {
			return t.Events[i], true
		}
	}
	return TrafficEvent{}, false
}

// maxTraffic bounds the log: a long-running emulator keeps the newest.
const maxTraffic = 4096

// trafficLog is the proxy's bounded, stamped record.
type trafficLog struct {
	mu     sync.Mutex
	events []TrafficEvent
	now    func() time.Time
}

func (l *trafficLog) add(e TrafficEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.At = l.now()
	if len(l.events) == maxTraffic {
		l.events = append(l.events[:0], l.events[maxTraffic/2:]...)
	}
	l.events = append(l.events, e)
}

func (l *trafficLog) since(t time.Time) Traffic {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out Traffic
	for _, e := range l.events {
		if !e.At.Before(t) {
			out.Events = append(out.Events, e)
		}
	}
	return out
}

// handshakeTimeout bounds a client that connects and says nothing.
const handshakeTimeout = 10 * time.Second

// handshake runs the TLS handshake on a tunnelled connection and
// records its outcome; the connection is served only if it succeeded.
func (p *Proxy) handshake(conn net.Conn, host, client string) (*tls.Conn, bool) {
	tc := tls.Server(conn, p.tlsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		p.traffic.add(TrafficEvent{Kind: HandshakeFailed, Host: host, Client: client, Detail: handshakeReason(err)})
		tc.Close()
		return nil, false
	}
	p.traffic.add(TrafficEvent{Kind: Tunnelled, Host: host, Client: client})
	return tc, true
}

// handshakeReason says why a handshake failed in the client's words: its
// TLS alert when it sent one (a client that does not trust the CA says
// "unknown certificate authority" or "bad certificate").
func handshakeReason(err error) string {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return "the client refused the certificate: " + alert.Error()
	}
	msg := err.Error()
	if i := strings.Index(msg, "remote error: "); i >= 0 {
		return "the client refused the certificate: " + strings.TrimPrefix(msg[i:], "remote error: ")
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the client sent no TLS handshake within " + handshakeTimeout.String()
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), strings.Contains(msg, "bad record MAC"):
		// An alert a client sends as it drops the connection is lost
		// with it, or read as a record that does not decrypt: OpenSSL's
		// curl, refusing the certificate, shows either.
		return "the client broke off the handshake once it had the certificate (" + msg + "): most likely it does not trust the CA"
	}
	return "the handshake failed: " + msg
}
