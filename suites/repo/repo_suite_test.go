// Package repo_test checks the repository itself: what is tracked, and
// what the library packages may depend on.
package repo_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestRepo(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "repository")
}
