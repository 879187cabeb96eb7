package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/internal/suggest"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ipnlab send paypal|paydo and ipnlab paydo: sending through a running
// emulator.

// newSend is ipnlab send: paypal and paydo with every option of theirs,
// and any provider the emulator runs (a Go program's plug-in too), asked
// by kind through the API's route every provider that sends shares.
func newSend() *cobra.Command {
	var (
		to, kind string
		set      []string
		copies   int
		seed     uint64
		asJSON   bool
		wait     time.Duration
	)
	c := &cobra.Command{
		Use:   "send PROVIDER",
		Short: "Send a notification through a running emulator",
		Long: `Send a notification through a running emulator. paypal and paydo have
commands of their own, with every option (ipnlab send paypal --help). Any
other provider the emulator runs, such as a plug-in of a Go program that
embeds the emulator, is asked for a message by kind: --kind, --set,
--listener, --copies, --seed, --json and --wait apply.`,
		Example: `  ipnlab send paypal --kind web_accept --listener http://127.0.0.1:8701/ipn/paypal
  ipnlab send acme --kind order.paid --set order.total:=12.5 --listener http://127.0.0.1:8080/webhooks --wait`,
		Args: cobra.ArbitraryArgs,
	}
	base := emulatorFlag(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return cmd.Help()
		case len(args) > 1:
			return usageError{fmt.Errorf("%s: unexpected argument %q%s", cmd.CommandPath(), args[1], optionalValueHint(cmd, args[1]))}
		}
		name := args[0]
		cl, err := dial(*base)
		if err != nil {
			return err
		}
		info, err := sendingProvider(cmd, cl, name, *base)
		if err != nil {
			return err
		}
		if kind == "" {
			return usageError{fmt.Errorf("%s %s: --kind is required%s", cmd.CommandPath(), name, kindChoices(info))}
		}
		req := api.NotifyRequest{Kind: kind, NotifyURL: to, Seed: api.Seed(seed), Copies: copies}
		if req.Set, err = setMap(set); err != nil {
			return err
		}
		views, err := cl.Notify(cmd.Context(), name, req)
		if err != nil {
			return err
		}
		return reportSent(cmd, cl, views, wait, asJSON, func(v emulator.MessageView) string {
			return fmt.Sprintf("id=%s provider=%s kind=%s status=%q", v.ID, v.Provider, v.Kind, v.Status)
		})
	}
	f := c.Flags()
	f.StringVar(&to, "listener", "", "the listener URL (default: the provider's own, if it keeps one)")
	f.StringVar(&kind, "kind", "", "what to send: one of the kinds the provider lists (GET /api/v1/providers)")
	f.StringArrayVar(&set, "set", nil, "what the provider takes as set: path=text or path:=JSON; repeatable")
	f.IntVar(&copies, "copies", 1, "identical copies, delivered concurrently")
	f.Uint64Var(&seed, "seed", 0, "seed for generated values")
	f.BoolVar(&asJSON, "json", false, "print the messages as JSON")
	waitFlag(f, &wait)
	c.AddCommand(newSendPayPal(), newSendPayDo())
	return c
}

// sendingProvider is provider name as the emulator lists it, or a usage
// error naming the providers there are (the built-in ones when the
// emulator cannot be asked).
func sendingProvider(cmd *cobra.Command, cl *client.Client, name, base string) (api.ProviderInfo, error) {
	providers, err := cl.Providers(cmd.Context())
	if err != nil {
		names := []string{"paydo", "paypal"}
		return api.ProviderInfo{}, usageError{fmt.Errorf("%s: unknown provider %q%s: want %s (built in; a plug-in's name needs the emulator that runs it, which could not be asked: %v)",
			cmd.CommandPath(), name, suggest.Hint(name, names), strings.Join(names, " or "), err)}
	}
	var names []string
	for _, p := range providers {
		if p.Name == name {
			if !p.Sends {
				return p, usageError{fmt.Errorf("%s: provider %s sends nothing asked for by kind (it has routes of its own: see the emulator's OpenAPI document)", cmd.CommandPath(), name)}
			}
			return p, nil
		}
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return api.ProviderInfo{}, usageError{fmt.Errorf("%s: unknown provider %q%s: want %s", cmd.CommandPath(), name, suggest.Hint(name, names), strings.Join(names, " or "))}
}

// kindChoices is ": NAME sends a, b" when the provider lists its kinds.
func kindChoices(p api.ProviderInfo) string {
	if len(p.Kinds) == 0 {
		return ""
	}
	names := make([]string, len(p.Kinds))
	for i, k := range p.Kinds {
		names[i] = k.Name
	}
	return fmt.Sprintf(" (%s sends %s)", p.Name, strings.Join(names, ", "))
}

// setMap turns path=text and path:=JSON flags into the object a
// provider's set is, numbers kept as written.
func setMap(in []string) (map[string]any, error) {
	raw, err := jsonSets(in)
	if err != nil || raw == nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, usageError{fmt.Errorf("--set: %v", err)}
	}
	return out, nil
}

