package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
	"github.com/ipnlab/ipnlab/internal/redact"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

func newServe() *cobra.Command {
	var (
		addr, clockMode, verify, notifyURL, recvEmail, recvID, debugAddr string
		logs                                                             logFlags
		metricsToken, adminFlag, advertise                               string
		replicaMode                                                      bool
		paydoSource, paydoXFF, tlsCA, paydoToken                         string
		tlsInsecure                                                      bool
		paydoInitial, paydoMax, paydoWindow                              time.Duration
		ackTimeout, shutdownTimeout                                      time.Duration
		storeSpec, tokenFlag                                             string
		allow                                                            []string
		retries, historyLimit                                            int
		seed                                                             uint64
		live, ipnOff, tailLines                                          bool
		icpt                                                             interceptFlags
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the emulator: fake PayPal, verifier, control API",
		Long: `Run the emulator. Listeners post back to /cgi-bin/webscr; the control API is
under /api/v1/ (see /api/v1/openapi.yaml); the web console (IPN History,
Simulator, clock) is at /. On start it prints one line:
  ipnlab emulator ready addr=HOST:PORT clock=MODE verify=MODE seed=N

With --admin-token (or IPNLAB_ADMIN_TOKEN) it is a sandbox of merchant
accounts instead, each with its own token, receiver, IPN profile, faults,
History and clock (ipnlab accounts create ...); it prints:
  ipnlab sandbox ready addr=HOST:PORT clock=MODE verify=MODE accounts=N`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, clk, mode, err := emulatorBasics(logs, clockMode, verify)
			if err != nil {
				return err
			}
			if ackTimeout <= 0 {
				return usageError{fmt.Errorf("--ack-timeout %s: must be positive", ackTimeout)}
			}
			pdSchedule := delivery.Backoff{Initial: paydoInitial, Factor: 2, Max: paydoMax, Window: paydoWindow}
			if err := pdSchedule.Validate(); err != nil {
				return usageError{fmt.Errorf("--paydo-*: %w", err)}
			}
			tlsConfig, err := deliveryTLS(tlsCA, tlsInsecure)
			if err != nil {
				return err
			}
			if historyLimit < 0 {
				return usageError{fmt.Errorf("--history-limit %d: must not be negative", historyLimit)}
			}
			if shutdownTimeout <= 0 {
				return usageError{fmt.Errorf("--shutdown-timeout %s: must be positive", shutdownTimeout)}
			}
			token, adminToken := apiToken(tokenFlag), adminTokenOf(adminFlag)
			if adminToken != "" {
				if err := sandboxFlags(cmd); err != nil {
					return err
				}
				token = adminToken // what guards the sandbox beyond loopback
			}
			if err := checkExposure("emulator-addr", addr, token); err != nil {
				return err
			}
			if metricsToken, err = metricsTokenOf(metricsToken, token); err != nil {
				return err
			}
			allowlist, err := parseAllow(allow, cmd.Flags().Changed("allow"))
			if err != nil {
				return err
			}
			if replicaMode {
				if err := replicaFlags(cmd, storeSpec); err != nil {
					return err
				}
			}
			var jnl journal.Journal
			if !replicaMode {
				if jnl, err = openStore(storeSpec); err != nil {
					return err
				}
			}
			if jnl != nil {
				defer func() {
					if err := jnl.Close(); err != nil {
						log.Error("closing the store", "err", err)
					}
				}()
			}
			// The local CA, when --intercept or --tls-addr asks for it: it
			// also issues the REST webhooks' signing certificates.
			ca, err := icpt.ca()
			if err != nil {
				return err
			}
			prof := paypal.Profile{NotifyURL: notifyURL, Enabled: notifyURL != "" && !ipnOff, ReceiverEmail: recvEmail, ReceiverID: recvID}
			cfg := emulator.Config{
				Clock: clk, AckTimeout: ackTimeout, Seed: seed, Logger: log, APIToken: token, MetricsToken: metricsToken, Allow: allowlist, HistoryLimit: historyLimit, TLS: tlsConfig,
				PayPal:    paypal.Settings{Verify: mode, Retries: retries, Profile: prof, Live: live},
				PayDo:     paydo.Settings{Schedule: &pdSchedule, Source: paydoSource, ForwardedFor: paydoXFF, APIToken: paydoToken},
				Scenarios: catalog.Runner{Alias: conformance.ScenarioOf},
				Providers: providers(live, ca),
			}
			if jnl != nil {
				cfg.Journal = jnl
			}
			watching, stopWatch := context.WithCancel(context.Background())
			defer stopWatch()
			lost, storeHealth := watchStore(watching, jnl)
			cfg.StoreHealth = storeHealth
			stopDebug, err := debugServer(debugAddr, log)
			if err != nil {
				return err
			}
			defer stopDebug()
			var accounts *sandbox.Config
			if adminToken != "" {
				cfg.APIToken, cfg.Seed = "", 0 // each account has its token and draws its seed
				accounts = &sandbox.Config{AdminToken: adminToken, MetricsToken: metricsToken, Base: cfg, Journal: jnl,
					NewClock: func() clock.Clock { c, _ := clock.Parse(clockMode, time.Now().UTC().Truncate(time.Second)); return c }}
			}
			if replicaMode {
				return runReplica(cmd, cfg, accounts, storeSpec, addr, advertise, shutdownTimeout)
			}
			if accounts != nil {
				return runSandbox(cmd, *accounts, addr, storeName(storeSpec), shutdownTimeout, lost)
			}
			if icpt.intercept {
				cfg.Intercept = ca
			}
			srv, err := emulator.Start(cfg, addr)
			if errors.Is(err, syscall.EADDRINUSE) {
				return listenError("the emulator", addr, err)
			} else if err != nil {
				return err
			}
			tlsVerifier, err := icpt.serveTLS(ca, token, srv.PayPal())
			if err != nil {
				return errors.Join(err, srv.Shutdown(context.Background()))
			}
			stopped := notifyStop() // before "ready"
			fmt.Fprintf(cmd.OutOrStdout(), "ipnlab emulator ready addr=%s clock=%s verify=%s seed=%d\n",
				srv.Addr(), srv.Clock().Mode(), mode, srv.Seed())
			if tailLines {
				defer startTail(cmd, srv.Events())()
			}
			log.Info("emulator listening", "url", srv.URL(), "console", srv.URL()+"/", "verify_url", srv.VerifyURL(), "notify_url", notifyURL,
				"store", storeName(storeSpec), "token", token != "", "allowlist", allowText(allow))
			if icpt.intercept {
				log.Info("intercepting PayPal's verify hosts", "https_proxy", srv.URL(), "ca", ca.CertPath(), "env", "ipnlab ca env --proxy "+srv.URL())
			}
			if tlsVerifier != nil {
				defer tlsVerifier.Close()
				log.Info("verifier over TLS", "verify_url", tlsVerifier.URL(), "ca", ca.CertPath())
			}
			if jnl != nil {
				r := srv.Restored()
				attrs := []any{"messages", r.Messages, "queued_attempts", r.Queued, "scheduled", r.Scheduled, "clock", srv.Clock().Now()}
				for _, name := range slices.Sorted(maps.Keys(r.Providers)) {
					counts := r.Providers[name]
					for _, what := range slices.Sorted(maps.Keys(counts)) {
						attrs = append(attrs, name+"_"+what, counts[what]) // paypal_postbacks=3
					}
				}
				log.Info("resumed from the store", attrs...)
			}

			var lostErr error
			select {
			case <-stopped:
			case lostErr = <-lost:
				log.Error("lost the store's writer lock: another emulator may write it now, so this one stops", "err", lostErr)
			}
			log.Info("shutting down", "bound", shutdownTimeout)
			shutdown, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil {
				// Cut-short deliveries are recorded and their retries kept:
				// nothing is lost, so this is not a failed exit.
				log.Warn("shutdown bound reached", "err", err)
			}
			log.Info("stopped")
			if lostErr != nil {
				return fmt.Errorf("the store is no longer this emulator's: %w", lostErr)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "emulator-addr", "127.0.0.1:8700", "address the emulator listens on")
	f.StringVar(&clockMode, "clock", "real", "clock: real, manual (moves only via the API) or scale:N (N times faster)")
	f.StringVar(&verify, "verify", "paypal", "verifier mode: paypal (as the live service) or strict (the documentation's letter)")
	f.DurationVar(&ackTimeout, "ack-timeout", 30*time.Second, "a delivery not answered within this is a failure")
	f.IntVar(&retries, "retries", 15, "PayPal resends before giving up (16 reaches PayPal's 'four days')")
	f.StringVar(&notifyURL, "listener", "", "the account's IPN URL: your listener's (notifications are on when set)")
	f.BoolVar(&tailLines, "tail", false, "print one line per message, attempt, postback and verdict (as ipnlab tail)")
	f.BoolVar(&ipnOff, "ipn-off", false, "start with notifications off (messages wait as Held until resent)")
	f.StringVar(&recvEmail, "receiver-email", emulator.DefaultReceiverEmail, "the merchant's receiver_email")
	f.StringVar(&recvID, "receiver-id", emulator.DefaultReceiverID, "the merchant's receiver_id")
	f.Uint64Var(&seed, "seed", 0, "seed for generated messages (0: drawn and printed)")
	f.BoolVar(&live, "live", false, "send live-style messages (no test_ipn=1)")
	logs.add(f)
	f.StringVar(&debugAddr, "debug-addr", "", debugAddrHelp)
	f.StringVar(&metricsToken, "metrics-token", "", metricsTokenHelp)
	f.BoolVar(&replicaMode, "replica", false, "join the replicas of a --store postgres://...: lead when none does, else stand by and forward to the leader")
	f.StringVar(&advertise, "advertise", "", "with --replica: the URL the other replicas forward to (default http://ADDR)")
	f.StringVar(&adminFlag, "admin-token", "", "serve a sandbox of merchant accounts, managed with this token (env IPNLAB_ADMIN_TOKEN; see ipnlab accounts)")
	f.StringVar(&tlsCA, "tls-ca", "", "PEM file of a CA to trust for HTTPS listeners (besides the system's)")
	f.BoolVar(&tlsInsecure, "tls-insecure", false, "deliver to HTTPS listeners without checking their certificate")
	f.StringVar(&paydoSource, "paydo-source", "", "local IP PayDo deliveries leave from (e.g. 127.0.0.2)")
	f.StringVar(&paydoXFF, "paydo-forwarded-for", "", "X-Forwarded-For on PayDo deliveries (e.g. 52.49.204.201)")
	f.StringVar(&paydoToken, "paydo-token", paydo.DefaultAPIToken, "the default project's token for PayDo's status lookup (Authorization: Bearer)")
	f.DurationVar(&paydoInitial, "paydo-initial", time.Minute, "PayDo's first resend wait (doubling after)")
	f.DurationVar(&paydoMax, "paydo-max", time.Hour, "PayDo's longest resend wait")
	f.DurationVar(&paydoWindow, "paydo-window", 24*time.Hour, "how long PayDo resends")
	f.StringVar(&storeSpec, "store", "memory", "where history and the retry queue live: memory, sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB[?search_path=SCHEMA] (both survive restarts)")
	f.StringVar(&tokenFlag, "api-token", "", apiTokenHelp)
	f.StringSliceVar(&allow, "allow", nil, "delivery targets allowed: networks, addresses, host names (repeat or comma-separate); default any")
	f.IntVar(&historyLimit, "history-limit", 100_000, "finished messages kept in History (oldest leave first; 0: all)")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long running deliveries may finish")
	icpt.add(f, true)
	renamed(f, "addr", "emulator-addr")
	renamed(f, "notify-url", "listener")
	return c
}

// watchStore watches a PostgreSQL store's writer lock every second
// (pgjournal.Watch): lost hears its loss, health says it. A SQLite file's
// lock goes with the process: nothing to watch (nil, nil).
func watchStore(ctx context.Context, jnl journal.Journal) (lost <-chan error, health func() error) {
	pg, ok := jnl.(*pgjournal.Postgres)
	if !ok {
		return nil, nil
	}
	w := pg.Watch(ctx, time.Second)
	return w.Lost(), w.Err
}

// storeName is --store for the log: a PostgreSQL URL without its password.
func storeName(spec string) string {
	if pgjournal.IsURL(spec) {
		return redact.DSN(spec)
	}
	return spec
}

// openStore opens the --store: nil for memory.
func openStore(spec string) (journal.Journal, error) {
	switch {
	case spec == "memory":
		return nil, nil
	case pgjournal.IsURL(spec):
		j, err := pgjournal.Open(context.Background(), spec)
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		return j, nil
	}
	path, err := storePath(spec)
	if err != nil {
		return nil, err
	}
	j, err := sqlitejournal.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	return j, nil
}

// storePath reads --store sqlite:PATH. The path is taken as it is
// written: '?' and '#' are part of a file name, not a query.
func storePath(spec string) (string, error) {
	path, ok := strings.CutPrefix(spec, "sqlite:")
	switch {
	case !ok:
		return "", usageError{fmt.Errorf("--store %q: want memory, sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB", spec)}
	case path == "":
		return "", usageError{fmt.Errorf("--store sqlite:PATH: the path is empty")}
	}
	return path, nil
}

// newBackup is ipnlab backup: a consistent copy of a live store.
func newBackup() *cobra.Command {
	var storeSpec string
	c := &cobra.Command{
		Use:   "backup --store sqlite:PATH OUT",
		Short: "Copy an emulator's store, while it runs, into a new file OUT (restore: ipnlab serve --store sqlite:OUT)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pgjournal.IsURL(storeSpec) {
				return usageError{errors.New("--store postgres://...: back a PostgreSQL store up with pg_dump (docs/operations.md, \"Team sandbox\"), not with ipnlab backup")}
			}
			path, err := storePath(storeSpec)
			if err != nil {
				return err
			}
			if err := sqlitejournal.Backup(path, args[0]); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s\n", path, args[0])
			return nil
		},
	}
	c.Flags().StringVar(&storeSpec, "store", "", "the store to copy: sqlite:PATH")
	return c
}

