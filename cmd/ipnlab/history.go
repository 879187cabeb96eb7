package main

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/spf13/cobra"
)

// ipnlab history, message and resend: IPN History of a running emulator.

func newHistory() *cobra.Command {
	var (
		status, kind, txnID, since string
		limit                      int
		asJSON                     bool
	)
	c := &cobra.Command{Use: "history", Short: "Print IPN History", Args: noArgs}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		for k, v := range map[string]string{"status": status, "kind": kind, "txn_id": txnID, "since": since} {
			if v != "" {
				q.Set(k, v)
			}
		}
		rows, total, err := cl.History(cmd.Context(), q)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), map[string]any{"messages": rows, "total": total})
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CREATED\tID\tPROVIDER\tKIND\tTXN_ID\tSTATUS\tHTTP\tATTEMPTS")
		for _, m := range rows {
			created := m.Created.Format("2006-01-02 15:04:05")
			if m.Resent {
				created += " (resent)"
			}
			code := "-"
			if m.LastCode != 0 {
				code = fmt.Sprint(m.LastCode)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", created, m.ID, m.Provider, m.Kind, m.TxnID, m.Status, code, m.Attempts)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if total > len(rows) {
			fmt.Fprintf(cmd.OutOrStdout(), "(%d of %d shown; --limit for more)\n", len(rows), total)
		}
		return nil
	})
	f := c.Flags()
	f.StringVar(&status, "status", "", "Queued, Sent, Retrying, Failed or Held")
	f.StringVar(&kind, "kind", "", "message kind")
	f.StringVar(&txnID, "txn-id", "", "transaction id")
	f.StringVar(&since, "since", "", "created at or after (RFC 3339)")
	f.IntVar(&limit, "limit", 100, "rows at most")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newMessage() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{Use: "message ID", Short: "Print one message: fields, attempts, postbacks and verdicts", Args: exactArgs(1)}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, args []string) error {
		v, err := cl.Message(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), v)
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "%s  %s %s  txn_id=%s  status=%s  charset=%s\n", v.ID, v.Provider, v.Kind, v.TxnID, v.Status, v.Charset)
		fmt.Fprintf(w, "url: %s\n\nfields:\n", v.URL)
		for _, f := range v.Fields {
			fmt.Fprintf(w, "  %s = %q\n", f.Name, f.Value)
		}
		fmt.Fprintln(w, "\nattempts:")
		for _, a := range v.Attempts {
			outcome := fmt.Sprintf("HTTP %d", a.StatusCode)
			if a.Error != "" {
				outcome = a.Error
			}
			fmt.Fprintf(w, "  #%d %-7s %s  %s  %.1f ms  acked=%v\n", a.Number, a.Trigger, a.Start.Format(time.RFC3339), outcome, float64(a.Duration.Microseconds())/1000, a.Acked)
		}
		fmt.Fprintln(w, "\npostbacks:")
		for _, p := range v.Postbacks {
			fault := ""
			if p.Fault != "" {
				fault = " fault=" + string(p.Fault)
			}
			fmt.Fprintf(w, "  %s %s  %s%s\n", p.ID, p.Time.Format(time.RFC3339), p.Verdict.Summary(), fault)
		}
		return nil
	})
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newResend() *cobra.Command {
	var (
		to, failedSince, status string
		profileURL              bool
	)
	c := &cobra.Command{
		Use:   "resend [ID]",
		Short: "Resend a message by hand (with resend=true), or every Failed (or Held) one since a time",
		Args: func(c *cobra.Command, args []string) error {
			if (len(args) == 1) == (failedSince != "") {
				return usageError{fmt.Errorf("%s: give a message ID or --since, one of the two", c.CommandPath())}
			}
			if len(args) == 1 && c.Flags().Changed("status") {
				return usageError{fmt.Errorf("%s: --status chooses the messages to resend with --since, not with an ID", c.CommandPath())}
			}
			return nil
		},
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, args []string) error {
		req := emulator.ResendRequest{URL: to, UseProfileURL: profileURL}
		if failedSince != "" {
			req.Since, req.Status = failedSince, status
			ids, err := cl.ResendAll(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "resent %d: %s\n", len(ids), strings.Join(ids, " "))
			return nil
		}
		v, err := cl.Resend(cmd.Context(), args[0], req)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "id=%s status=%q attempts=%d\n", v.ID, v.Status, len(v.Attempts))
		return nil
	})
	f := c.Flags()
	f.StringVar(&to, "listener", "", "send to this listener URL instead of the original one")
	f.BoolVar(&profileURL, "profile-url", false, "send to the profile's current URL")
	f.StringVar(&failedSince, "since", "", "resend every message created since (RFC 3339) that has --status")
	f.StringVar(&status, "status", "Failed", "with --since: the History status of the messages to resend (Failed or Held, say)")
	renamed(f, "url", "listener")
	renamed(f, "failed-since", "since")
	return c
}
