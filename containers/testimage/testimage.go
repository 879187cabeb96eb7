// Package testimage gives specs and benchmarks an ipnlab image built from
// the working tree, so a container spec never runs a stale `make image`.
// IPNLAB_IMAGE names an image to use instead.
package testimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Tag is the image Build produces.
const Tag = "ipnlab:test"

// ErrNoDocker is wrapped when no Docker engine answers. Outside CI a spec
// may skip on it; in CI (the CI variable set) it must fail.
var ErrNoDocker = errors.New("no Docker engine answers")

// InCI says whether the CI variable is set: container specs must run there.
func InCI() bool { return os.Getenv("CI") != "" }

var (
	once   sync.Once
	built  string
	failed error
)

// Ensure returns IPNLAB_IMAGE when set, or builds Tag once per process.
func Ensure(ctx context.Context) (string, error) {
	once.Do(func() { built, failed = ensure(ctx) })
	return built, failed
}

func ensure(ctx context.Context) (string, error) {
	if out, err := run(ctx, nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		return "", fmt.Errorf("%w: %v: %s", ErrNoDocker, err, strings.TrimSpace(out))
	}
	if img := os.Getenv("IPNLAB_IMAGE"); img != "" {
		if out, err := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Id}}", img); err != nil {
			return "", fmt.Errorf("IPNLAB_IMAGE %s: %v: %s", img, err, strings.TrimSpace(out))
		}
		return img, nil
	}
	return Tag, build(ctx)
}

// build compiles the static binary and builds the repository's Dockerfile
// around it, as `make image` does, then removes the image it replaced.
func build(ctx context.Context) error {
	root, err := run(ctx, nil, "go", "env", "GOMOD")
	root = filepath.Dir(strings.TrimSpace(root))
	if err != nil || root == "." {
		return fmt.Errorf("find the module root: %v %s", err, root)
	}
	dir, err := os.MkdirTemp("", "ipnlab-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "data", ".keep"), nil, 0o644); err != nil {
		return err
	}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if out, err := run(ctx, env, "go", "build", "-C", root, "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "ipnlab"), "./cmd/ipnlab"); err != nil {
		return fmt.Errorf("build the static binary: %v: %s", err, out)
	}
	old, _ := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Id}}", Tag)
	if out, err := run(ctx, append(os.Environ(), "DOCKER_BUILDKIT=0"), "docker", "build", "-q", "-t", Tag, "-f", filepath.Join(root, "Dockerfile"), dir); err != nil {
		return fmt.Errorf("docker build %s: %v: %s", Tag, err, out)
	}
	now, _ := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Id}}", Tag)
	if old = strings.TrimSpace(old); old != "" && old != strings.TrimSpace(now) {
		_, _ = run(ctx, nil, "docker", "image", "rm", old) // still in use elsewhere: left
	}
	return nil
}

func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
