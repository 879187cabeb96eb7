package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/onsi/ginkgo/v2"
)

// PostgresCluster is a PostgreSQL server of a spec's own, on loopback,
// that the spec may restart: the shared test server (PostgresVariable)
// serves other packages' specs at the same time.
type PostgresCluster struct {
	// DSN is its database's URL.
	DSN string

	ctl, dir string
	as       []string // the command prefix that runs as its owner
}

// NewPostgresCluster makes and starts a cluster from the server binaries
// of the Debian postgresql package, stopped when the spec ends. Without
// them the spec fails in CI and is skipped elsewhere.
func NewPostgresCluster() *PostgresCluster {
	ginkgo.GinkgoHelper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		Missing("CI needs PostgreSQL's server binaries: .ci/run installs postgresql",
			"no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	c := &PostgresCluster{ctl: filepath.Join(bin, "pg_ctl"), dir: filepath.Join(ginkgo.GinkgoT().TempDir(), "pg")}
	must := func(err error) {
		ginkgo.GinkgoHelper()
		if err != nil {
			ginkgo.Fail(fmt.Sprintf("private PostgreSQL: %v", err))
		}
	}
	// initdb refuses root: as root, the cluster is the postgres user's.
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		must(err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		must(os.MkdirAll(c.dir, 0o700))
		for p := c.dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
			must(os.Chmod(p, 0o755)) // the way down must be open to it
			if p == c.dir {
				must(os.Chown(p, uid, gid))
			}
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	port := ln.Addr().(*net.TCPAddr).Port
	must(ln.Close())
	must(c.run(filepath.Join(bin, "initdb"), "-D", c.dir, "--auth=trust", "--username=ipnlab", "--no-sync", "-E", "UTF8"))
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n", port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteString(conf)
	must(err)
	must(f.Close())
	must(c.Start())
	ginkgo.DeferCleanup(func() { _ = c.run(c.ctl, "-D", c.dir, "-m", "immediate", "stop") })
	c.DSN = fmt.Sprintf("postgres://ipnlab@127.0.0.1:%d/postgres?sslmode=disable", port)
	return c
}

func (c *PostgresCluster) run(args ...string) error {
	full := append(append([]string(nil), c.as...), args...)
	cmd := exec.Command(full[0], full[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(args[0]), err, out)
	}
	return nil
}

// Start starts the server and waits until it takes connections.
func (c *PostgresCluster) Start() error {
	return c.run(c.ctl, "-D", c.dir, "-l", filepath.Join(c.dir, "log"), "-w", "start")
}

// Restart stops the server at once (every connection cut, as a crash or
// a failover would) and starts it again.
func (c *PostgresCluster) Restart() error {
	if err := c.run(c.ctl, "-D", c.dir, "-m", "immediate", "-w", "stop"); err != nil {
		return err
	}
	return c.Start()
}