// checkExposure applies emulator.CheckExposure to flag's address.
func checkExposure(flag, addr, token string) error {
	if err := emulator.CheckExposure(addr, token); err != nil {
		return usageError{fmt.Errorf("--%s %w", flag, err)}
	}
	return nil
}

// apiTokenHelp is --api-token's help, the same for every command that
// serves an emulator.
const apiTokenHelp = "token the control API requires (env IPNLAB_API_TOKEN); required off loopback"

const (
	metricsTokenHelp = "a second token that opens /metrics only, for a scraper (env IPNLAB_METRICS_TOKEN; needs --api-token)"
	debugAddrHelp    = "serve Go's profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060"
)

// apiToken is --api-token, else IPNLAB_API_TOKEN.
func apiToken(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("IPNLAB_API_TOKEN")
}

// metricsTokenOf is --metrics-token, else IPNLAB_METRICS_TOKEN; one
// without an API token would guard nothing (every route is open then).
func metricsTokenOf(flag, apiToken string) (string, error) {
	if flag == "" {
		flag = os.Getenv("IPNLAB_METRICS_TOKEN")
	}
	if flag != "" && apiToken == "" {
		return "", usageError{errors.New("--metrics-token (or IPNLAB_METRICS_TOKEN) needs --api-token: without one /metrics and the whole API are open")}
	}
	return flag, nil
}

