package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is an Emulator listening on a TCP address.
type Server struct {
	*Emulator
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves the
// emulator until Shutdown.
func Start(cfg Config, addr string) (*Server, error) {
	emu, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		emu.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{Emulator: emu, ln: ln, done: make(chan error, 1)}
	s.srv = &http.Server{
		Handler:           emu.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		// No WriteTimeout: event streams and long polls stay open.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// VerifyURL is where listeners post back.
func (s *Server) VerifyURL() string { return s.URL() + "/cgi-bin/webscr" }

// Shutdown stops accepting requests, lets running requests and deliveries
// finish within ctx (then cuts them short, keeping their retries queued in
// the journal) and records the clock.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams() // or open consoles would hold the shutdown
	err := s.srv.Shutdown(ctx)
	if derr := s.Emulator.Shutdown(ctx); err == nil {
		err = derr
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
