package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/client"
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
