package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/ipnlab/ipnlab/emulator"
)

// Server is a Sandbox listening on a TCP address.
type Server struct {
	*Sandbox
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Start opens a sandbox and serves it on addr ("127.0.0.1:0" picks a free
// port) until Shutdown.
func Start(cfg Config, addr string) (*Server, error) {
	sb, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		sb.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &Server{Sandbox: sb, ln: ln, done: make(chan error, 1), srv: emulator.HTTPServer(sb.Handler())}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Shutdown stops accepting requests, then stops every account's emulator
// within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.EndStreams() // or open consoles would hold the shutdown
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return errors.Join(err, s.Sandbox.Shutdown(ctx))
}
