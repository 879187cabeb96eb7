// Command ipnlab is one binary for the IPN sandbox: the emulator (serve),
// sending notifications, reading IPN History, moving the virtual clock,
// and generating fixtures.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/ipnlab/ipnlab/internal/suggest"
	"github.com/ipnlab/ipnlab/version"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes: 1 for a failure the user asked us to detect, 2 when the
// command itself could not run (bad flags, unreachable emulator).
const (
	exitFailure = 1
	exitHarness = 2
)

// negativeArg matches pflag's complaint about an argument such as -1h.
var negativeArg = regexp.MustCompile(`unknown shorthand flag: '[0-9]' in (-[0-9][^\s]*)`)

// usageError marks errors in how the command was called.
type usageError struct{ error }

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "ipnlab") { // a command path names it already
			msg = "ipnlab: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(exitHarness)
		}
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(exitHarness)
	}
}

// exitError carries an exit code chosen by a command.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Version:       version.Read().String(),
		Use:           "ipnlab",
		Short:         "An offline sandbox and conformance harness for payment notifications (IPN)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// "-1h" reaches pflag as the shorthand flags 1 and h.
		if m := negativeArg.FindStringSubmatch(err.Error()); m != nil {
			return usageError{fmt.Errorf("%s: %s: a negative value is not accepted here (the clock only moves forward)", c.CommandPath(), m[1])}
		}
		if args := c.Flags().Args(); c.Annotations["group"] != "" && len(args) > 0 {
			return unknownSubcommand(c, args[0]) // "send paypl --kind x": the word, not the flag, is wrong
		}
		return usageError{fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())}
	})
	root.AddCommand(newServe(), newAccounts(), newExplore(), newListen(), newLab(), newConform(), newRun(), newSend(), newClock(), newHistory(), newMessage(), newResend(),
		newTail(), newPostbacks(), newFault(), newProfile(), newPayDo(), newFixtures(), newHealthz(), newLoad(), newBackup(), newCA(), newProbe(), newVersion())
	root.SetVersionTemplate("{{.Version}}\n")
	groups(root)
	return root
}

// groups makes every command group under c (a command that only holds
// others: send, history's) refuse a word that names none of its
// commands, with a suggestion, instead of printing its help and
// succeeding; alone, it prints its help.
func groups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		groups(sub)
	}
	if c.Runnable() || !c.HasSubCommands() || c.Parent() == nil {
		return
	}
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations["group"] = "true"
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return unknownSubcommand(cmd, args[0])
		}
		return cmd.Help()
	}
}

// unknownSubcommand is the error for a command group given a word that
// names none of its commands: its annotation "noun" says what the word
// stands for (send's is "provider").
func unknownSubcommand(c *cobra.Command, word string) error {
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	noun := c.Annotations["noun"]
	if noun == "" {
		noun = "command"
	}
	return usageError{fmt.Errorf("%s: unknown %s %q%s: want %s", c.CommandPath(), noun, word, suggest.Hint(word, names), strings.Join(names, " or "))}
}

// noArgs and exactArgs wrap cobra's checks as usage errors.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return usageError{fmt.Errorf("%s: %w", c.CommandPath(), err)}
		}
		return nil
	}
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q%s", c.CommandPath(), args[0], optionalValueHint(c, args[0]))}
	}
	return nil
}

// optionalValueHint explains an argument that is the value of a flag
// whose value is optional (--wait): such a flag takes it only after "=".
func optionalValueHint(c *cobra.Command, arg string) string {
	hint := ""
	c.Flags().Visit(func(f *pflag.Flag) {
		if f.NoOptDefVal != "" && hint == "" {
			hint = fmt.Sprintf(" (if it is --%s's value, write --%s=%s: its value is optional, so it comes after \"=\")", f.Name, f.Name, arg)
		}
	})
	return hint
}

// interruptible is parent until Ctrl-C or SIGTERM: the one place the
// commands hear signals.
func interruptible(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// notifyStop starts hearing Ctrl-C and SIGTERM and returns a channel
// closed at the first. Call it before saying ready: a signal that comes
// right after must stop the command cleanly, not by the default action
// (exit 143, seen under load).
func notifyStop() <-chan struct{} {
	ctx, stop := interruptible(context.Background())
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		stop()
		close(done)
	}()
	return done
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ipnlab's version and the commit it was built from",
		Args:  noArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Read()) },
	}
}
