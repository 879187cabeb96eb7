package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/ipnlab/ipnlab/containers/emulatorcontainer"
	"github.com/ipnlab/ipnlab/containers/listenercontainer"
	"github.com/ipnlab/ipnlab/containers/testimage"
)

// BenchmarkStartToReady measures from "start" to answering /healthz: the
// emulator and the reference listener as containers, and, as the baseline
// measured in the same run, the same static binary started as a plain
// process. Removing a container is not counted.
func BenchmarkStartToReady(b *testing.B) {
	ctx := context.Background()
	img, err := testimage.Ensure(ctx)
	if errors.Is(err, testimage.ErrNoDocker) {
		b.Skip("needs a Docker engine: ", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	tclog.SetDefault(tclog.NewNoopLogger())

	bin := filepath.Join(b.TempDir(), "ipnlab")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/ipnlab/ipnlab/cmd/ipnlab")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v: %s", err, out)
	}
	b.Run("process-emulator", func(b *testing.B) {
		timeReady(b, func() (func(), error) { return startProcess(bin, "serve") })
	})
	b.Run("container-emulator", func(b *testing.B) {
		timeReady(b, func() (func(), error) {
			c, err := emulatorcontainer.Run(ctx, img)
			return func() { _ = testcontainers.TerminateContainer(c) }, err
		})
	})
	b.Run("container-listener", func(b *testing.B) {
		timeReady(b, func() (func(), error) {
			c, err := listenercontainer.Run(ctx, img, listenercontainer.WithVerifyURL("http://127.0.0.1:9/cgi-bin/webscr"))
			return func() { _ = testcontainers.TerminateContainer(c) }, err
		})
	})
}

// timeReady times start() alone and reports it as ms/ready.
func timeReady(b *testing.B, start func() (stop func(), err error)) {
	var total time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		stop, err := start()
		d := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		stop()
		b.StartTimer()
		total += d
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/ready")
}

var processReady = regexp.MustCompile(`ready addr=(\S+)`)

// startProcess runs the binary as the image would and waits for /healthz.
func startProcess(bin, sub string) (func(), error) {
	cmd := exec.Command(bin, sub, "--emulator-addr", "127.0.0.1:0", "--log-level", "error")
	cmd.Dir = os.TempDir()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := processReady.FindStringSubmatch(sc.Text()); m != nil {
			resp, err := http.Get("http://" + m[1] + "/healthz")
			if err != nil {
				stop()
				return nil, err
			}
			resp.Body.Close()
			return stop, nil
		}
	}
	stop()
	return nil, errors.New("no ready line")
}
