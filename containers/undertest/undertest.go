// Package undertest runs a team's own listener image for `ipnlab conform
// --listener-image`: host networking, where the emulator is and what it
// expects injected as environment variables, ready once its port accepts
// connections, removed afterwards. It drives the docker command (as CI
// machines that build images have it) rather than linking a container
// client into the ipnlab binary.
package undertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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
	EnvPayDoToken    = "IPNLAB_PAYDO_TOKEN"    // the token PayDo's status lookup wants (Authorization: Bearer)
	// With --webhook-listener (PayPal REST webhooks):
	EnvWebhookID = "IPNLAB_WEBHOOK_ID" // the webhook id events are signed for
	EnvSigningCA = "IPNLAB_SIGNING_CA" // the CA (PEM, mounted) that issues PayPal's signing certificates
)

// EnvNames are the variables set in the listener's container, in the
// order docs/ci.md lists them (ipnlab conform --help names them from here).
var EnvNames = []string{EnvVerifyURL, EnvEmulatorURL, EnvListenAddr, EnvPort, EnvReceiverEmail, EnvReceiverID, EnvPayDoSource, EnvPayDoToken,
	EnvWebhookID, EnvSigningCA}

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
	EmulatorAddr                                       string
	ReceiverEmail, ReceiverID, PayDoSource, PayDoToken string
	StartupTimeout                                     time.Duration
	// Output receives the container's output as it runs (nil: only kept
	// for Tail).
	Output io.Writer
	// Mounts are host files mounted read-only in the container, by their
	// path in it (ipnlab's CA under conform --intercept).
	Mounts map[string]string
	// Hosts are names the container resolves to an address of this
	// machine (PayPal's verify hosts on the route without a proxy).
	Hosts map[string]string
}

// Listener is a running listener under test.
type Listener struct {
	id   string // the container's
	addr string
	env  map[string]string
	out  *lines
	logs *exec.Cmd // docker logs --follow, feeding out
}

// Addr is where the listener accepts connections (127.0.0.1:P).
func (l *Listener) Addr() string { return l.addr }

// Env is every variable set in the container.
func (l *Listener) Env() map[string]string { return maps.Clone(l.env) }

// LastLines is the end of the container's output, indented ("" when it
// printed nothing).
func (l *Listener) LastLines(n int) string { return LastLines(l.out.bytes(), n) }

// Stop removes the container.
func (l *Listener) Stop(ctx context.Context) error {
	err := remove(ctx, l.id)
	if l.logs != nil {
		_ = l.logs.Wait() // ends with the container
	}
	if err != nil {
		return fmt.Errorf("remove the listener container: %w", err)
	}
	return nil
}

// LastLines is the last n lines of out, each indented by two spaces.
func LastLines(out []byte, n int) string {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return ""
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
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
	if spec.PayDoToken != "" {
		env[EnvPayDoToken] = spec.PayDoToken
	}
	maps.Copy(env, spec.Env)
	out := &lines{w: spec.Output}
	id, err := docker(ctx, runArgs(spec, env)...)
	if err != nil {
		return nil, fmt.Errorf("start listener image %s: %w", spec.Image, err)
	}
	l := &Listener{id: id, addr: addr, env: env, out: out}
	l.logs = exec.Command("docker", "logs", "--follow", id)
	l.logs.Stdout, l.logs.Stderr = out, out
	if err := l.logs.Start(); err != nil {
		l.logs = nil
		return nil, errors.Join(fmt.Errorf("follow the listener's output: %w", err), l.Stop(context.WithoutCancel(ctx)))
	}
	if err := l.waitReady(ctx, timeout); err != nil {
		return nil, errors.Join(fmt.Errorf("start listener image %s: %w%s", spec.Image, err, tail(out)), l.Stop(context.WithoutCancel(ctx)))
	}
	return l, nil
}

// runArgs is docker run's arguments for spec with env: host networking,
// each variable, each mount read-only, each host name, in a fixed order.
func runArgs(spec Spec, env map[string]string) []string {
	args := []string{"run", "--detach", "--network", "host", "--label", "ipnlab.undertest=true"}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		args = append(args, "--env", k+"="+env[k])
	}
	for _, in := range slices.Sorted(maps.Keys(spec.Mounts)) {
		args = append(args, "--volume", spec.Mounts[in]+":"+in+":ro")
	}
	for _, name := range slices.Sorted(maps.Keys(spec.Hosts)) {
		args = append(args, "--add-host", name+":"+spec.Hosts[name])
	}
	return append(append(args, spec.Image), spec.Args...)
}

// waitReady waits until the listener's port accepts connections, the
// container stops, or the timeout passes.
func (l *Listener) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", l.addr); err == nil {
			c.Close()
			return nil
		}
		state, err := docker(ctx, "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", l.id)
		if running, code, _ := strings.Cut(state, " "); err == nil && running != "true" {
			return fmt.Errorf("container exited before it was ready (exit code %s)", code)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("port %s did not accept connections within %s", l.addr, timeout)
		case <-tick.C:
		}
	}
}

// ErrNoEngine is returned when the docker command finds no engine to talk
// to.
var ErrNoEngine = errors.New("no Docker engine answers")

// docker runs the docker command and returns its trimmed output.
func docker(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", errors.New("the docker command is not installed (needed to run a listener image)")
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.Index(msg, "Cannot connect to the Docker daemon"); i >= 0 {
			line, _, _ := strings.Cut(msg[i:], "\n")
			return "", fmt.Errorf("%w (%s): start one (dockerd, or systemctl start docker), or run your listener yourself and give conform --listener", ErrNoEngine, line)
		}
		return "", fmt.Errorf("docker %s: %w: %s", args[0], err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// remove deletes the container, running or not.
func remove(ctx context.Context, id string) error {
	_, err := docker(ctx, "rm", "--force", "--volumes", id)
	return err
}

// tail is the end of the container's output for an error ("" if none).
func tail(out *lines) string {
	if last := LastLines(out.bytes(), 20); last != "" {
		return "; its output ends:\n" + last
	}
	return ""
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

// Write keeps p and copies its lines, labelled, to w.
func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > keep {
		l.buf = l.buf[len(l.buf)-keep:]
	}
	if l.w != nil {
		for line := range bytes.Lines(p) {
			fmt.Fprintf(l.w, "listener| %s", line)
			if !bytes.HasSuffix(line, []byte("\n")) {
				fmt.Fprintln(l.w)
			}
		}
	}
	return len(p), nil
}

func (l *lines) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf)
}
