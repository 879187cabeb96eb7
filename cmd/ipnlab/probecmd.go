package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/internal/redact"
	"github.com/ipnlab/ipnlab/probe"
	"github.com/ipnlab/ipnlab/probe/sqlprobe"
)

// newProbe is ipnlab probe: the probe map of a listener's database, tried
// without a listener or an emulator.
func newProbe() *cobra.Command {
	c := &cobra.Command{Use: "probe", Short: "Check a probe map against a listener's database"}
	var dsn, mapFile, provider, txn, customer, order string
	check := &cobra.Command{
		Use:   "check --probe sql:DSN --probe-map FILE [--txn ID] [--customer ID] [--order REF]",
		Short: "Validate a probe map on the database, and show what it answers for a transaction, a customer or an order",
		Long: `Check every query of a probe map against the database, as conform and
explore do when they start (each problem named by file and line), and say
what the map knows beyond money. With --txn, --customer or --order, show
what the business checks would read for them. Needs no listener and no
emulator. Exit 0: the map is good; 2: it is not, or the database cannot be
read. See docs/probe.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, ok := strings.CutPrefix(dsn, sqlprobe.Scheme)
			if !ok || mapFile == "" {
				return usageError{errors.New("probe check: give --probe sql:DSN and --probe-map FILE")}
			}
			if provider != "paypal" && provider != "paydo" {
				return usageError{fmt.Errorf("probe check: --provider %q: want paypal or paydo", provider)}
			}
			m, err := sqlprobe.LoadMap(mapFile)
			if err != nil {
				return exitError{code: exitHarness, msg: err.Error()}
			}
			a, err := sqlprobe.Open(cmd.Context(), raw, m)
			if err != nil {
				return exitError{code: exitHarness, msg: err.Error()}
			}
			defer a.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: every query runs on %s\n", mapFile, redact.DSN(raw))
			knows := "money only"
			if len(a.Knows()) > 0 {
				knows = "money, " + probe.FactList(a.Knows())
			}
			fmt.Fprintf(out, "  knows: %s\n", knows)
			idle := "its idle query"
			if m.Query("idle") == "" {
				idle = "answers that stay the same"
			}
			fmt.Fprintf(out, "  settles on: %s, and %s of quiet after the last postback (less once the shop's own pace is timed)\n", idle, a.Quiet())
			if txn != "" {
				t, err := a.Transaction(cmd.Context(), provider, txn)
				switch {
				case errors.Is(err, probe.ErrNoTransaction):
					fmt.Fprintf(out, "transaction %s %s: no row (the listener does not know it)\n", provider, txn)
				case err != nil:
					return exitError{code: exitHarness, msg: err.Error()}
				default:
					fmt.Fprintf(out, "transaction %s %s: status %q", provider, txn, t.Status)
					for _, kv := range [][2]string{{"parent_txn_id", t.ParentTxnID}, {"customer", t.Customer}, {"payer_name", t.PayerName}, {"held", t.Held}} {
						if kv[1] != "" {
							fmt.Fprintf(out, ", %s %q", kv[0], kv[1])
						}
					}
					fmt.Fprintln(out)
					for _, e := range t.Effects {
						fmt.Fprintf(out, "  effect %s %s %s %s", e.TxnID, e.Status, e.Amount, e.Currency)
						if e.Customer != "" {
							fmt.Fprintf(out, " for %s", e.Customer)
						}
						fmt.Fprintln(out)
					}
					for _, cur := range slices.Sorted(maps.Keys(t.Net)) {
						fmt.Fprintf(out, "  net %s %s\n", t.Net[cur], cur)
					}
				}
			}
			if customer != "" {
				b, err := a.Balances(cmd.Context(), customer)
				if err != nil {
					return exitError{code: exitHarness, msg: err.Error()}
				}
				fmt.Fprintf(out, "customer %s: balances %v\n", customer, b)
			}
			if order != "" {
				o, err := a.Order(cmd.Context(), order)
				switch {
				case errors.Is(err, probe.ErrNoOrder):
					fmt.Fprintf(out, "order %s: no row (the shop has no such order)\n", order)
				case err != nil:
					return exitError{code: exitHarness, msg: err.Error()}
				default:
					fmt.Fprintf(out, "order %s: paid %v, received %v\n", order, o.Paid, o.Received)
				}
			}
			return nil
		},
	}
	f := check.Flags()
	f.StringVar(&dsn, "probe", "", "the listener's database: sql:sqlite:PATH, sql:postgres://..., sql:mysql://...")
	f.StringVar(&mapFile, "probe-map", "", "the probe map (docs/probe.md)")
	f.StringVar(&provider, "provider", "paypal", "whose transaction --txn is: paypal or paydo")
	f.StringVar(&txn, "txn", "", "show what the map answers for this transaction")
	f.StringVar(&customer, "customer", "", "show this customer's balances (the map's balances query)")
	f.StringVar(&order, "order", "", "show this order (the map's orders query)")
	c.AddCommand(check)
	return c
}
