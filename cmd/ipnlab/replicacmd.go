package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/replica"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
)

// notWithReplica are serve's flags a replica set does not take, and why.
var notWithReplica = map[string]string{
	"tail":      "follow the set with ipnlab tail against any replica",
	"intercept": "the intercepting proxy serves one process",
}

// replicaFlags checks --replica's companions.
func replicaFlags(cmd *cobra.Command, store string) error {
	var bad []string
	if !pgjournal.IsURL(store) {
		bad = append(bad, fmt.Sprintf("--store %q: replicas share a PostgreSQL store (postgres://...)", store))
	}
	return refuseFlags(cmd, "--replica", notWithReplica, bad)
}

// runReplica serves one replica of the set until SIGINT or SIGTERM: of an
// emulator, or of a sandbox of accounts (accounts set).
func runReplica(cmd *cobra.Command, cfg emulator.Config, accounts *sandbox.Config, store, addr, advertise string, shutdownTimeout time.Duration) error {
	log := cfg.Logger
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg, err := pgjournal.Connect(ctx, store)
	if err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	rc := replica.Config{Emulator: cfg, Store: pg, Advertise: advertise}
	if accounts != nil {
		rc.Serve = func(store journal.Journal) (replica.Service, error) {
			sc := *accounts
			sc.Journal = store
			return sandbox.New(sc)
		}
	}
	r, err := replica.Start(rc, addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		pg.Close()
		return listenError("the replica", addr, err)
	} else if err != nil {
		pg.Close()
		return err
	}
	stopped := notifyStop() // before "ready"
	fmt.Fprintf(cmd.OutOrStdout(), "ipnlab replica ready addr=%s clock=%s verify=%s accounts=%t\n", r.Addr(), cfg.Clock.Mode(), cfg.PayPal.Verify, accounts != nil)
	log.Info("replica listening", "url", r.URL(), "store", storeName(store))
	<-stopped
	log.Info("shutting down", "bound", shutdownTimeout, "leading", r.Leading())
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	if err := r.Shutdown(sctx); err != nil {
		log.Warn("shutdown bound reached", "err", err)
	}
	log.Info("stopped")
	return nil
}
