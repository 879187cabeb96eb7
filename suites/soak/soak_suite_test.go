// Package soak_test runs many notifications through the emulator and the
// reference listener with faults injected, and checks that nothing is lost
// and nothing grows. IPNLAB_SOAK_MESSAGES sets the size (make soak: 200k).
package soak_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestSoak(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "soak")
}
