// Package listenercontainer is a testcontainers-go module that runs the
// ipnlab reference listener (`ipnlab listen`) from the ipnlab image: a
// listener that does everything right, or one of the mutant gallery's
// deliberately broken ones (WithMutant), for checking a harness or a CI job.
//
//	emu, _ := emulatorcontainer.Run(ctx, "ipnlab:dev")
//	lst, err := listenercontainer.Run(ctx, "ipnlab:dev",
//		listenercontainer.WithVerifyURL(emu.VerifyURL()))
//	defer testcontainers.TerminateContainer(lst)
//
// Host networking, 127.0.0.1 on a free port, no Ryuk needed: see package
// containers.
package listenercontainer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/ipnlab/ipnlab/containers"
	"github.com/ipnlab/ipnlab/listener/mutants"
)

// DefaultStartupTimeout bounds the wait for the ready line and /healthz.
const DefaultStartupTimeout = 30 * time.Second

var readyLine = regexp.MustCompile(`ipnlab listener ready addr=(\S+)`)

// Container is a running reference (or mutant) listener.
type Container struct {
	testcontainers.Container
	ready *containers.Ready
}

// Addr is the HOST:PORT the listener listens on (on the host's loopback).
func (c *Container) Addr() string { return c.ready.Addr() }

// BaseURL is the listener's base URL; its probe API is under /probe/v1/
// (the conformance suite's --probe takes this URL).
func (c *Container) BaseURL() string { return "http://" + c.Addr() }

// PayPalURL is the listener's PayPal IPN endpoint.
func (c *Container) PayPalURL() string { return c.BaseURL() + "/ipn/paypal" }

// PayDoURL is the listener's PayDo endpoint.
func (c *Container) PayDoURL() string { return c.BaseURL() + "/ipn/paydo" }

type settings struct {
	args      []string
	verifyURL string
	timeout   time.Duration
}

// Option configures the listener; like emulatorcontainer's options it is a
// testcontainers.ContainerCustomizer (WithCmdArgs passes any other
// `ipnlab listen` flag).
type Option func(*settings) error

// Customize is a no-op: Run reads the settings itself.
func (Option) Customize(*testcontainers.GenericContainerRequest) error { return nil }

// WithVerifyURL is where the listener posts PayPal messages back: an
// emulator's VerifyURL. Required.
func WithVerifyURL(raw string) Option {
	return func(s *settings) error {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("verify URL %q: want http://host:port/cgi-bin/webscr", raw)
		}
		s.verifyURL = raw
		return nil
	}
}

// WithMutant runs one of the mutant gallery's broken listeners instead.
func WithMutant(name string) Option {
	return func(s *settings) error {
		if _, ok := mutants.Lookup(name); !ok {
			return fmt.Errorf("mutant %q: not in the gallery (ipnlab listen --mutant list)", name)
		}
		s.args = append(s.args, "--mutant", name)
		return nil
	}
}

// WithReceiver adds a receiver email or id the listener accepts (default:
// the emulator's merchant).
func WithReceiver(emailOrID string) Option {
	return func(s *settings) error {
		if emailOrID == "" {
			return errors.New("receiver: empty")
		}
		s.args = append(s.args, "--receiver", emailOrID)
		return nil
	}
}

// WithCustomer adds a known customer.
func WithCustomer(email, id string) Option {
	return func(s *settings) error {
		if email == "" || id == "" || strings.Contains(email, "=") {
			return fmt.Errorf("customer %q=%q: want an email and an id", email, id)
		}
		s.args = append(s.args, "--customer", email+"="+id)
		return nil
	}
}

// WithUnknownPayers says what happens to payments from unknown payers:
// "hold" (no credit) or "create" (a customer per new payer email).
func WithUnknownPayers(mode string) Option {
	return func(s *settings) error {
		if mode != "hold" && mode != "create" {
			return fmt.Errorf("unknown payers %q: want hold or create", mode)
		}
		s.args = append(s.args, "--unknown-payers", mode)
		return nil
	}
}

// WithPayDoSources sets the addresses PayDo notifications are accepted
// from (default: PayDo's two public addresses; an emulator on loopback
// sends from 127.0.0.1).
func WithPayDoSources(sources ...string) Option {
	return func(s *settings) error {
		for _, src := range sources {
			if _, err := netip.ParsePrefix(src); err != nil {
				if _, err := netip.ParseAddr(src); err != nil {
					return fmt.Errorf("PayDo source %q: want an IP or a CIDR", src)
				}
			}
			s.args = append(s.args, "--paydo-allow", src)
		}
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

// Run starts the listener from img and waits until it answers /healthz.
func Run(ctx context.Context, img string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	s := settings{timeout: DefaultStartupTimeout}
	if err := containers.Apply[settings, Option](&s, opts); err != nil {
		return nil, fmt.Errorf("listenercontainer: %w", err)
	}
	if s.verifyURL == "" {
		return nil, errors.New("listenercontainer: no verify URL (WithVerifyURL)")
	}
	ready := containers.NewReady(readyLine, "/healthz", s.timeout)
	cmd := slices.Concat([]string{"listen", "--addr", "127.0.0.1:0", "--verify-url", s.verifyURL}, s.args)
	base := []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(cmd...), containers.HostNetwork(), testcontainers.WithWaitStrategy(ready),
	}
	ctr, err := containers.Run(ctx, img, ready, append(base, opts...))
	if err != nil {
		return nil, fmt.Errorf("listenercontainer: %w", err)
	}
	return &Container{Container: ctr, ready: ready}, nil
}
