// Package containers holds what the ipnlab testcontainers-go modules
// (emulatorcontainer, listenercontainer) share: host networking, so every
// byte stays on the host's loopback, and readiness read off the ready line
// that `ipnlab serve` and `ipnlab listen` print with the address they bound.
//
// Host networking is deliberate: the emulator delivers to listeners on the
// host's 127.0.0.1 and listeners post back to it there, which a bridge
// network cannot reach without leaving loopback. Each container binds
// 127.0.0.1 port 0 and reports the port it got, so parallel runs never
// collide and nothing listens on another interface.
package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/containers/undertest"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// ErrExited is wrapped when a container stops before it is ready (a bad
// flag, a port taken): the error carries the end of its output.
var ErrExited = errors.New("container exited before it was ready")

// pollInterval is how often readiness is re-checked: short, since start to
// ready is a figure `make bench` reports.
const pollInterval = 10 * time.Millisecond

// HostNetwork runs the container in the host's network namespace.
func HostNetwork() testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		hc.NetworkMode = "host"
	})
}

// Ready waits for a ready line naming the bound address, then for a 200
// from Path on that address. It remembers the address for the module's
// accessors.
type Ready struct {
	line    *regexp.Regexp // first submatch: HOST:PORT
	path    string
	timeout time.Duration

	mu   sync.Mutex
	addr string
	seen int // ready lines consumed by earlier waits
}

// NewReady waits for a line matching line (whose first group is the bound
// HOST:PORT) and then for GET path to answer 200, within timeout.
func NewReady(line *regexp.Regexp, path string, timeout time.Duration) *Ready {
	return &Ready{line: line, path: path, timeout: timeout}
}

// Addr is the address the latest ready line named ("" before one was
// seen). A restarted container prints a new one, which its next wait
// (testcontainers runs it on Start) reads.
func (r *Ready) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Timeout lets testcontainers bound the wait.
func (r *Ready) Timeout() *time.Duration { return &r.timeout }

// String names the strategy in testcontainers' logs.
func (r *Ready) String() string { return fmt.Sprintf("ready line %q, then GET %s", r.line, r.path) }

// WaitUntilReady implements wait.Strategy.
func (r *Ready) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	addr, err := r.waitLine(ctx, target)
	if err != nil {
		return err
	}
	return r.waitHTTP(ctx, target, "http://"+addr+r.path)
}

func (r *Ready) waitLine(ctx context.Context, target wait.StrategyTarget) (string, error) {
	for {
		out, err := readLogs(ctx, target)
		if err == nil {
			// The output of earlier runs stays in the logs: only a line
			// beyond those already read means this run is up.
			all := r.line.FindAllSubmatch(out, -1)
			r.mu.Lock()
			fresh := len(all) > r.seen
			if fresh {
				r.seen, r.addr = len(all), string(all[len(all)-1][1])
			}
			addr := r.addr
			r.mu.Unlock()
			if fresh {
				return addr, nil
			}
		}
		if err := pause(ctx, target, out, r.timeout); err != nil {
			return "", fmt.Errorf("waiting for the ready line: %w", err)
		}
	}
}

func (r *Ready) waitHTTP(ctx context.Context, target wait.StrategyTarget, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := pause(ctx, target, nil, r.timeout); err != nil {
			return fmt.Errorf("waiting for %s: %w", url, err)
		}
	}
}

// pause waits one poll interval, failing early when the container has
// exited or the time is up; out is its output when the caller has it (an
// exited container's is read again).
func pause(ctx context.Context, target wait.StrategyTarget, out []byte, timeout time.Duration) error {
	if st, err := target.State(ctx); err == nil && !st.Running {
		// Read again: out may predate the exit and miss its last words
		// (the reason a flag was refused).
		if final, err := readLogs(context.WithoutCancel(ctx), target); err == nil {
			out = final
		}
		return fmt.Errorf("%w (exit code %d)%s", ErrExited, st.ExitCode, Tail(out, 20))
	}
	select {
	case <-ctx.Done():
		if out == nil {
			out, _ = readLogs(context.WithoutCancel(ctx), target)
		}
		return fmt.Errorf("not ready after %s%s", timeout, Tail(out, 20))
	case <-time.After(pollInterval):
		return nil
	}
}

// Port waits until something accepts TCP connections on Addr: readiness
// for a listener under test, whose output ipnlab knows nothing about.
type Port struct {
	Addr string
	Wait time.Duration
}

// Timeout lets testcontainers bound the wait.
func (p *Port) Timeout() *time.Duration { return &p.Wait }

// String names the strategy in testcontainers' logs.
func (p *Port) String() string { return "accepting connections on " + p.Addr }

// WaitUntilReady implements wait.Strategy.
func (p *Port) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, p.Wait)
	defer cancel()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", p.Addr)
		if err == nil {
			return conn.Close()
		}
		if err := pause(ctx, target, nil, p.Wait); err != nil {
			return fmt.Errorf("waiting for %s to accept connections: %w", p.Addr, err)
		}
	}
}

// readLogs returns the container's output so far, stdout and stderr
// demultiplexed and interleaved.
func readLogs(ctx context.Context, target wait.StrategyTarget) ([]byte, error) {
	rc, err := target.Logs(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

// Tail formats the last n lines of a container's output for an error
// message ("" when there is none).
func Tail(out []byte, n int) string {
	if last := LastLines(out, n); last != "" {
		return "; its output ends:\n" + last
	}
	return ""
}

// LastLines is the last n lines of out, each indented by two spaces.
func LastLines(out []byte, n int) string { return undertest.LastLines(out, n) }

// Apply runs a module's own options (those of type O, which customize
// nothing themselves) over s in order; testcontainers' options are left
// for testcontainers.
func Apply[S any, O ~func(*S) error](s *S, opts []testcontainers.ContainerCustomizer) error {
	for _, c := range opts {
		if o, ok := c.(O); ok {
			if err := o(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartupTimeout checks a module's WithStartupTimeout value.
func StartupTimeout(d time.Duration) (time.Duration, error) {
	if d <= 0 {
		return 0, fmt.Errorf("startup timeout %s: must be positive", d)
	}
	return d, nil
}

// Run starts img with opts and waits on ready; the ready line is read once
// more if a caller's own wait strategy replaced ready. A container that
// fails to become ready is terminated, so a failed Run leaves nothing.
func Run(ctx context.Context, img string, ready *Ready, opts []testcontainers.ContainerCustomizer) (testcontainers.Container, error) {
	ctr, err := testcontainers.Run(ctx, img, opts...)
	if err == nil && ready.Addr() == "" {
		err = ready.WaitUntilReady(ctx, ctr)
	}
	if err != nil {
		if ctr != nil {
			err = errors.Join(err, testcontainers.TerminateContainer(ctr))
		}
		return nil, fmt.Errorf("run %s: %w", img, err)
	}
	return ctr, nil
}
