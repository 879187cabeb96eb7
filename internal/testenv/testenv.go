// Package testenv skips a spec for what the machine lacks (a command, a
// server, a browser, a container engine) and records why, so that make
// test lists every skip with its reason at the end instead of hiding it
// behind -ginkgo.v.
package testenv

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
	"github.com/onsi/ginkgo/v2"
)

// LogVariable names the file skips are appended to; make test sets it.
const LogVariable = "IPNLAB_SKIP_LOG"

// Skip records reason (with the spec's place) in the file LogVariable
// names, if it is set, then skips the spec.
func Skip(reason string) {
	ginkgo.GinkgoHelper()
	if path := os.Getenv(LogVariable); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%s: %s\n", where(), reason)
			_ = f.Close()
		}
	}
	ginkgo.Skip(reason)
}

// Missing is what a spec does when the machine lacks what it runs: in CI
// (CI set), whose .ci/run provides it, it fails saying inCI; elsewhere it
// skips, saying why (Skip).
func Missing(inCI, why string) {
	ginkgo.GinkgoHelper()
	if os.Getenv("CI") != "" {
		ginkgo.Fail(inCI)
	}
	Skip(why)
}

// where names the spec: its package directory and text, or the suite.
func where() string {
	r := ginkgo.CurrentSpecReport()
	dir := "."
	if wd, err := os.Getwd(); err == nil {
		dir = filepath.Base(filepath.Dir(wd)) + "/" + filepath.Base(wd)
	}
	if text := r.FullText(); text != "" {
		return dir + " " + fmt.Sprintf("%q", text)
	}
	return dir + " (the whole suite)"
}

// PostgresVariable names the URL of a PostgreSQL database the specs may
// use (.ci/run sets it).
const PostgresVariable = "IPNLAB_TEST_POSTGRES"

// PostgresSchema is the URL of a new schema of the test database, its
// search_path set to it, dropped when the spec ends: specs sharing the
// server stay apart. Without a server the spec fails in CI and is skipped
// elsewhere.
func PostgresSchema(prefix string) string {
	ginkgo.GinkgoHelper()
	base := os.Getenv(PostgresVariable)
	if base == "" {
		Missing("CI needs a PostgreSQL server: .ci/run starts one and sets "+PostgresVariable,
			"no PostgreSQL server: set "+PostgresVariable+"=postgres://USER:PASSWORD@127.0.0.1:5432/DB (.ci/run does)")
	}
	dsn, drop, err := NewSchema(base, prefix)
	if err != nil {
		ginkgo.Fail(fmt.Sprintf("%s: %v", PostgresVariable, err))
	}
	ginkgo.DeferCleanup(drop)
	return dsn
}

// NewSchema creates a schema named from prefix in the database at base
// and returns base's URL pointed at it, and drop, which removes it (for
// benchmarks as for specs).
func NewSchema(base, prefix string) (dsn string, drop func(), err error) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if dsn, err = WithSearchPath(base, schema); err != nil {
		admin.Close()
		return "", nil, err
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	return dsn, func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	}, nil
}

// WithSearchPath is the PostgreSQL URL dsn pointed at schema.
func WithSearchPath(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
