// Package replica runs one of several emulator processes over one
// PostgreSQL store, so that a process can die or be redeployed without
// stopping deliveries. The replicas elect a leader with the store's
// writer lock (package pgjournal): the leader runs the emulator on the
// store, makes every attempt and answers every request; the others stand
// by, forward every request to the leader (the API, postbacks, event
// streams: any replica answers anything, and History is the same from
// each), and try for the lock. When the leader dies its lock goes with
// its connection; a standby takes it, restores the store as any restart
// does (an attempt cut by the death is recorded as interrupted and
// retried on its schedule) and announces itself.
//
// This is active/standby: one process does the work, the others add
// availability, not throughput.
package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
)

// Service is what the leader runs on the store: an emulator, or a
// sandbox of accounts (package sandbox).
type Service interface {
	http.Handler
	// EndStreams ends open event streams, which would hold a shutdown.
	EndStreams()
	Shutdown(ctx context.Context) error
}

// Config shapes a replica.
type Config struct {
	// Emulator is the emulator it runs while it leads; the store becomes
	// its journal. With Serve set, only its Logger is used (the
	// replica's own log).
	Emulator emulator.Config
	// Serve, if set, starts what the leader runs on the store instead
	// (a sandbox of accounts).
	Serve func(store journal.Journal) (Service, error)
	// Store is the shared store, connected (pgjournal.Connect), not led.
	Store *pgjournal.Postgres
	// Advertise is the base URL the other replicas forward to (default:
	// http:// and the listening address).
	Advertise string
	// Poll is how often a standby tries for the lock and a leader checks
	// it still holds it (default 250 ms).
	Poll time.Duration
}

