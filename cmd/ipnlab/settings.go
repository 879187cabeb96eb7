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
		if err := cl.SetFault(cmd.Context(), messageID, emulator.FaultRequest{Kind: args[0], Delay: delay, Count: count}); err != nil {
			return err
		}
		scope, times := "every postback", "until cleared"
		if messageID != "" {
			scope = "postbacks of message " + messageID
		}
		if count > 0 {
			times = fmt.Sprintf("for the next %d", count)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "fault %s set on %s, %s\n", args[0], scope, times)
		return nil
	})
	clear := &cobra.Command{Use: "clear", Short: "Clear a fault", Args: noArgs}
	cb := emulatorFlag(clear)
	var clearID string
	clear.Flags().StringVar(&clearID, "message", "", "the message's fault instead of the global one")
	withClient(clear, cb, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		if err := cl.ClearFault(cmd.Context(), clearID); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "fault cleared: the verifier answers truly")
		return nil
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
	var on, off, releaseHeld, asJSON bool
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
		changing := false
		for _, name := range []string{"listener", "notify-url", "receiver-email", "receiver-id", "on", "off", "release-held"} {
			changing = changing || cmd.Flags().Changed(name)
		}
		if changing {
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
		if asJSON {
			return printJSON(cmd.OutOrStdout(), p)
		}
		state := "off (new messages are Held until resent)"
		if p.Enabled {
			state = "on"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "notifications: %s\nlistener:      %s\nreceiver:      %s / %s\nrelease held:  %v\n",
			state, orDash(p.NotifyURL), orDash(p.ReceiverEmail), orDash(p.ReceiverID), p.ReleaseHeld)
		return nil
	}
	f := c.Flags()
	f.StringVar(&notifyURL, "listener", "", "the account's IPN URL: your listener's")
	renamed(f, "notify-url", "listener")
	f.BoolVar(&on, "on", false, "switch notifications on (Held messages wait for a resend unless --release-held)")
	f.BoolVar(&off, "off", false, "switch notifications off")
	f.BoolVar(&releaseHeld, "release-held", false, "ipnlab's opt-in: switching notifications on sends the Held messages (PayPal waits for a resend)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&email, "receiver-email", "", "the merchant's receiver_email")
	f.StringVar(&id, "receiver-id", "", "the merchant's receiver_id")
	return c
}
