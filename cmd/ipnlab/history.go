package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/spf13/cobra"
)

// ipnlab history, message and resend: IPN History of a running emulator.

func newHistory() *cobra.Command {
	var (
		status, verdict, kind, txnID, since string
		limit                               int
		asJSON, oldest                      bool
	)
	c := &cobra.Command{Use: "history", Short: "Print IPN History", Args: noArgs}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		q := url.Values{"limit": {fmt.Sprint(limit)}, "order": {"newest"}}
		if oldest {
			q.Set("order", "oldest")
		}
		if since != "" {
			t, err := sinceTime(cmd.Context(), cl, since)
			if err != nil {
				return err
			}
			since = t
		}
		for k, v := range map[string]string{"status": status, "verdict": verdict, "kind": kind, "txn_id": txnID, "since": since} {
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
		fmt.Fprintln(tw, "CREATED\tID\tPROVIDER\tKIND\tTXN_ID\tSTATUS\tHTTP\tATTEMPTS\tVERDICT")
		for _, m := range rows {
			created := m.Created.Format("2006-01-02 15:04:05")
			if m.Resent {
				created += " (resent)"
			}
			code := "-"
			if m.LastCode != 0 {
				code = fmt.Sprint(m.LastCode)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", created, m.ID, m.Provider, m.Kind, m.TxnID, m.Status, code, m.AttemptCount, verdictCell(m.Outcome))
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
	f.StringVar(&verdict, "verdict", "", "only messages with this outcome: "+outcomeNames())
	f.BoolVar(&oldest, "oldest-first", false, "list oldest first (default: newest first, as PayPal's History)")
	f.StringVar(&kind, "kind", "", "message kind")
	f.StringVar(&txnID, "txn-id", "", "transaction id")
	f.StringVar(&since, "since", "", "created at or after: RFC 3339, or a duration back from the emulator's clock (24h)")
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
		// The verdict first: did the listener get it and verify it?
		fmt.Fprintf(w, "%s: %s\n", headline(v.Outcome), v.Outcome.Summary)
		fmt.Fprintf(w, "%s  %s %s  txn_id=%s  status=%s  charset=%s  seed=%d\n", v.ID, v.Provider, v.Kind, v.TxnID, v.Status, v.Charset, v.Seed)
		fmt.Fprintf(w, "url: %s\n\nfields:\n", v.URL)
		for _, f := range v.Fields {
			fmt.Fprintf(w, "  %s = %q\n", f.Name, f.Value)
		}
		fmt.Fprintln(w, "\nattempts:")
		for _, a := range v.Attempts {
			fmt.Fprintf(w, "%5s %-7s %s  %-8.1f ms  acked=%-5v  %s\n", fmt.Sprint("#", a.Number), a.Trigger, a.Start.Format(time.RFC3339),
				float64(a.Duration.Microseconds())/1000, a.Acked, a.Result())
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
			t, err := sinceTime(cmd.Context(), cl, failedSince)
			if err != nil {
				return err
			}
			req.Since, req.Status = t, status
			ids, refused, err := cl.ResendAll(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "resent %d: %s\n", len(ids), strings.Join(ids, " "))
			for _, r := range refused {
				fmt.Fprintf(cmd.OutOrStdout(), "not resent %s: %s\n", r.ID, r.Error)
			}
			if len(refused) > 0 {
				return exitError{code: exitHarness, msg: fmt.Sprintf("%d message(s) not resent (the others were)", len(refused))}
			}
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
	f.StringVar(&failedSince, "since", "", "resend every message created since (RFC 3339, or a duration back: 24h) that has --status")
	f.StringVar(&status, "status", "Failed", "with --since: the History status of the messages to resend (Failed or Held, say)")
	renamed(f, "url", "listener")
	renamed(f, "failed-since", "since")
	return c
}

// verdictCell is the History's verdict column: the outcome, with INVALID's
// rule.
// headline is the verdict as message's first line says it: the state in
// capitals, the rule and the field as the verifier names them.
func headline(o emulator.Outcome) string {
	if o.State == api.Invalid {
		return verdictCell(o)
	}
	return strings.ToUpper(verdictCell(o))
}

func verdictCell(o emulator.Outcome) string {
	switch o.State {
	case api.Invalid:
		if o.Field != "" {
			return fmt.Sprintf("INVALID %s (%s)", o.Rule, o.Field)
		}
		return "INVALID " + o.Rule
	case api.FaultOnly:
		return "fault " + o.Fault
	case api.Undelivered:
		return "not acknowledged"
	case api.Delivered:
		if o.ConfirmedByLookup {
			return "delivered, confirmed by lookup"
		}
	}
	return strings.ReplaceAll(string(o.State), "_", " ")
}

func outcomeNames() string {
	names := make([]string, len(api.OutcomeStates))
	for i, s := range api.OutcomeStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// sinceTime reads a --since value: RFC 3339, or a duration back from the
// emulator's clock ("24h", "90m"), which may be far from the wall clock.
func sinceTime(ctx context.Context, cl *client.Client, s string) (string, error) {
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return s, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return "", usageError{fmt.Errorf("--since %q: want a time (RFC 3339, 2026-12-05T09:00:00Z) or a duration back from now (24h)", s)}
	}
	v, err := cl.Clock(ctx)
	if err != nil {
		return "", err
	}
	return v.Now.Add(-d).Format(time.RFC3339), nil
}

func newPostbacks() *cobra.Command {
	var (
		messageID     string
		unknown, asJS bool
	)
	c := &cobra.Command{
		Use:   "postbacks",
		Short: "Print the postbacks the verifier answered; --unknown: those of no message the emulator sent, with the reason",
		Args:  noArgs,
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		if unknown && messageID != "" {
			return usageError{fmt.Errorf("--unknown and --message do not go together: a postback of a message is not unknown")}
		}
		var (
			pbs []api.Postback
			err error
		)
		if unknown {
			pbs, err = cl.UnknownPostbacks(cmd.Context())
		} else {
			pbs, err = cl.Postbacks(cmd.Context(), messageID)
		}
		if err != nil {
			return err
		}
		if asJS {
			return printJSON(cmd.OutOrStdout(), map[string]any{"postbacks": pbs})
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tID\tMESSAGE\tFROM\tVERDICT")
		for _, p := range pbs {
			msg := p.MessageID
			if msg == "" {
				msg = "(none)"
			}
			verdict := p.Verdict.Summary()
			if p.Fault != "" {
				verdict = fmt.Sprintf("%s (fault %s; not sent: %s)", p.Answered(), p.Fault, verdict)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Time.UTC().Format("2006-01-02 15:04:05"), p.ID, msg, orDash(p.Header.Get("User-Agent")), verdict)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(pbs) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "(none)")
		}
		return nil
	})
	f := c.Flags()
	f.StringVar(&messageID, "message", "", "only this message's postbacks")
	f.BoolVar(&unknown, "unknown", false, "only postbacks that matched no message the emulator sent (a listener posting the wrong message, a replayed capture)")
	f.BoolVar(&asJS, "json", false, "print JSON")
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
