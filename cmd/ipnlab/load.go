package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/load"
)

func newLoad() *cobra.Command {
	var (
		cfg                           load.Config
		emulatorAddr, mode, tokenFlag string
		asJSON, quiet                 bool
		icpt                          interceptFlags
	)
	c := &cobra.Command{
		Use:   "load --listener URL",
		Short: "Drive a listener with realistic IPNs at a rate or concurrency, and report what it did",
		Long: `Send realistic notifications (fixtures, unique transaction ids) to the listener
at --listener from an emulator of its own, and report the achieved rate, the
listener's answers (status counts, ack latency percentiles), the retries
PayPal's schedule made, and the postbacks the emulator verified (PayDo: the
status lookups it answered).

The listener must post back to this emulator: it listens on --emulator-addr
(the default is where 'ipnlab listen' verifies) and prints its verifier URL.
Deliveries run on a manual clock: once sending is over, retries are stepped
along the schedule (PayPal: 15 over about 4 days) at the listener's pace.
--backlog N replays an outage flush: N messages queued while the listener was
down, all released at once at their first retry.

Exit 0 once the report is printed (it is a measurement, not a verdict), 2 when
the run could not start or was interrupted (the report so far is printed).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("rate") && cmd.Flags().Changed("concurrency") {
				return usageError{errors.New("--rate and --concurrency: give one (a rate paces sending, a concurrency bounds it)")}
			}
			cfg.Verify = paypal.Mode(mode)
			stderr := cmd.ErrOrStderr()
			if !quiet {
				cfg.Progress = progressPrinter(stderr)
			}
			cfg.APIToken = apiToken(tokenFlag)
			if err := checkExposure("emulator-addr", emulatorAddr, cfg.APIToken); err != nil {
				return err
			}
			var err error
			if cfg.Intercept, err = icpt.ca(); err != nil {
				return err
			}
			if cfg.Provider == load.PayPalREST {
				// Signed with certificates of ipnlab's CA, which the
				// listener trusts (the ca: line of ipnlab ca).
				if cfg.SigningCA, err = loadCA(); err != nil {
					return err
				}
			}
			r, err := load.New(cfg)
			if err != nil {
				return usageError{err}
			}
			defer r.Close()
			ln, err := net.Listen("tcp", emulatorAddr)
			if err != nil {
				return usageError{fmt.Errorf("the load's emulator cannot listen on %s: %w (is 'ipnlab serve' or 'make run' using it? stop it or pass --emulator-addr)", emulatorAddr, err)}
			}
			srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			if err := delivery.Reachable(cmd.Context(), cfg.Target); err != nil {
				return usageError{fmt.Errorf("the listener at %s does not accept connections: %w (use --backlog to simulate an outage)", cfg.Target, err)}
			}
			base := "http://" + ln.Addr().String()
			fmt.Fprintf(stderr, "ipnlab load: sending %s messages to %s\n", cfg.Provider, cfg.Target)
			fmt.Fprintf(stderr, "ipnlab load: emulator at %s: postbacks to %s/cgi-bin/webscr, PayDo lookups under %s/paydo/v1/transactions/\n", base, base, base)

			ctx, stop := interruptible(cmd.Context())
			defer stop()
			rep, runErr := r.Run(ctx)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(rep)
			} else {
				err = rep.Write(out)
			}
			switch {
			case errors.Is(runErr, context.Canceled):
				return exitError{code: exitHarness, msg: "load interrupted: the report covers what happened until then"}
			case runErr != nil:
				return runErr
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Target, "listener", "", "the listener's notification URL (required)")
	f.StringVar(&cfg.Provider, "provider", load.PayPal, "paypal, paydo or paypalrest (REST webhooks, signed with ipnlab's CA's certificates)")
	f.StringSliceVar(&cfg.Kinds, "kind", nil, "fixture kinds sent in turn (default web_accept; paydo: checkout; paypalrest: PAYMENT.CAPTURE.COMPLETED); see 'ipnlab fixtures list'")
	f.StringVar(&cfg.PayerEmail, "payer-email", "", "every PayPal message's payer email (a customer your listener knows; paypalrest: the events' custom_id)")
	f.StringVar(&cfg.WebhookID, "webhook-id", "", "paypalrest: the webhook id your listener verifies with (default "+load.DefaultWebhookID+")")
	f.Float64Var(&cfg.Rate, "rate", 0, "messages per second (instead of --concurrency)")
	f.IntVar(&cfg.Concurrency, "concurrency", 0, "messages whose first delivery may be in flight at once (default 8)")
	f.DurationVar(&cfg.Duration, "duration", 0, "how long to send (default 10s unless --count or --backlog is given)")
	f.IntVar(&cfg.Count, "count", 0, "stop after this many messages")
	f.IntVar(&cfg.Backlog, "backlog", 0, "first queue N messages during an outage, then release them at once")
	f.BoolVar(&cfg.NoRetries, "no-retries", false, "leave failed messages waiting instead of stepping through the retry schedule")
	f.IntVar(&cfg.Connections, "connections", 0, "most connections open to the listener (default 256)")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", 0, "with --rate: most messages in flight before sending waits (default 4096)")
	f.DurationVar(&cfg.AckTimeout, "ack-timeout", 0, "how long a delivery waits for the listener's answer (default 30s)")
	f.DurationVar(&cfg.Settle, "settle", 0, "how long to wait for postbacks once nothing is left to deliver (default 5s)")
	f.Uint64Var(&cfg.Seed, "seed", 0, "seed for the messages (0: drawn)")
	f.StringVar(&mode, "verify", string(paypal.ModePayPal), "verifier mode: paypal or strict")
	f.StringVar(&cfg.PayDoSource, "paydo-source", "", "local address PayDo deliveries leave from (e.g. 127.0.0.2)")
	f.StringVar(&emulatorAddr, "emulator-addr", "127.0.0.1:8700", "where the load's emulator listens (your listener's postbacks go there)")
	f.StringVar(&tokenFlag, "api-token", "", apiTokenHelp)
	f.IntVar(&cfg.HistoryLimit, "history-limit", load.DefaultHistoryLimit, "finished messages the load's emulator keeps (the oldest leave at once; a later postback for one counts as matching no message)")
	f.DurationVar(&cfg.ProgressEvery, "progress", 0, "how often the progress line updates (default 1s)")
	f.BoolVar(&quiet, "quiet", false, "no progress line")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	icpt.add(f, false)
	renamed(f, "to", "listener")
	renamed(f, "payer", "payer-email")
	return c
}

// progressPrinter rewrites one line on a terminal, and prints a line per
// report elsewhere (CI logs).
func progressPrinter(w io.Writer) func(load.Progress) {
	terminal := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	return func(p load.Progress) {
		switch {
		case terminal && p.Phase == load.PhaseDone:
			fmt.Fprintf(w, "\r\033[K%s\n", p)
		case terminal:
			fmt.Fprintf(w, "\r\033[K%s", p)
		default:
			fmt.Fprintln(w, p)
		}
	}
}
