package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/paypal"
)

// emulatorFlag adds --emulator to a command that talks to a running emulator.
func emulatorFlag(c *cobra.Command) *string {
	def := os.Getenv("IPNLAB_EMULATOR")
	if def == "" {
		def = client.DefaultURL
	}
	return c.Flags().String("emulator", def, "the emulator's base URL (env IPNLAB_EMULATOR)")
}

// dial returns a client of the emulator at base, with the API token from
// IPNLAB_API_TOKEN (an environment variable, not a flag: flags show in
// process lists).
func dial(base string) (*client.Client, error) {
	c, err := client.New(base)
	if err != nil {
		return nil, usageError{fmt.Errorf("--emulator: %w", err)}
	}
	if tok := os.Getenv("IPNLAB_API_TOKEN"); tok != "" {
		c = c.WithToken(tok)
	}
	return c, nil
}

// withClient sets c to run with a client of the emulator that base (its
// --emulator flag) names: the dial every remote command starts with.
func withClient(c *cobra.Command, base *string, run func(cmd *cobra.Command, cl *client.Client, args []string) error) {
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := dial(*base)
		if err != nil {
			return err
		}
		return run(cmd, cl, args)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// pairs parses repeated name=value flags, keeping their order.
func pairs(flag string, in []string) (emulator.Fields, error) {
	var out emulator.Fields
	for _, kv := range in {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, usageError{fmt.Errorf("--%s %q: want name=value", flag, kv)}
		}
		out = append(out, struct{ Name, Value string }{name, value})
	}
	return out, nil
}

func newSend() *cobra.Command {
	c := &cobra.Command{Use: "send", Short: "Send a notification through a running emulator"}
	c.AddCommand(newSendPayPal(), newSendPayDo())
	return c
}

func newSendPayDo() *cobra.Command {
	var (
		to, kind, interval, project, user string
		set, params                       []string
		then                              []int
		copies                            int
		seed                              uint64
		asJSON                            bool
	)
	c := &cobra.Command{
		Use:   "paydo",
		Short: "Send a PayDo notification (transfer or checkout), with copies and follow-up statuses",
		Example: `  ipnlab send paydo --to http://127.0.0.1:8701/ipn/paydo --kind transfer --param status=3 --then 2
  ipnlab send paydo --to http://127.0.0.1:8701/ipn/paydo --kind checkout --set invoice.metadata.customer=c-42 --copies 5
  ipnlab send paydo --kind checkout --set transaction.state:=4 --project shop`,
		Args: noArgs,
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		var err error
		req := emulator.PayDoRequest{Kind: kind, Then: then, Interval: interval, Copies: copies, Seed: seed, NotifyURL: to, Project: project, User: user}
		if req.Set, err = jsonSets(set); err != nil {
			return err
		}
		if req.Params, err = payDoParams(params); err != nil {
			return err
		}
		views, err := cl.SendPayDo(cmd.Context(), req)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), views)
		}
		for _, v := range views {
			fmt.Fprintf(cmd.OutOrStdout(), "id=%s transaction=%s kind=%s status=%q\n", v.ID, v.TxnID, v.Kind, v.Status)
		}
		return nil
	})
	f := c.Flags()
	f.StringVar(&to, "to", "", "the listener URL; default: the project's or user's registered URL")
	f.StringVar(&kind, "kind", "transfer", "transfer or checkout")
	f.StringArrayVar(&set, "set", nil, "override a field by path: path=text or path:=JSON (transaction.status:=2); repeatable")
	f.StringArrayVar(&params, "param", nil, "pin a value: amount=25.00, currency=EUR, status=3, identifier=..., invoice_id=..., txid=..., order_id=..., amount_as_string=true")
	f.IntSliceVar(&then, "then", nil, "follow with these statuses/states for the same transaction (e.g. --then 2)")
	f.StringVar(&interval, "interval", "", "clock time between follow-ups (default: right after)")
	f.IntVar(&copies, "copies", 1, "identical copies of the first message, delivered concurrently")
	f.StringVar(&project, "project", "", "project whose checkout IPN URL to use")
	f.StringVar(&user, "user", "", "user whose transfer IPN URL to use")
	f.Uint64Var(&seed, "seed", 0, "seed for generated values")
	f.BoolVar(&asJSON, "json", false, "print the messages as JSON")
	return c
}