func newSendPayDo() *cobra.Command {
	var (
		to, kind, interval, project, user string
		set, params                       []string
		then                              []int
		copies                            int
		seed                              uint64
		asJSON                            bool
		wait                              time.Duration
	)
	c := &cobra.Command{
		Use:   "paydo",
		Short: "Send a PayDo notification (transfer or checkout), with copies and follow-up statuses",
		Example: `  ipnlab send paydo --listener http://127.0.0.1:8701/ipn/paydo --kind transfer --param status=3 --then 2
  ipnlab send paydo --listener http://127.0.0.1:8701/ipn/paydo --kind checkout --set invoice.metadata.customer=c-42 --copies 5
  ipnlab send paydo --kind checkout --set transaction.state:=4 --project shop`,
		Args: noArgs,
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		var err error
		req := emulator.PayDoRequest{Kind: kind, Then: then, Interval: interval, Copies: copies, Seed: api.Seed(seed), NotifyURL: to, Project: project, User: user}
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
		return reportSent(cmd, cl, views, wait, asJSON, func(v emulator.MessageView) string {
			return fmt.Sprintf("id=%s transaction=%s kind=%s status=%q", v.ID, v.TxnID, v.Kind, v.Status)
		})
	})
	f := c.Flags()
	f.StringVar(&to, "listener", "", "the listener URL; default: the project's or user's registered URL")
	renamed(f, "to", "listener")
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
	waitFlag(f, &wait)
	return c
}

// reportSent prints the messages sent, one line each (or as JSON), after
// waiting for their outcomes with --wait, which also judges them.
func reportSent(cmd *cobra.Command, cl *client.Client, views []emulator.MessageView, wait time.Duration, asJSON bool, line func(emulator.MessageView) string) error {
	var err error
	if wait > 0 {
		for i := range views {
			if views[i], err = settle(cmd, cl, views[i].ID, wait); err != nil {
				return err
			}
		}
	}
	if asJSON {
		if err := printJSON(cmd.OutOrStdout(), views); err != nil {
			return err
		}
	} else {
		for _, v := range views {
			fmt.Fprintln(cmd.OutOrStdout(), line(v))
		}
	}
	if wait > 0 {
		return judged(cmd, asJSON, views...)
	}
	return nil
}

// waitFlag adds --wait[=DURATION]: without a value it waits 30 s.
func waitFlag(f *pflag.FlagSet, wait *time.Duration) {
	f.DurationVar(wait, "wait", 0, "wait up to this long (--wait alone: 30s) for the outcome, print it, and exit 1 unless it was acknowledged (and VERIFIED, for PayPal)")
	f.Lookup("wait").NoOptDefVal = "30s"
}

// settle waits for message id's outcome (see client.Settle); a wait that
// runs out returns the message as it then is.
func settle(cmd *cobra.Command, cl *client.Client, id string, wait time.Duration) (emulator.MessageView, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), wait)
	defer cancel()
	v, err := cl.Settle(ctx, id)
	if err == nil && v.Provider == "paydo" && v.Kind == "checkout" && v.Outcome.State == api.Delivered && !v.Outcome.ConfirmedByLookup {
		// A listener may look a checkout up after its 200: a moment to.
		v, err = confirmed(ctx, cl, v, lookupGrace)
	}
	if errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
		return v, nil
	}
	return v, err
}

// lookupGrace is how long send --wait gives a listener, after its 200 to
// a PayDo checkout, to look the checkout up.
const lookupGrace = 2 * time.Second

