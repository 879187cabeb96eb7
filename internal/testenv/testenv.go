// Package testenv skips a spec for what the machine lacks (a command, a
// server, a browser, a container engine) and records why, so that make
// test lists every skip with its reason at the end instead of hiding it
// behind -ginkgo.v.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"

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