// jsonSets turns path=text and path:=JSON flags into a JSON object.
func jsonSets(in []string) (json.RawMessage, error) {
	if len(in) == 0 {
		return nil, nil
	}
	var buf strings.Builder
	buf.WriteByte('{')
	for i, kv := range in {
		path, value, raw := "", "", false
		if p, v, ok := strings.Cut(kv, ":="); ok && !strings.Contains(p, "=") {
			path, value, raw = p, v, true
		} else if p, v, ok := strings.Cut(kv, "="); ok {
			path, value = p, v
		}
		if path == "" {
			return nil, usageError{fmt.Errorf("--set %q: want path=text or path:=JSON", kv)}
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(path)
		buf.Write(k)
		buf.WriteByte(':')
		if raw {
			if !json.Valid([]byte(value)) {
				return nil, usageError{fmt.Errorf("--set %q: %q is not valid JSON (use path=text for a string)", kv, value)}
			}
			buf.WriteString(value)
		} else {
			v, _ := json.Marshal(value)
			buf.Write(v)
		}
	}
	buf.WriteByte('}')
	return json.RawMessage(buf.String()), nil
}

func payDoParams(in []string) (emulator.PayDoParams, error) {
	ps, err := pairs("param", in)
	if err != nil {
		return emulator.PayDoParams{}, err
	}
	return strictParams[emulator.PayDoParams](ps, []string{"status"}, []string{"amount_as_string"},
		"amount, currency, status, identifier, invoice_id, txid, order_id, amount_as_string")
}

func newPayDo() *cobra.Command {
	c := &cobra.Command{Use: "paydo", Short: "PayDo account settings: IPN URL registration"}
	var project, user, url string
	var remove bool
	reg := &cobra.Command{Use: "register", Short: "Register a project's checkout IPN URL or a user's (single) transfer IPN URL", Args: noArgs}
	b := emulatorFlag(reg)
	reg.Flags().StringVar(&project, "project", "", "project (checkout notifications)")
	reg.Flags().StringVar(&user, "user", "", "user (transfer notifications; one URL each)")
	reg.Flags().StringVar(&url, "url", "", "the IPN URL")
	reg.Flags().BoolVar(&remove, "remove", false, "remove the registration")
	reg.RunE = func(cmd *cobra.Command, _ []string) error {
		if (project == "") == (user == "") {
			return usageError{fmt.Errorf("give --project or --user, one of the two")}
		}
		if (url == "") != remove {
			return usageError{fmt.Errorf("give --url, or --remove")}
		}
		cl, err := dial(*b)
		if err != nil {
			return err
		}
		return cl.RegisterPayDo(cmd.Context(), project, user, url)
	}
	c.AddCommand(reg)
	return c
}

func newSendPayPal() *cobra.Command {
	var (
		to, kind, charset, rawFile, flavour, lifecycle string
		set, unset, params                             []string
		seed                                           uint64
		asJSON                                         bool
	)
	c := &cobra.Command{
		Use:   "paypal",
		Short: "Send a PayPal IPN (generated from a kind, or a raw body replayed byte for byte)",
		Example: `  ipnlab send paypal --to http://127.0.0.1:8701/ipn/paypal --kind cart --param items=3
  ipnlab send paypal --to http://127.0.0.1:8701/ipn/paypal --set custom=order-42 --charset UTF-8
  ipnlab send paypal --to http://127.0.0.1:8701/ipn/paypal --raw captured.txt`,
		Args: noArgs,
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		if lifecycle != "" {
			return sendLifecycle(cmd, cl, lifecycle, to, charset, seed, params, asJSON)
		}
		var err error
		req := emulator.SendRequest{NotifyURL: to, Charset: charset, Flavour: flavour, Seed: seed, Unset: unset}
		if cmd.Flags().Changed("kind") || rawFile == "" {
			req.Kind = kind
		}
		if req.Set, err = pairs("set", set); err != nil {
			return err
		}
		ps, err := pairs("param", params)
		if err != nil {
			return err
		}
		if req.Params, err = parseParams(ps); err != nil {
			return err
		}
		if rawFile != "" {
			raw, err := os.ReadFile(rawFile)
			if err != nil {
				return usageError{fmt.Errorf("--raw: %w", err)}
			}
			req.RawBase64 = encodeRaw(raw)
		}
		v, err := cl.SendPayPal(cmd.Context(), req)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), v)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "id=%s txn_id=%s kind=%s status=%q seed=%d\n", v.ID, v.TxnID, v.Kind, v.Status, v.Seed)
		return nil
	})
	f := c.Flags()
	f.StringVar(&to, "to", "", "the listener URL (the per-payment notify_url); default: the profile's URL")
	f.StringVar(&kind, "kind", "web_accept", "message kind (ipnlab fixtures list)")
	f.StringArrayVar(&set, "set", nil, "set a field: name=value (repeatable; keeps its place or appends)")
	f.StringArrayVar(&unset, "unset", nil, "remove a field (repeatable)")
	f.StringArrayVar(&params, "param", nil, "pin a generated value: gross=25.00, currency=EUR, items=3, payer_email=..., parent_txn_id=... (repeatable)")
	f.StringVar(&charset, "charset", "", "message charset (default windows-1252)")
	f.StringVar(&flavour, "flavour", "", "paypal (default) or simulator (the IPN Simulator's quirks)")
	f.Uint64Var(&seed, "seed", 0, "seed for this message's values")
	f.StringVar(&rawFile, "raw", "", "send this file's bytes exactly")
	f.BoolVar(&asJSON, "json", false, "print the message as JSON")
	f.StringVar(&lifecycle, "lifecycle", "", "send a lifecycle instead (ipnlab fixtures list), each step at its clock offset")
	return c
}