// confirmed waits up to grace for checkout v to be confirmed by lookup,
// and returns it as it then is.
func confirmed(ctx context.Context, cl *client.Client, v emulator.MessageView, grace time.Duration) (emulator.MessageView, error) {
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	after, err := cl.LastEvent(ctx)
	for err == nil && !v.Outcome.ConfirmedByLookup {
		var now emulator.MessageView
		if now, err = cl.Message(ctx, v.ID); err != nil {
			break
		}
		if v = now; v.Outcome.ConfirmedByLookup {
			break
		}
		_, after, err = cl.Poll(ctx, after, "", v.ID, grace)
	}
	if ctx.Err() != nil {
		return v, nil // the grace is over: as it is
	}
	return v, err
}

// judged prints each message's outcome (on stderr with --json, whose
// output carries it already) and fails unless every one is OK.
func judged(cmd *cobra.Command, asJSON bool, views ...emulator.MessageView) error {
	w := cmd.OutOrStdout()
	if asJSON {
		w = cmd.ErrOrStderr()
	}
	unacked, unverified := 0, 0
	for _, v := range views {
		fmt.Fprintf(w, "%s: %s\n", v.ID, v.Outcome.Summary)
		switch {
		case v.Outcome.OK():
		case v.AckedAt == nil:
			unacked++
		default:
			unverified++
		}
	}
	// Counted apart: an acknowledged message that was not verified is
	// not "not acknowledged".
	var parts []string
	if unacked > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d not acknowledged", unacked, len(views)))
	}
	if unverified > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d acknowledged but not verified", unverified, len(views)))
	}
	if len(parts) > 0 {
		return exitError{exitFailure, "messages: " + strings.Join(parts, "; ")}
	}
	return nil
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
	c := &cobra.Command{Use: "paydo", Short: "PayDo account settings: IPN URL registration, status lookup tokens"}
	var project, user, url string
	var remove bool
	reg := &cobra.Command{Use: "register", Short: "Register a project's checkout IPN URL or a user's (single) transfer IPN URL", Args: noArgs}
	b := emulatorFlag(reg)
	reg.Flags().StringVar(&project, "project", "", "project (checkout notifications)")
	reg.Flags().StringVar(&user, "user", "", "user (transfer notifications; one URL each)")
	reg.Flags().StringVar(&url, "listener", "", "the IPN URL: your listener's")
	renamed(reg.Flags(), "url", "listener")
	reg.Flags().BoolVar(&remove, "remove", false, "remove the registration")
	reg.RunE = func(cmd *cobra.Command, _ []string) error {
		if (project == "") == (user == "") {
			return usageError{fmt.Errorf("give --project or --user, one of the two")}
		}
		if (url == "") != remove {
			return usageError{fmt.Errorf("give --listener, or --remove")}
		}
		cl, err := dial(*b)
		if err != nil {
			return err
		}
		if err := cl.RegisterPayDo(cmd.Context(), project, user, url); err != nil {
			return err
		}
		who := "project " + project + " (checkout notifications)"
		if user != "" {
			who = "user " + user + " (transfer notifications)"
		}
		if remove {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: IPN URL removed\n", who)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: IPN URL %s\n", who, url)
		}
		return nil
	}
	c.AddCommand(reg, newPayDoToken())
	return c
}

// newPayDoToken is ipnlab paydo token: a project's status lookup token.
func newPayDoToken() *cobra.Command {
	var project string
	var remove bool
	c := &cobra.Command{Use: "token [TOKEN]", Short: "Set the token a project's status lookups must carry (Authorization: Bearer), or --remove it", Args: cobra.MaximumNArgs(1)}
	b := emulatorFlag(c)
	c.Flags().StringVar(&project, "project", "default", "the project")
	c.Flags().BoolVar(&remove, "remove", false, "remove the token (its checkouts can no longer be looked up)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if (len(args) == 0) != remove {
			return usageError{fmt.Errorf("give a TOKEN, or --remove")}
		}
		cl, err := dial(*b)
		if err != nil {
			return err
		}
		token := ""
		if len(args) == 1 {
			token = args[0]
		}
		if err := cl.SetPayDoToken(cmd.Context(), project, token); err != nil {
			return err
		}
		if remove {
			fmt.Fprintf(cmd.OutOrStdout(), "project %s: lookup token removed\n", project)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "project %s: lookups must carry Authorization: Bearer %s\n", project, token)
		}
		return nil
	}
	return c
}

