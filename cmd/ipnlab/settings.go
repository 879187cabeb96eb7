package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/spf13/cobra"
)

// ipnlab fault and profile: the verifier's faults and the IPN settings of a
// running emulator.

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
	var on, off, releaseHeld bool
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
			if cmd.Flags().Changed("listener") {
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
			if cmd.Flags().Changed("release-held") {
				p.ReleaseHeld = releaseHeld
			}
			if p, err = cl.SetProfile(ctx, p); err != nil {
				return err
			}
		}
		return printJSON(cmd.OutOrStdout(), p)
	}
	f := c.Flags()
	f.StringVar(&notifyURL, "listener", "", "the account's IPN URL: your listener's")
	renamed(f, "notify-url", "listener")
	f.BoolVar(&on, "on", false, "switch notifications on (Held messages wait for a resend unless --release-held)")
	f.BoolVar(&off, "off", false, "switch notifications off")
	f.BoolVar(&releaseHeld, "release-held", false, "ipnlab's opt-in: switching notifications on sends the Held messages (PayPal waits for a resend)")
	f.StringVar(&email, "receiver-email", "", "the merchant's receiver_email")
	f.StringVar(&id, "receiver-id", "", "the merchant's receiver_id")
	return c
}
