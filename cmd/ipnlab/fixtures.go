package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/generate"
)

func encodeRaw(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func newFixtures() *cobra.Command {
	c := &cobra.Command{Use: "fixtures", Short: "List and print the message kinds fixtures generate"}
	var listJSON bool
	list := &cobra.Command{Use: "list", Short: "List every kind", Args: noArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		if listJSON {
			type entry struct {
				Name        string `json:"name"`
				TxnType     string `json:"txn_type,omitempty"`
				Description string `json:"description"`
			}
			out := map[string][]entry{"paypal": {}, "paydo": {}, "lifecycles": {}}
			for _, k := range generate.Kinds() {
				out["paypal"] = append(out["paypal"], entry{k.Name, k.TxnType, k.Description})
			}
			for _, k := range generate.PayDoKinds() {
				out["paydo"] = append(out["paydo"], entry{Name: k.Name, Description: k.Description})
			}
			for _, l := range generate.Lifecycles() {
				out["lifecycles"] = append(out["lifecycles"], entry{Name: l.Name, Description: l.Description})
			}
			return printJSON(cmd.OutOrStdout(), out)
		}
		// Each kind on its line, the description wrapped under it: the
		// names are long and a table of three columns was 160 wide.
		w := cmd.OutOrStdout()
		section := func(title string, rows [][2]string) {
			fmt.Fprintln(w, title)
			for _, r := range rows {
				fmt.Fprintf(w, "  %s\n", r[0])
				for _, line := range wrap(r[1], 72) {
					fmt.Fprintf(w, "      %s\n", line)
				}
			}
		}
		var rows [][2]string
		for _, k := range generate.Kinds() {
			name := k.Name // its txn_type too, unless said
			switch k.TxnType {
			case k.Name:
			case "":
				name += "  (no txn_type)"
			default:
				name += "  (" + k.TxnType + ")"
			}
			rows = append(rows, [2]string{name, k.Description})
		}
		section("PayPal kinds (send paypal --kind):", rows)
		rows = nil
		for _, k := range generate.PayDoKinds() {
			rows = append(rows, [2]string{k.Name, k.Description})
		}
		section("\nPayDo kinds (send paydo --kind):", rows)
		rows = nil
		for _, l := range generate.Lifecycles() {
			rows = append(rows, [2]string{l.Name, l.Description})
		}
		section("\nLifecycles (send paypal --lifecycle):", rows)
		return nil
	}}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	var (
		seed                                    uint64
		charset, flavour, at, recvEmail, recvID string
		raw, live                               bool
		params                                  []string
	)
	show := &cobra.Command{Use: "show KIND|LIFECYCLE|transfer|checkout", Short: "Print a generated message or lifecycle (reproducible with --seed)", Args: exactArgs(1)}
	show.RunE = func(cmd *cobra.Command, args []string) error {
		if seed == 0 {
			seed = generate.NewSeed()
		}
		start, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return usageError{fmt.Errorf("--at %q: want a time such as 2026-01-15T18:30:00Z", at)}
		}
		g, err := generate.New(seed, generate.Options{
			Charset: charset, Sandbox: !live, Flavour: generate.Flavour(flavour),
			Receiver: generate.Receiver{Email: recvEmail, ID: recvID},
			Start:    start,
		})
		if err != nil {
			return usageError{err}
		}
		ps, err := pairs("param", params)
		if err != nil {
			return err
		}
		ep, err := parseParams(ps)
		if err != nil {
			return err
		}
		p, err := emulator.FixtureParams(ep)
		if err != nil {
			return usageError{err}
		}
		w := cmd.OutOrStdout()
		if args[0] == generate.PayDoTransfer || args[0] == generate.PayDoCheckout {
			m, err := g.PayDo(args[0], generate.PayDoParams{})
			if err != nil {
				return usageError{err}
			}
			body, err := m.JSON()
			if err != nil {
				return err
			}
			if !raw {
				fmt.Fprintf(w, "# paydo kind=%s seed=%d\n", m.Kind, seed)
			}
			_, err = w.Write(append(body, '\n'))
			return err
		}
		steps := []generate.Step{}
		if _, isKind := generate.LookupKind(args[0]); isKind {
			m, err := g.Message(args[0], p)
			if err != nil {
				return usageError{err}
			}
			steps = append(steps, generate.Step{Name: args[0], Message: m})
		} else if steps, err = g.Lifecycle(args[0], p); err != nil {
			return usageError{fmt.Errorf("%q is neither a kind nor a lifecycle (ipnlab fixtures list)", args[0])}
		}
		for i, st := range steps {
			body, err := st.Message.Body()
			if err != nil {
				return err
			}
			if raw {
				if _, err := w.Write(append(body, '\n')); err != nil {
					return err
				}
				continue
			}
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "# kind=%s seed=%d charset=%s", st.Message.Kind, seed, st.Message.Fields.Value("charset"))
			if len(steps) > 1 {
				fmt.Fprintf(w, " step=%s after=%s", st.Name, st.After)
			}
			fmt.Fprintln(w)
			for _, f := range st.Message.Fields {
				fmt.Fprintf(w, "%s = %s\n", f.Name, quoteIfNeeded(f.Value))
			}
		}
		return nil
	}
	f := show.Flags()
	f.Uint64Var(&seed, "seed", 0, "seed (0: drawn and printed)")
	f.StringVar(&charset, "charset", "", "message charset (default windows-1252)")
	f.StringVar(&flavour, "flavour", "", "paypal (default) or simulator")
	f.BoolVar(&raw, "raw", false, "print the encoded body instead of the fields")
	f.BoolVar(&live, "live", false, "no test_ipn=1")
	f.StringArrayVar(&params, "param", nil, "pin a generated value (as for send paypal)")
	// With the seed, these make a message the emulator generated again,
	// byte for byte: its creation time and the profile's receiver then.
	f.StringVar(&at, "at", "2026-01-15T18:30:00Z", "the message's time (the emulator's clock when it made it)")
	f.StringVar(&recvEmail, "receiver-email", emulator.DefaultReceiverEmail, "the merchant's receiver_email")
	f.StringVar(&recvID, "receiver-id", emulator.DefaultReceiverID, "the merchant's receiver_id")
	c.AddCommand(list, show)
	return c
}

func quoteIfNeeded(s string) string {
	for _, r := range s {
		if r < ' ' {
			return fmt.Sprintf("%q", s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// wrap breaks text into lines of at most width runes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len([]rune(line))+1+len([]rune(word)) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