func sendLifecycle(cmd *cobra.Command, cl *client.Client, name, to, charset string, seed uint64, params []string, asJSON bool) error {
	for _, flag := range []string{"kind", "set", "unset", "raw", "flavour"} {
		if cmd.Flags().Changed(flag) {
			return usageError{fmt.Errorf("--lifecycle and --%s do not go together", flag)}
		}
	}
	ps, err := pairs("param", params)
	if err != nil {
		return err
	}
	p, err := parseParams(ps)
	if err != nil {
		return err
	}
	plan, err := cl.SendLifecycle(cmd.Context(), emulator.LifecycleRequest{Name: name, Params: p, Charset: charset, Seed: seed, NotifyURL: to})
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), plan)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "# lifecycle=%s seed=%d\nSTEP\tKIND\tTXN_ID\tAT\tMESSAGE\n", plan.Lifecycle, plan.Seed)
	for _, s := range plan.Steps {
		id := s.MessageID
		if id == "" {
			id = "(scheduled)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.TxnID, s.At.Format(time.RFC3339), id)
	}
	return tw.Flush()
}

func parseParams(ps emulator.Fields) (emulator.Params, error) {
	return strictParams[emulator.Params](ps, []string{"items", "filters"}, nil,
		"gross, currency, status, pending_reason, reason_code, items, filters, case_type, txn_id, parent_txn_id, subscr_id, profile_id, custom, invoice, item_number, payer_email")
}

// strictParams decodes name=value flags into T's JSON fields, refusing
// names T does not have; ints and bools name the fields that are not text.
func strictParams[T any](ps emulator.Fields, ints, bools []string, known string) (T, error) {
	var out T
	m := map[string]any{}
	for _, p := range ps {
		switch {
		case slices.Contains(ints, p.Name):
			n, err := strconv.Atoi(p.Value)
			if err != nil {
				return out, usageError{fmt.Errorf("--param %s=%q: want a whole number", p.Name, p.Value)}
			}
			m[p.Name] = n
		case slices.Contains(bools, p.Name):
			b, err := strconv.ParseBool(p.Value)
			if err != nil {
				return out, usageError{fmt.Errorf("--param %s=%q: want true or false", p.Name, p.Value)}
			}
			m[p.Name] = b
		default:
			m[p.Name] = p.Value
		}
	}
	raw, _ := json.Marshal(m)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return out, usageError{fmt.Errorf("--param: %v (known: %s)", err, known)}
	}
	return out, nil
}

// printClock prints the clock after a clock command.
func printClock(cmd *cobra.Command, v emulator.ClockView) {
	fmt.Fprintf(cmd.OutOrStdout(), "now=%s mode=%s pending=%d\n", v.Now.Format(time.RFC3339), v.Mode, v.Pending)
}

