package paypalrest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ipnlab/ipnlab/internal/httpserver"
)

// The attacker: a key of its own, and its certificate (self-signed, with
// PayPal's name on it) served from a host that is not PayPal's, a
// loopback server of this provider's standing for the attacker's, its
// URL mentioning paypal.com in its path. A listener that fetches and
// trusts a certificate from any PAYPAL-CERT-URL takes its forgeries
// (SendRequest.Tamper "foreign_cert").

// startAttacker starts the attacker's server, once.
func (p *Plugin) startAttacker() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.attacker != nil {
		return nil
	}
	key, err := p.freshKeyLocked()
	if err != nil {
		return fmt.Errorf("the attacker's key: %w", err)
	}
	s, err := newSigner(time.Now(), nil, key)
	if err != nil {
		return fmt.Errorf("the attacker's key: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("the attacker's host: %w", err)
	}
	s.at = "http://" + ln.Addr().String() + "/paypal.com/certs/" + s.Name
	pemBytes := s.CertPEM()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /paypal.com/certs/"+s.Name, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pemBytes)
	})
	srv := httpserver.New(mux)
	p.attackerSrv = srv
	go func() { _ = srv.Serve(ln) }()
	p.attacker = s
	return nil
}

// attackerLocked is the attacker's signer (p.mu held).
func (p *Plugin) attackerLocked() (*signer, error) {
	if p.attacker == nil {
		return nil, errors.New("a forgery of the attacker's: its host is not running (restarted since?)")
	}
	return p.attacker, nil
}

// Close stops the attacker's server (the emulator closes its providers).
func (p *Plugin) Close() error {
	p.mu.Lock()
	srv := p.attackerSrv
	p.attackerSrv = nil
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
