// Package httpserver makes the HTTP servers ipnlab runs: the limits they
// share, and a shutdown that does not wait on connections that never sent
// a request.
package httpserver

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// New is an http.Server for h with ipnlab's limits: headers within 10 s
// and 64 KiB, a request within a minute, idle connections closed after 2
// minutes; no write timeout, so event streams and long polls stay open.
// Its Shutdown closes spare connections at once (see CloseSpareOnShutdown).
func New(h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	CloseSpareOnShutdown(srv)
	return srv
}

// CloseSpareOnShutdown makes srv.Shutdown close at once the connections
// that have not sent a request yet. An HTTP client dials a spare
// connection when a request waits and keeps it for later if another frees
// up first; net/http's Shutdown counts such a connection as busy for its
// first 5 seconds, so every conformance run ended 5 s late once a
// listener's client had one. A request on a connection that did send one
// is still waited for. It replaces srv.ConnState, chaining any set before.
func CloseSpareOnShutdown(srv *http.Server) {
	var mu sync.Mutex
	spare := map[net.Conn]struct{}{}
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		if st == http.StateNew {
			spare[c] = struct{}{}
		} else {
			delete(spare, c)
		}
		mu.Unlock()
		if next != nil {
			next(c, st)
		}
	}
	srv.RegisterOnShutdown(func() {
		mu.Lock()
		defer mu.Unlock()
		for c := range spare {
			_ = c.Close()
		}
	})
}
