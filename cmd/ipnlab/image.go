package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/containers/undertest"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/internal/redact"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// imageFlags run the listener under test from a container image.
type imageFlags struct {
	image   string
	env     []string
	args    []string
	port    int
	startup time.Duration
}

func (f *imageFlags) add(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.image, "listener-image", "", "run the listener under test from this image (host networking; see docs/ci.md for the variables it gets)")
	fs.StringArrayVar(&f.env, "listener-env", nil, "K=V set in the listener's container (repeatable; wins over the injected variables)")
	fs.StringArrayVar(&f.args, "listener-arg", nil, "argument replacing the image's CMD (repeatable, in order)")
	fs.IntVar(&f.port, "listener-port", 0, "port the listener's container serves on (0: a free one, passed as PORT and IPNLAB_LISTEN_ADDR)")
	fs.DurationVar(&f.startup, "listener-startup", undertest.DefaultStartupTimeout, "longest wait for the listener's port to accept connections")
}

// replayFlags are the flags that run the image again as this run did:
// the image and its settings, and --listener, --paydo-listener and
// --probe as given (paths resolved against the next container).
func (f *imageFlags) replayFlags(cmd *cobra.Command, cfg *conformance.Config) conformance.Container {
	c := conformance.Container{Listener: cfg.Listener, PayDoListener: cfg.PayDoListener, Probe: cfg.Probe, Flags: []string{"--listener-image", f.image}}
	for _, kv := range f.env {
		// A database URL's password stays out of reports, as --probe's.
		k, v, _ := strings.Cut(kv, "=")
		c.Flags = append(c.Flags, "--listener-env", k+"="+redact.DSN(v))
	}
	for _, a := range f.args {
		c.Flags = append(c.Flags, "--listener-arg", a)
	}
	if f.port != 0 {
		c.Flags = append(c.Flags, "--listener-port", fmt.Sprint(f.port))
	}
	if cmd.Flags().Changed("listener-startup") {
		c.Flags = append(c.Flags, "--listener-startup", f.startup.String())
	}
	return c
}

// unused refuses the other --listener-* container flags without an image.
func (f *imageFlags) unused(cmd *cobra.Command) error {
	for _, name := range []string{"listener-env", "listener-arg", "listener-port", "listener-startup"} {
		if cmd.Flags().Changed(name) {
			return usageError{fmt.Errorf("--%s needs --listener-image", name)}
		}
	}
	return nil
}

// startImage starts the listener image and points cfg at it: the emulator
// listens first, so its address can be injected, and --listener,
// --paydo-listener and --probe given as paths are resolved against the
// container's address. The caller stops the returned listener.
func (f *imageFlags) startImage(ctx context.Context, cmd *cobra.Command, cfg *conformance.Config, verbose io.Writer) (*undertest.Listener, error) {
	if f.startup <= 0 {
		return nil, usageError{fmt.Errorf("--listener-startup %s: must be positive", f.startup)}
	}
	env := map[string]string{}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, usageError{fmt.Errorf("--listener-env %q: want NAME=VALUE", kv)}
		}
		env[k] = v
	}
	if cfg.Listener == "" {
		return nil, usageError{fmt.Errorf("--listener-image needs --listener: the path your listener takes PayPal IPNs on (e.g. /ipn/paypal) or a full URL")}
	}
	// Replay lines run the image again, with the paths as given: the
	// container's port dies with it.
	replay := f.replayFlags(cmd, cfg)
	cfg.Container = &replay
	// The verify URL is injected, so a fixed emulator port is only needed
	// when one was asked for.
	if !cmd.Flags().Changed("emulator-addr") && os.Getenv("IPNLAB_EMULATOR_ADDR") == "" && cfg.EmulatorAddr == conformance.Defaults().EmulatorAddr {
		cfg.EmulatorAddr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.EmulatorAddr)
	if err != nil {
		return nil, usageError{fmt.Errorf("the emulator cannot listen on %s: %w", cfg.EmulatorAddr, err)}
	}
	var mounts map[string]string
	if cfg.Intercept {
		// The proxy and the CA, as ipnlab ca env says, with the CA's files
		// mounted in the container; --listener-env still wins.
		ca, err := loadCA()
		if err != nil {
			ln.Close()
			return nil, err
		}
		mounts = ca.Mounts()
		for _, kv := range ca.Env("http://"+ln.Addr().String(), intercept.ContainerLayout()) {
			if k, v, _ := strings.Cut(kv, "="); env[k] == "" {
				env[k] = v
			}
		}
	}
	if cfg.WebhookListener != "" {
		// PayPal REST webhooks: the webhook id they are signed for, and
		// the CA that issues the signing certificates, mounted.
		ca, err := loadCA()
		if err != nil {
			ln.Close()
			return nil, err
		}
		mounts = ca.Mounts()
		for k, v := range map[string]string{undertest.EnvWebhookID: cfg.WebhookID, undertest.EnvSigningCA: intercept.ContainerLayout().Cert} {
			if env[k] == "" {
				env[k] = v
			}
		}
	}
	var hosts map[string]string
	if host, port, err := net.SplitHostPort(cfg.TLSAddr); err == nil && port == "443" {
		// The route without a proxy: PayPal's hosts are the verifier's,
		// and the CA is all a client needs (with --intercept too, a
		// client that reads its proxy variables still takes the proxy).
		ca, err := loadCA()
		if err != nil {
			ln.Close()
			return nil, err
		}
		mounts = ca.Mounts()
		for _, v := range intercept.Vars("", intercept.ContainerLayout()) {
			if v.Trust && env[v.Name] == "" {
				env[v.Name] = v.Value
			}
		}
		hosts = map[string]string{}
		for _, h := range intercept.Hosts {
			hosts[h] = host
		}
	}
	lst, err := undertest.Start(ctx, undertest.Spec{
		Image: f.image, Args: f.args, Env: env, Port: f.port, EmulatorAddr: ln.Addr().String(),
		ReceiverEmail: cfg.ReceiverEmail, ReceiverID: cfg.ReceiverID, PayDoSource: cfg.PayDoSource, PayDoToken: cfg.PayDoToken,
		StartupTimeout: f.startup, Output: verbose, Mounts: mounts, Hosts: hosts,
	})
	if err != nil {
		ln.Close()
		return nil, usageError{err}
	}
	base := "http://" + lst.Addr()
	for _, u := range []*string{&cfg.Listener, &cfg.PayDoListener, &cfg.WebhookListener, &cfg.Probe} {
		if strings.HasPrefix(*u, "/") {
			*u = base + *u
		}
	}
	cfg.EmulatorListener = ln
	fmt.Fprintf(cmd.ErrOrStderr(), "listener container ready: image=%s addr=%s verify_url=%s\n", f.image, lst.Addr(), lst.Env()[undertest.EnvVerifyURL])
	return lst, nil
}

// stopImage removes the container, printing the end of its output first
// when the run went wrong and it was not already streamed.
func stopImage(cmd *cobra.Command, lst *undertest.Listener, failed, streamed bool) {
	if failed && !streamed {
		if last := lst.LastLines(30); last != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "the listener container's output ends:\n%s\n", last)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lst.Stop(ctx); err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "ipnlab:", err)
	}
}
