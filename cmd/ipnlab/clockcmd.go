package main

import (
	"fmt"
	"time"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/spf13/cobra"
)

// ipnlab clock: reading and moving a running emulator's clock.

// printClock prints the clock after a clock command.
func printClock(cmd *cobra.Command, v emulator.ClockView) {
	fmt.Fprintf(cmd.OutOrStdout(), "now=%s mode=%s pending=%d\n", v.Now.Format(time.RFC3339), v.Mode, v.Pending)
}

func newClock() *cobra.Command {
	c := &cobra.Command{Use: "clock", Short: "Read or move the emulator's clock"}
	show := &cobra.Command{Use: "show", Short: "Print the clock", Args: noArgs}
	sb := emulatorFlag(show)
	showJSON := show.Flags().Bool("json", false, "print JSON")
	withClient(show, sb, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		v, err := cl.Clock(cmd.Context())
		if err != nil {
			return err
		}
		if *showJSON {
			return printJSON(cmd.OutOrStdout(), v)
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
