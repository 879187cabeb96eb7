// Package conformancespec turns the conformance checks into Ginkgo specs,
// for teams that run them from a Go test or inside their own Ginkgo
// suite. It is apart from package conformance so that the runner, and
// the ipnlab binary, carry no Ginkgo, Gomega or testing code.
package conformancespec

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// Specs registers every check as a Ginkgo spec inside the caller's suite
// (call it at the top level of a _test.go file, or inside a Describe).
// The emulator starts before the first check and stops after the last;
// cfg is read when the specs run, so a BeforeSuite may still fill it, and
// its zero fields take conformance.Defaults. Every check runs and reports
// on its own: a failed check does not stop the ones after it. Checks that
// do not apply (no probe, no PayDo listener, filtered out) are skipped
// with the reason. Register it once per suite: twice would run every
// check twice, so the second call panics.
func Specs(cfg *conformance.Config) bool {
	if !registered.CompareAndSwap(false, true) {
		panic("conformancespec: Specs registered twice in one suite (Run registers it too): the checks would run twice; keep one")
	}
	return ginkgo.Describe("ipnlab conformance", ginkgo.Ordered, ginkgo.ContinueOnFailure, func() {
		var s *conformance.Session
		ginkgo.BeforeAll(func(ctx ginkgo.SpecContext) {
			var err error
			s, err = conformance.NewSession(ctx, cfg.WithDefaults())
			gomega.Expect(err).NotTo(gomega.HaveOccurred())
			ginkgo.DeferCleanup(s.Close)
		})
		for _, c := range conformance.Checks() {
			ginkgo.It(c.ID+": "+c.Requirement, ginkgo.Label(c.Labels...), func(ctx ginkgo.SpecContext) {
				r := s.Run(context.Context(ctx), c, ginkgo.GinkgoWriter)
				switch r.Status {
				case scenarios.Disabled, scenarios.Skipped:
					ginkgo.Skip(r.Message)
				case scenarios.Failed:
					if !c.Required() {
						ginkgo.AddReportEntry("SHOULD not met", r.Message+"\n"+strings.Join(r.Evidence, "\n"))
						return
					}
					ginkgo.Fail(failure(r))
				case scenarios.Blocked:
					ginkgo.Fail(failure(r))
				case scenarios.Error:
					ginkgo.Fail("harness error: " + r.Message)
				}
			})
		}
	})
}

// registered is set once Specs has registered the checks.
var registered atomic.Bool

// Run runs the whole suite from a plain Go test (the zero fields of cfg
// take conformance.Defaults):
//
//	func TestIPN(t *testing.T) {
//		conformancespec.Run(t, conformance.Config{Listener: "http://127.0.0.1:8080/ipn/paypal"})
//	}
func Run(t *testing.T, cfg conformance.Config) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	Specs(&cfg)
	ginkgo.RunSpecs(t, "ipnlab conformance")
}

// failure is a failed check's message, evidence and replay line.
func failure(r conformance.Result) string {
	return fmt.Sprintf("%s\n%s\nreplay: %s", r.Message, strings.Join(r.Evidence, "\n"), r.Replay)
}
