// Package undertest runs a team's own listener image for `ipnlab conform
// --listener-image`: host networking, where the emulator is and what it
// expects injected as environment variables, ready once its port accepts
// connections, removed afterwards.
package undertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/ipnlab/ipnlab/containers"
)

// The variables set in the listener's container (docs/ci.md). Values given
// in Spec.Env win.
const (
	EnvVerifyURL     = "IPNLAB_VERIFY_URL"     // http://127.0.0.1:E/cgi-bin/webscr: post PayPal messages back here
	EnvEmulatorURL   = "IPNLAB_EMULATOR_URL"   // http://127.0.0.1:E: the emulator's base URL
	EnvListenAddr    = "IPNLAB_LISTEN_ADDR"    // 127.0.0.1:P: where to listen
	EnvPort          = "PORT"                  // P, for images that only read PORT
	EnvReceiverEmail = "IPNLAB_RECEIVER_EMAIL" // the merchant's receiver_email the checks use
	EnvReceiverID    = "IPNLAB_RECEIVER_ID"    // the merchant's receiver_id
	EnvPayDoSource   = "IPNLAB_PAYDO_SOURCE"   // the address PayDo notifications come from
)

// DefaultStartupTimeout bounds the wait for the listener's port.
const DefaultStartupTimeout = 60 * time.Second

// Spec is a listener image to run.
type Spec struct {
	Image string
	// Args replace the image's CMD when given.
	Args []string
	// Env is set over the injected variables.
	Env map[string]string
	// Port the listener serves on (host networking: a host port); 0 picks
	// a free one and tells the listener through PORT and IPNLAB_LISTEN_ADDR.
	Port int
	// EmulatorAddr is where the emulator listens (HOST:PORT on loopback).
	EmulatorAddr                           string
	ReceiverEmail, ReceiverID, PayDoSource string
	StartupTimeout                         time.Duration
	// Output receives the container's output as it runs (nil: only kept
	// for Tail).
	Output io.Writer
}

// Listener is a running listener under test.
type Listener struct {
	ctr  testcontainers.Container
	addr string
	env  map[string]string
	out  *lines
}

// Addr is where the listener accepts connections (127.0.0.1:P).
func (l *Listener) Addr() string { return l.addr }

// Env is every variable set in the container.
func (l *Listener) Env() map[string]string { return maps.Clone(l.env) }

// LastLines is the end of the container's output, indented ("" when it
// printed nothing).
func (l *Listener) LastLines(n int) string { return containers.LastLines(l.out.bytes(), n) }

// Stop removes the container.
func (l *Listener) Stop(ctx context.Context) error {
	if err := l.ctr.Terminate(ctx); err != nil {
		return fmt.Errorf("remove the listener container: %w", err)
	}
	return nil
}

// Start runs the image and waits until its port accepts connections. On
// failure the container is removed and the error ends with its output.
func Start(ctx context.Context, spec Spec) (*Listener, error) {
	if spec.Image == "" {
		return nil, errors.New("listener image: empty name")
	}
	if spec.Port < 0 || spec.Port > 65535 {
		return nil, fmt.Errorf("listener port %d: want 1 to 65535, or 0 for a free one", spec.Port)
	}
	port := spec.Port
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	timeout := spec.StartupTimeout
	if timeout <= 0 {
		timeout = DefaultStartupTimeout
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	env := map[string]string{
		EnvVerifyURL: "http://" + spec.EmulatorAddr + "/cgi-bin/webscr", EnvEmulatorURL: "http://" + spec.EmulatorAddr,
		EnvListenAddr: addr, EnvPort: strconv.Itoa(port),
		EnvReceiverEmail: spec.ReceiverEmail, EnvReceiverID: spec.ReceiverID, EnvPayDoSource: spec.PayDoSource,
	}
	maps.Copy(env, spec.Env)
	out := &lines{w: spec.Output}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(env), containers.HostNetwork(),
		testcontainers.WithWaitStrategy(&containers.Port{Addr: addr, Wait: timeout}),
		testcontainers.WithLogConsumers(out),
	}
	if len(spec.Args) > 0 {
		opts = append(opts, testcontainers.WithCmd(spec.Args...))
	}
	ctr, err := testcontainers.Run(ctx, spec.Image, opts...)
	if err != nil {
		if ctr != nil {
			err = errors.Join(err, ctr.Terminate(context.WithoutCancel(ctx)))
		}
		return nil, fmt.Errorf("start listener image %s: %w", spec.Image, err)
	}
	return &Listener{ctr: ctr, addr: addr, env: env, out: out}, nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the listener binds; the listener would then fail to start
// and say so, and --listener-port fixes the port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port for the listener: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lines keeps the container's output (the last 256 KiB) and copies it to w.
type lines struct {
	mu  sync.Mutex
	buf []byte
	w   io.Writer
}

const keep = 256 << 10

func (l *lines) Accept(log testcontainers.Log) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, log.Content...)
	if len(l.buf) > keep {
		l.buf = l.buf[len(l.buf)-keep:]
	}
	if l.w != nil {
		for line := range bytes.Lines(log.Content) {
			fmt.Fprintf(l.w, "listener| %s", line)
			if !bytes.HasSuffix(line, []byte("\n")) {
				fmt.Fprintln(l.w)
			}
		}
	}
}

func (l *lines) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf)
}