// parseAllow reads --allow. Given but empty (--allow "" from an unset
// variable in a script) is refused: it must not turn the allowlist off.
// allowText names the allowlist for the log: the flag's entries, or that
// any address is allowed.
func allowText(entries []string) string {
	if len(entries) == 0 {
		return "any (no --allow)"
	}
	return strings.Join(entries, ",")
}

func parseAllow(entries []string, given bool) (*delivery.Allowlist, error) {
	if len(entries) == 0 && given {
		return nil, usageError{errors.New(`--allow is empty: name the networks, addresses or host names deliveries may go to (leave the flag out to allow any)`)}
	}
	if len(entries) == 0 {
		return nil, nil
	}
	a, err := delivery.ParseAllowlist(entries)
	if err != nil {
		return nil, usageError{fmt.Errorf("--allow: %w", err)}
	}
	return a, nil
}

// deliveryTLS builds the TLS settings for HTTPS deliveries (nil: defaults).
func deliveryTLS(caFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // asked for by flag, for local test listeners
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--tls-ca: %w", err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)}
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// emulatorBasics reads the flags every emulator-running command has.
func emulatorBasics(logs logFlags, clockMode, verify string) (*slog.Logger, clock.Clock, paypal.Mode, error) {
	log, err := logs.logger()
	if err != nil {
		return nil, nil, "", err
	}
	clk, err := clock.Parse(clockMode, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		return nil, nil, "", usageError{fmt.Errorf("--clock: %w", err)}
	}
	mode, err := paypal.ParseMode(verify)
	if err != nil {
		return nil, nil, "", usageError{fmt.Errorf("--verify: %w", err)}
	}
	return log, clk, mode, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}

// providers are the providers every emulator of the binary runs beside
// PayPal's IPN and PayDo, which it registers itself: the registration
// line of each (serve and lab run the same).
func providers(live bool, ca *intercept.CA) []emulator.Factory {
	return []emulator.Factory{paypalrest.Factory(paypalrest.Settings{Live: live, CA: ca})}
}
