package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/replica"
)

// notWithReplica are serve's flags a replica set does not take, and why.
var notWithReplica = map[string]string{
	"admin-token": "a sandbox of accounts runs as one process for now",
	"tail":        "follow the set with ipnlab tail against any replica",
	"intercept":   "the intercepting proxy serves one process",
}

// replicaFlags checks --replica's companions.
func replicaFlags(cmd *cobra.Command, store string) error {
	var bad []string
	if !pgjournal.IsURL(store) {
		bad = append(bad, fmt.Sprintf("--store %q: replicas share a PostgreSQL store (postgres://...)", store))
	}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if why, ok := notWithReplica[f.Name]; ok {
			bad = append(bad, fmt.Sprintf("--%s: %s", f.Name, why))
		}
	})
	if adminTokenOf("") != "" && !cmd.Flags().Changed("admin-token") {
		bad = append(bad, "IPNLAB_ADMIN_TOKEN: "+notWithReplica["admin-token"])
	}
	if len(bad) > 0 {
		return usageError{fmt.Errorf("with --replica:\n  %s", strings.Join(bad, "\n  "))}
	}
	return nil
}

// runReplica serves one replica of the set until SIGINT or SIGTERM.
func runReplica(cmd *cobra.Command, cfg emulator.Config, store, addr, advertise string, shutdownTimeout time.Duration) error {
	log := cfg.Logger
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg, err := pgjournal.Connect(ctx, store)
	if err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	r, err := replica.Start(replica.Config{Emulator: cfg, Store: pg, Advertise: advertise}, addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		pg.Close()
		return listenError("the replica", addr, err)
	} else if err != nil {
		pg.Close()
		return err
	}
	stopped := notifyStop() // before "ready"
	fmt.Fprintf(cmd.OutOrStdout(), "ipnlab replica ready addr=%s clock=%s verify=%s\n", r.Addr(), cfg.Clock.Mode(), cfg.Verify)
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
