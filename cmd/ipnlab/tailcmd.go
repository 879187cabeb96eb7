package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/events"
	"github.com/ipnlab/ipnlab/emulator/tail"
	"github.com/spf13/cobra"
)

// ipnlab tail, and serve/lab --tail: one line per delivery, postback and
// verdict, as they happen.

func newTail() *cobra.Command {
	var (
		messageID string
		all       bool
	)
	c := &cobra.Command{
		Use:   "tail",
		Short: "Print one line per message, delivery attempt, postback and verdict as they happen (Ctrl-C stops)",
		Long: `Follow a running emulator: one line for every message created, delivery
attempt (with what the listener answered), manual resend, postback (with
the verdict and its reason), PayDo lookup and clock move. Coloured on a
terminal; plain with NO_COLOR set, in CI, or into a pipe.`,
		Args: noArgs,
	}
	base := emulatorFlag(c)
	withClient(c, base, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
		var after uint64
		if !all {
			last, err := cl.LastEvent(cmd.Context())
			if err != nil {
				return err
			}
			after = last
		}
		src := func(ctx context.Context, after uint64) ([]events.Event, uint64, error) {
			return cl.Poll(ctx, after, "", messageID, 30*time.Second)
		}
		ctx, stop := interruptible(cmd.Context())
		defer stop()
		return tail.Follow(ctx, src, after, printerFor(cmd), nil)
	})
	f := c.Flags()
	f.StringVar(&messageID, "message", "", "only this message's lines")
	f.BoolVar(&all, "all", false, "start with the events the emulator still keeps, not from now")
	return c
}

// printerFor prints to the command's output, coloured only on a terminal.
func printerFor(cmd *cobra.Command) tail.Printer {
	p := tail.Printer{W: cmd.OutOrStdout()}
	if f, ok := cmd.OutOrStdout().(*os.File); ok {
		p.Color = tail.ColorFor(f)
	}
	return p
}

// startTail prints srv's events from now on until the returned stop is
// called (serve --tail, lab --tail).
func startTail(cmd *cobra.Command, bus *events.Bus) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := tail.Follow(ctx, tail.BusSource(bus), bus.Last(), printerFor(cmd), nil); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "ipnlab:", err)
		}
	}()
	return func() { cancel(); <-done }
}
