package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/ipnlab/ipnlab/internal/httpserver"
)

// Server is an Emulator listening on a TCP address.
type Server struct {
	*Emulator
	srv  *http.Server
	ln   net.Listener
	done chan error

	servedOnce sync.Once
	serveErr   error // what Serve returned
}

// served waits for the HTTP server to stop serving, and says why.
func (s *Server) served() error {
	s.servedOnce.Do(func() { s.serveErr = <-s.done })
	return s.serveErr
}

// ErrExposed is returned for a control API that would be served beyond
// loopback without a token.
var ErrExposed = errors.New("not a loopback address: set an API token (--api-token or IPNLAB_API_TOKEN) so the control API is not open to the network")

// CheckExposure is the one rule for every command that serves an
// emulator: its control API may listen beyond loopback only with a
// token, since it sends requests anywhere its allowlist lets it.
func CheckExposure(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if token != "" || host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: %w", addr, ErrExposed)
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves the
// emulator until Shutdown. Beyond loopback it needs cfg.APIToken.
func Start(cfg Config, addr string) (*Server, error) {
	if err := CheckExposure(addr, cfg.APIToken); err != nil {
		return nil, err
	}
	emu, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		emu.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{Emulator: emu, ln: ln, done: make(chan error, 1), srv: HTTPServer(emu.Handler())}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// HTTPServer is an http.Server for h with the emulator's limits (headers
// within 10 s and 64 KiB, a request within a minute, idle connections
// closed after 2 minutes; no write timeout, so event streams and long
// polls stay open), whose Shutdown does not wait on connections that
// never sent a request.
func HTTPServer(h http.Handler) *http.Server { return httpserver.New(h) }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// VerifyURL is where listeners post back.
func (s *Server) VerifyURL() string { return s.URL() + "/cgi-bin/webscr" }

// EndStreams ends the open event streams and long polls, which would
// otherwise hold a server's shutdown for their whole timeout.
func (e *Emulator) EndStreams() { e.stopStreams() }

// Close stops at once: the HTTP server (open connections cut), then the
// emulator (running deliveries stopped, their retries kept). The
// emulator's own Close would leave the HTTP server answering.
func (s *Server) Close() {
	s.stopStreams()
	_ = s.srv.Close()
	s.Emulator.Close()
	_ = s.served()
}

// Shutdown stops accepting requests, lets running requests and deliveries
// finish within ctx (then cuts them short, keeping their retries queued in
// the journal) and records the clock.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams() // or open consoles would hold the shutdown
	err := s.srv.Shutdown(ctx)
	if derr := s.Emulator.Shutdown(ctx); err == nil {
		err = derr
	}
	if serr := s.served(); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
