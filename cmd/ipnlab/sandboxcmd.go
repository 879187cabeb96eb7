package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
)

// adminTokenOf is --admin-token, else IPNLAB_ADMIN_TOKEN.
func adminTokenOf(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("IPNLAB_ADMIN_TOKEN")
}

// sandboxOnlyPerAccount are serve's flags that set the one account of a
// plain emulator: in a sandbox each account sets its own.
var sandboxOnlyPerAccount = map[string]string{
	"api-token":      "each account has its own token (ipnlab accounts create)",
	"listener":       "each account sets its IPN URL (ipnlab accounts create NAME --listener URL, or its profile)",
	"receiver-email": "each account has its receiver (ipnlab accounts create NAME --receiver-email ...)",
	"receiver-id":    "each account has its receiver (ipnlab accounts create NAME --receiver-id ...)",
	"ipn-off":        "each account switches its notifications in its profile",
	"seed":           "each account draws its own seed",
	"tail":           "follow one account with ipnlab tail and its token",
	"intercept":      "the intercepting proxy serves one emulator, not a sandbox",
}

// sandboxFlags refuses, with --admin-token, the flags that belong to one
// account.
func sandboxFlags(cmd *cobra.Command) error {
	return refuseFlags(cmd, "--admin-token (a sandbox of accounts)", sandboxOnlyPerAccount, nil)
}

// refuseFlags refuses, in one message naming mode, each flag given that
// refused names (with its reason), after the problems found already.
func refuseFlags(cmd *cobra.Command, mode string, refused map[string]string, bad []string) error {
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if why, ok := refused[f.Name]; ok {
			bad = append(bad, fmt.Sprintf("--%s: %s", f.Name, why))
		}
	})
	if len(bad) > 0 {
		return usageError{fmt.Errorf("with %s:\n  %s", mode, strings.Join(bad, "\n  "))}
	}
	return nil
}

// runSandbox serves a sandbox until SIGINT or SIGTERM, or until its
// store is lost (lost: nil for a store whose lock goes with the process).
func runSandbox(cmd *cobra.Command, cfg sandbox.Config, addr, store string, shutdownTimeout time.Duration, lost <-chan error) error {
	log := cfg.Base.Logger
	srv, err := sandbox.Start(cfg, addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return listenError("the sandbox", addr, err)
	} else if err != nil {
		return err
	}
	stopped := notifyStop() // before "ready"
	accounts := srv.List()
	fmt.Fprintf(cmd.OutOrStdout(), "ipnlab sandbox ready addr=%s clock=%s verify=%s accounts=%d\n",
		srv.Addr(), cfg.NewClock().Mode(), cfg.Base.PayPal.Verify, len(accounts))
	log.Info("sandbox listening", "url", srv.URL(), "verify_url", srv.URL()+"/cgi-bin/webscr", "store", store, "accounts", len(accounts))
	var lostErr error
	select {
	case <-stopped:
	case lostErr = <-lost:
		log.Error("lost the store's writer lock: another sandbox may write it now, so this one stops", "err", lostErr)
	}
	log.Info("shutting down", "bound", shutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown bound reached", "err", err)
	}
	log.Info("stopped")
	if lostErr != nil {
		return fmt.Errorf("the store is no longer this sandbox's: %w", lostErr)
	}
	return nil
}

// newAccounts is ipnlab accounts: a sandbox's merchant accounts.
func newAccounts() *cobra.Command {
	c := &cobra.Command{
		Use:   "accounts",
		Short: "Manage a sandbox's merchant accounts (serve --admin-token): create, list, rotate-token, delete",
		Long: `Manage the merchant accounts of a sandbox (ipnlab serve --admin-token). The
admin token is read from IPNLAB_ADMIN_TOKEN (an environment variable, not a
flag: flags show in process lists). A new or rotated account token is
printed once; the sandbox keeps only its hash.`,
	}
	var base *string
	admin := func() (*client.Client, error) {
		tok := os.Getenv("IPNLAB_ADMIN_TOKEN")
		if tok == "" {
			return nil, usageError{errors.New("set IPNLAB_ADMIN_TOKEN to the sandbox's admin token (serve --admin-token)")}
		}
		cl, err := client.New(*base)
		if err != nil {
			return nil, usageError{fmt.Errorf("--emulator: %w", err)}
		}
		return cl.WithToken(tok), nil
	}
	printToken := func(cmd *cobra.Command, at api.AccountToken) {
		fmt.Fprintf(cmd.OutOrStdout(), "account %s (%s) receiver %s / %s\ntoken %s\n(shown once: give it to the team as IPNLAB_API_TOKEN)\n",
			at.Account.ID, at.Account.Name, at.Account.ReceiverEmail, at.Account.ReceiverID, at.Token)
		if at.PayDoToken != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "paydo lookup token %s\n(its listener's PayDo status lookups send it as Authorization: Bearer)\n", at.PayDoToken)
		}
	}

	var req api.NewAccount
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account and print its token",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := admin()
			if err != nil {
				return err
			}
			req.Name = args[0]
			at, err := cl.CreateAccount(cmd.Context(), req)
			if err != nil {
				return err
			}
			printToken(cmd, at)
			return nil
		},
	}
	create.Flags().StringVar(&req.ReceiverEmail, "receiver-email", "", "the account's receiver_email (default NAME@business.example.com)")
	create.Flags().StringVar(&req.ReceiverID, "receiver-id", "", "the account's receiver_id (default from NAME)")
	create.Flags().StringVar(&req.NotifyURL, "listener", "", "the account's IPN URL (notifications on); empty: off")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the accounts",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := admin()
			if err != nil {
				return err
			}
			as, err := cl.Accounts(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tRECEIVER EMAIL\tRECEIVER ID\tCREATED")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.ReceiverEmail, a.ReceiverID, a.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate-token ID",
		Short: "Give an account a new token (the old one stops at once) and print it",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := admin()
			if err != nil {
				return err
			}
			at, err := cl.RotateToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printToken(cmd, at)
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an account and everything it kept",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := admin()
			if err != nil {
				return err
			}
			if err := cl.DeleteAccount(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "account %s deleted\n", args[0])
			return nil
		},
	}
	for _, sub := range []*cobra.Command{create, list, rotate, del} {
		c.AddCommand(sub)
	}
	def := os.Getenv("IPNLAB_EMULATOR")
	if def == "" {
		def = client.DefaultURL
	}
	base = c.PersistentFlags().String("emulator", def, "the sandbox's base URL (env IPNLAB_EMULATOR)")
	return c
}
