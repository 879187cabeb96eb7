// Package emulatorcontainer is a testcontainers-go module that runs the
// ipnlab emulator (`ipnlab serve`) from the ipnlab image, in the style of
// the official modules:
//
//	emu, err := emulatorcontainer.Run(ctx, "ipnlab:dev",
//		emulatorcontainer.WithClock("manual"),
//		emulatorcontainer.WithNotifyURL("http://127.0.0.1:8080/ipn"))
//	defer testcontainers.TerminateContainer(emu)
//	// point your listener's verify URL at emu.VerifyURL()
//
// The container uses host networking and binds 127.0.0.1 on a free port
// (see package containers). It needs no Ryuk reaper: run with
// TESTCONTAINERS_RYUK_DISABLED=true and terminate the container yourself;
// Run terminates it when it fails to become ready.
package emulatorcontainer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/ipnlab/ipnlab/containers"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
)

// DefaultStartupTimeout bounds the wait for the ready line and /healthz.
const DefaultStartupTimeout = 30 * time.Second

var readyLine = regexp.MustCompile(`ipnlab emulator ready addr=(\S+)`)

// Container is a running emulator.
type Container struct {
	testcontainers.Container
	ready *containers.Ready
	token string
}

// Addr is the HOST:PORT the emulator listens on (on the host's loopback).
func (c *Container) Addr() string { return c.ready.Addr() }

// BaseURL is the emulator's base URL (control API under /api/v1/).
func (c *Container) BaseURL() string { return "http://" + c.Addr() }

// VerifyURL is where listeners post PayPal messages back.
func (c *Container) VerifyURL() string { return c.BaseURL() + "/cgi-bin/webscr" }

// Client is a control-API client for this emulator (carrying its token).
func (c *Container) Client() *client.Client {
	cl, err := client.New(c.BaseURL())
	if err != nil {
		panic(fmt.Sprintf("emulatorcontainer: own base URL %q: %v", c.BaseURL(), err)) // Addr came from the ready line
	}
	return cl.WithToken(c.token)
}

type settings struct {
	args    []string
	faults  []api.FaultRequest
	token   string
	timeout time.Duration
}

// Option configures the emulator. It is a testcontainers.ContainerCustomizer
// so it mixes with testcontainers' own options (WithEnv, WithCmdArgs for
// any other `ipnlab serve` flag, WithLogConsumers, ...).
type Option func(*settings) error

// Customize is a no-op: Run reads the settings itself.
func (Option) Customize(*testcontainers.GenericContainerRequest) error { return nil }

// WithClock sets the clock: "real", "manual" (moves only through the API)
// or "scale:N".
func WithClock(mode string) Option {
	return func(s *settings) error {
		if _, err := api.ParseClockMode(mode); err != nil {
			return fmt.Errorf("clock: %w", err)
		}
		s.args = append(s.args, "--clock", mode)
		return nil
	}
}

// WithVerifyMode sets the verifier: "paypal" (as the live service) or
// "strict" (the documentation's letter).
func WithVerifyMode(mode string) Option {
	return func(s *settings) error {
		if _, err := api.ParseVerifyMode(mode); err != nil {
			return fmt.Errorf("verify mode: %w", err)
		}
		s.args = append(s.args, "--verify", mode)
		return nil
	}
}

// WithFault makes the verifier misbehave from the start (set through the
// control API once the emulator is ready), e.g. {Kind: "invalid", Count: 1}.
func WithFault(f api.FaultRequest) Option {
	return func(s *settings) error {
		for _, k := range api.FaultKinds {
			if api.FaultKind(f.Kind) == k {
				s.faults = append(s.faults, f)
				return nil
			}
		}
		return fmt.Errorf("fault kind %q: want one of %v", f.Kind, api.FaultKinds)
	}
}

// WithNotifyURL sets the account's IPN URL (and turns notifications on).
func WithNotifyURL(url string) Option {
	return func(s *settings) error {
		s.args = append(s.args, "--listener", url)
		return nil
	}
}

// WithSeed makes generated messages reproducible.
func WithSeed(seed uint64) Option {
	return func(s *settings) error {
		s.args = append(s.args, "--seed", strconv.FormatUint(seed, 10))
		return nil
	}
}

// WithAPIToken requires this token on the control API; Client sends it.
func WithAPIToken(token string) Option {
	return func(s *settings) error {
		if token == "" {
			return errors.New("api token: empty")
		}
		s.token = token
		return nil
	}
}

// WithStartupTimeout bounds the wait for readiness (default 30 s).
func WithStartupTimeout(d time.Duration) Option {
	return func(s *settings) (err error) {
		s.timeout, err = containers.StartupTimeout(d)
		return err
	}
}

// Run starts the emulator from img (built by `make image`: ipnlab:dev) and
// waits until it answers /healthz.
func Run(ctx context.Context, img string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	s := settings{timeout: DefaultStartupTimeout}
	if err := containers.Apply[settings, Option](&s, opts); err != nil {
		return nil, fmt.Errorf("emulatorcontainer: %w", err)
	}
	ready := containers.NewReady(readyLine, "/healthz", s.timeout)
	base := []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(append([]string{"serve", "--emulator-addr", "127.0.0.1:0"}, s.args...)...),
		containers.HostNetwork(),
		testcontainers.WithWaitStrategy(ready),
	}
	if s.token != "" {
		base = append(base, testcontainers.WithEnv(map[string]string{"IPNLAB_API_TOKEN": s.token}))
	}
	ctr, err := containers.Run(ctx, img, ready, append(base, opts...))
	if err != nil {
		return nil, fmt.Errorf("emulatorcontainer: %w", err)
	}
	c := &Container{Container: ctr, ready: ready, token: s.token}
	for _, f := range s.faults {
		if err := c.Client().SetFault(ctx, "", f); err != nil {
			return nil, errors.Join(fmt.Errorf("emulatorcontainer: fault %s: %w", f.Kind, err), testcontainers.TerminateContainer(ctr))
		}
	}
	return c, nil
}