func newSendPayPal() *cobra.Command {
	var (
		to, kind, charset, rawFile, flavour, lifecycle string
		set, unset, params                             []string
		seed                                           uint64
		asJSON                                         bool
		wait                                           time.Duration
	)
	c := &cobra.Command{
		Use:   "paypal",
		Short: "Send a PayPal IPN (generated from a kind, or a raw body replayed byte for byte)",
		Example: `  ipnlab send paypal --listener http://127.0.0.1:8701/ipn/paypal --kind cart --param items=3
  ipnlab send paypal --listener http://127.0.0.1:8701/ipn/paypal --set custom=order-42 --charset UTF-8
  ipnlab send paypal --listener http://127.0.0.1:8701/ipn/paypal --raw-file captured.txt
  ipnlab send paypal --wait && echo "acknowledged and VERIFIED"`,
		Args: noArgs,
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		if lifecycle != "" {
			if wait > 0 {
				return usageError{fmt.Errorf("--wait and --lifecycle do not go together: a lifecycle's steps wait for the clock")}
			}
			return sendLifecycle(cmd, cl, lifecycle, to, charset, seed, params, asJSON)
		}
		var err error
		req := emulator.SendRequest{NotifyURL: to, Charset: charset, Flavour: flavour, Seed: api.Seed(seed), Unset: unset}
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
				return usageError{fmt.Errorf("--raw-file: %w", err)}
			}
			req.RawBase64 = encodeRaw(raw)
		}
		v, err := cl.SendPayPal(cmd.Context(), req)
		if err != nil {
			return err
		}
		if wait > 0 {
			if v, err = settle(cmd, cl, v.ID, wait); err != nil {
				return err
			}
		}
		if asJSON {
			if err := printJSON(cmd.OutOrStdout(), v); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "id=%s txn_id=%s kind=%s status=%q seed=%d\n", v.ID, v.TxnID, v.Kind, v.Status, v.Seed)
		}
		if wait > 0 {
			return judged(cmd, asJSON, v)
		}
		return nil
	})
	f := c.Flags()
	f.StringVar(&to, "listener", "", "the listener URL (the per-payment notify_url); default: the profile's URL")
	f.StringVar(&kind, "kind", "web_accept", "message kind (ipnlab fixtures list)")
	f.StringArrayVar(&set, "set", nil, "set a field: name=value (repeatable; keeps its place or appends)")
	f.StringArrayVar(&unset, "unset", nil, "remove a field (repeatable)")
	f.StringArrayVar(&params, "param", nil, "pin a generated value: gross=25.00, currency=EUR, items=3, payer_email=..., parent_txn_id=... (repeatable)")
	f.StringVar(&charset, "charset", "", "message charset (default windows-1252)")
	f.StringVar(&flavour, "flavour", "", "paypal (default) or simulator (the IPN Simulator's quirks)")
	f.Uint64Var(&seed, "seed", 0, "seed for this message's values")
	f.StringVar(&rawFile, "raw-file", "", "send this file's bytes exactly")
	f.BoolVar(&asJSON, "json", false, "print the message as JSON")
	f.StringVar(&lifecycle, "lifecycle", "", "send a lifecycle instead (ipnlab fixtures list), each step at its clock offset")
	waitFlag(f, &wait)
	renamed(f, "to", "listener")
	renamed(f, "raw", "raw-file")
	return c
}

func sendLifecycle(cmd *cobra.Command, cl *client.Client, name, to, charset string, seed uint64, params []string, asJSON bool) error {
	for _, flag := range []string{"kind", "set", "unset", "raw-file", "flavour"} {
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
	plan, err := cl.SendLifecycle(cmd.Context(), emulator.LifecycleRequest{Name: name, Params: p, Charset: charset, Seed: api.Seed(seed), NotifyURL: to})
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
		// A parameter the kinds do not take is, most often, a message field.
		for _, p := range ps {
			names := strings.Split(known, ", ")
			if slices.Contains(names, p.Name) {
				continue
			}
			if hint := suggest.Hint(p.Name, names); hint != "" {
				return out, usageError{fmt.Errorf("--param %s: not a parameter%s; parameters are %s", p.Name, hint, known)}
			}
			return out, usageError{fmt.Errorf("--param %s: not a parameter (they are %s); to set a message field such as %s, use --set %s=%s",
				p.Name, known, p.Name, p.Name, p.Value)}
		}
		return out, usageError{fmt.Errorf("--param: %v (known: %s)", err, known)}
	}
	return out, nil
}