// Replica is one process of the set, listening on its address.
type Replica struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener
	srv *http.Server

	mu     sync.RWMutex
	emu    Service       // while leading
	leader *url.URL      // the announced leader, while standing by
	led    chan struct{} // closed when it first leads

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Start listens on addr and joins the set: it leads if no process does,
// else stands by.
func Start(cfg Config, addr string) (*Replica, error) {
	if cfg.Store == nil {
		return nil, errors.New("replica: a PostgreSQL store is required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	log := cfg.Emulator.Logger
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if cfg.Advertise == "" {
		cfg.Advertise = "http://" + ln.Addr().String()
	}
	r := &Replica{cfg: cfg, log: log, ln: ln, led: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	r.srv = emulator.HTTPServer(r)
	go func() { _ = r.srv.Serve(ln) }()
	go r.run()
	return r, nil
}

// Addr is the address it listens on.
func (r *Replica) Addr() string { return r.ln.Addr().String() }

// URL is its base URL.
func (r *Replica) URL() string { return "http://" + r.Addr() }

// Leading reports whether it runs the emulator now.
func (r *Replica) Leading() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.emu != nil
}

// Led is closed once it leads for the first time.
func (r *Replica) Led() <-chan struct{} { return r.led }

// Emulator is the emulator it runs, while it leads one.
func (r *Replica) Emulator() (*emulator.Emulator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	emu, ok := r.emu.(*emulator.Emulator)
	return emu, ok
}

// Service is what it runs, while it leads.
func (r *Replica) Service() (Service, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.emu, r.emu != nil
}

// run campaigns for the lock, leads while it holds it, and campaigns
// again if it loses it.
func (r *Replica) run() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	first := true
	for {
		if r.Leading() {
			if err := r.cfg.Store.CheckLead(context.Background()); err != nil {
				r.stepDown(err)
			}
		} else if err := r.campaign(); err != nil {
			r.log.Warn("replica: trying for the lead", "err", err)
		} else if r.Leading() && first {
			first = false
			close(r.led)
		}
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

// campaign takes the lock if it is free, then starts the emulator on the
// store and announces itself.
func (r *Replica) campaign() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	won, err := r.cfg.Store.TryLead(ctx)
	if err != nil || !won {
		r.refreshLeader(ctx)
		return err
	}
	svc, err := r.serve()
	if err != nil {
		r.cfg.Store.Resign() // another replica may do better
		return fmt.Errorf("restoring the store: %w", err)
	}
	if err := r.cfg.Store.Announce(ctx, r.cfg.Advertise); err != nil {
		_ = svc.Shutdown(ctx)
		r.cfg.Store.Resign()
		return fmt.Errorf("announcing the lead: %w", err)
	}
	r.mu.Lock()
	r.emu, r.leader = svc, nil
	r.mu.Unlock()
	if emu, ok := svc.(*emulator.Emulator); ok {
		res := emu.Restored()
		r.log.Info("leading", "url", r.cfg.Advertise, "messages", res.Messages, "queued_attempts", res.Queued, "clock", emu.Clock().Now())
	} else {
		r.log.Info("leading", "url", r.cfg.Advertise)
	}
	return nil
}

// serve starts what the leader runs, on the store.
func (r *Replica) serve() (Service, error) {
	if r.cfg.Serve != nil {
		return r.cfg.Serve(r.cfg.Store)
	}
	cfg := r.cfg.Emulator
	cfg.Journal = r.cfg.Store
	return emulator.New(cfg)
}

// stepDown stops acting as the leader once its lock is gone: another
// replica may lead already, and this one can no longer write.
func (r *Replica) stepDown(why error) {
	r.mu.Lock()
	emu := r.emu
	r.emu = nil
	r.mu.Unlock()
	r.log.Error("replica: lost the lead, standing by", "err", why)
	if emu != nil {
		emu.EndStreams()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = emu.Shutdown(ctx) // its writes fail now: the store is another's
		cancel()
	}
	r.cfg.Store.Resign()
}

// refreshLeader reads the announced leader for forwarding.
func (r *Replica) refreshLeader(ctx context.Context) {
	raw, held, err := r.cfg.Store.Leader(ctx)
	var u *url.URL
	if err == nil && held && raw != "" && raw != r.cfg.Advertise {
		u, _ = url.Parse(raw)
	}
	r.mu.Lock()
	r.leader = u
	r.mu.Unlock()
}

// ServeHTTP answers as the emulator while leading, and forwards to the
// leader while standing by.
func (r *Replica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.RLock()
	emu, leader := r.emu, r.leader
	r.mu.RUnlock()
	switch {
	case emu != nil:
		emu.ServeHTTP(w, req)
	case req.URL.Path == "/healthz":
		// A standby is healthy: it forwards and waits to lead.
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "role": "standby", "leader": urlString(leader)})
	case leader == nil:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"status": http.StatusServiceUnavailable,
			"message": "no replica leads yet (failing over): retry in a second"}})
	default:
		r.forward(w, req, leader)
	}
}

// forward passes a request to the leader; event streams flow as they
// come.
func (r *Replica) forward(w http.ResponseWriter, req *http.Request, leader *url.URL) {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(leader)
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			r.mu.Lock()
			r.leader = nil // ask the store again
			r.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]any{"status": http.StatusServiceUnavailable,
				"message": fmt.Sprintf("the leader at %s does not answer (failing over): retry in a second: %v", leader, err)}})
		},
	}
	proxy.ServeHTTP(w, req)
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Shutdown stops serving and leaves the set: a leader lets running
// deliveries finish within ctx, records its clock and lets go of the lock
// for a standby. Calls after the first do nothing.
func (r *Replica) Shutdown(ctx context.Context) error {
	first := false
	r.stopOnce.Do(func() { close(r.stop); first = true })
	if !first {
		return nil
	}
	<-r.done
	r.mu.Lock()
	emu := r.emu
	r.emu = nil
	r.mu.Unlock()
	if emu != nil {
		emu.EndStreams()
	}
	err := r.srv.Shutdown(ctx)
	if emu != nil {
		err = errors.Join(err, emu.Shutdown(ctx))
	}
	return errors.Join(err, r.cfg.Store.Close())
}