func newClock() *cobra.Command {
	c := &cobra.Command{Use: "clock", Short: "Read or move the emulator's clock"}
	show := &cobra.Command{Use: "show", Short: "Print the clock", Args: noArgs}
	sb := emulatorFlag(show)
	withClient(show, sb, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		v, err := cl.Clock(cmd.Context())
		if err != nil {
			return err
		}
		printClock(cmd, v)
		return nil
	})
	adv := &cobra.Command{Use: "advance DURATION", Short: "Move a manual clock (90s, 15m, 96h, 4d); returns when due deliveries are done", Args: exactArgs(1)}
	ab := emulatorFlag(adv)
	withClient(adv, ab, func(cmd *cobra.Command, cl *client.Client, args []string) error {
		v, err := cl.Advance(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		printClock(cmd, v)
		return nil
	})
	idle := &cobra.Command{Use: "run-until-idle", Short: "Fire every scheduled delivery in order", Args: noArgs}
	ib := emulatorFlag(idle)
	limit := idle.Flags().String("limit", "30d", "stop after this much clock time")
	withClient(idle, ib, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		v, err := cl.RunUntilIdle(cmd.Context(), *limit)
		if err != nil {
			return err
		}
		printClock(cmd, v)
		return nil
	})
	c.AddCommand(show, adv, idle)
	return c
}

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
	f.StringVar(&status, "status", "", "Queued, Sent, Retrying, Failed or Disabled")
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
		to, failedSince string
		profileURL      bool
	)
	c := &cobra.Command{
		Use:   "resend [ID]",
		Short: "Resend a message by hand (with resend=true), or every failed one since a time",
		Args: func(c *cobra.Command, args []string) error {
			if (len(args) == 1) == (failedSince != "") {
				return usageError{fmt.Errorf("%s: give a message ID or --failed-since, one of the two", c.CommandPath())}
			}
			return nil
		},
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, args []string) error {
		req := emulator.ResendRequest{URL: to, UseProfileURL: profileURL}
		if failedSince != "" {
			req.Since = failedSince
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
	f.StringVar(&to, "url", "", "send to this URL instead of the original one")
	f.BoolVar(&profileURL, "profile-url", false, "send to the profile's current URL")
	f.StringVar(&failedSince, "failed-since", "", "resend every Failed message created since (RFC 3339)")
	return c
}

func newFault() *cobra.Command {
	c := &cobra.Command{Use: "fault", Short: "Make the verifier misbehave: " + faultKinds()}
	var messageID, delay string
	var count int
	set := &cobra.Command{Use: "set KIND", Short: "Inject a fault into postbacks", Args: exactArgs(1)}
	sb := emulatorFlag(set)
	set.Flags().StringVar(&messageID, "message", "", "only this message's postbacks")
	set.Flags().StringVar(&delay, "delay", "", "for slow: how long to wait (e.g. 35s)")
	set.Flags().IntVar(&count, "count", 0, "only the next N postbacks (0: until cleared)")
	withClient(set, sb, func(cmd *cobra.Command, cl *client.Client, args []string) error {
		return cl.SetFault(cmd.Context(), messageID, emulator.FaultRequest{Kind: args[0], Delay: delay, Count: count})
	})
	clear := &cobra.Command{Use: "clear", Short: "Clear a fault", Args: noArgs}
	cb := emulatorFlag(clear)
	var clearID string
	clear.Flags().StringVar(&clearID, "message", "", "the message's fault instead of the global one")
	withClient(clear, cb, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		return cl.ClearFault(cmd.Context(), clearID)
	})
	c.AddCommand(set, clear)
	return c
}

func faultKinds() string {
	var names []string
	for _, k := range paypal.FaultKinds {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

func newProfile() *cobra.Command {
	var notifyURL, email, id string
	var on, off bool
	c := &cobra.Command{Use: "profile", Short: "Print or change the IPN settings (URL, on/off, receiver)", Args: noArgs}
	base := emulatorFlag(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if on && off {
			return usageError{fmt.Errorf("--on and --off together")}
		}
		cl, err := dial(*base)
		if err != nil {
			return err
		}
		ctx := context.Background()
		p, err := cl.Profile(ctx)
		if err != nil {
			return err
		}
		if cmd.Flags().NFlag() > 0 && !(cmd.Flags().NFlag() == 1 && cmd.Flags().Changed("emulator")) {
			if cmd.Flags().Changed("notify-url") {
				p.NotifyURL = notifyURL
			}
			if cmd.Flags().Changed("receiver-email") {
				p.ReceiverEmail = email
			}
			if cmd.Flags().Changed("receiver-id") {
				p.ReceiverID = id
			}
			if on {
				p.Enabled = true
			}
			if off {
				p.Enabled = false
			}
			if p, err = cl.SetProfile(ctx, p); err != nil {
				return err
			}
		}
		return printJSON(cmd.OutOrStdout(), p)
	}
	f := c.Flags()
	f.StringVar(&notifyURL, "notify-url", "", "the account's IPN URL")
	f.BoolVar(&on, "on", false, "switch notifications on (sends held messages)")
	f.BoolVar(&off, "off", false, "switch notifications off")
	f.StringVar(&email, "receiver-email", "", "the merchant's receiver_email")
	f.StringVar(&id, "receiver-id", "", "the merchant's receiver_id")
	return c
}
