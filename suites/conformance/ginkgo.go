package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/scenarios"
)

// Specs registers every check as a Ginkgo spec inside the caller's suite
// (call it at the top level of a _test.go file, or inside a Describe).
// The emulator starts before the first check and stops after the last;
// cfg is read when the specs run, so a BeforeSuite may still fill it.
// Checks that do not apply (no probe, no PayDo listener, filtered out)
// are skipped with the reason.
func Specs(cfg *Config) bool {
	return ginkgo.Describe("ipnlab conformance", ginkgo.Ordered, func() {
		var s *Session
		ginkgo.BeforeAll(func(ctx ginkgo.SpecContext) {
			var err error
			s, err = NewSession(ctx, *cfg)
			gomega.Expect(err).NotTo(gomega.HaveOccurred())
			ginkgo.DeferCleanup(s.Close)
		})
		for _, c := range Checks() {
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
					ginkgo.Fail(fmt.Sprintf("%s\n%s", r.Message, strings.Join(r.Evidence, "\n")))
				case scenarios.Blocked:
					ginkgo.Fail(fmt.Sprintf("%s\n%s", r.Message, strings.Join(r.Evidence, "\n")))
				case scenarios.Error:
					ginkgo.Fail("harness error: " + r.Message)
				}
			})
		}
	})
}

// Run runs the whole suite from a plain Go test:
//
//	func TestIPN(t *testing.T) { conformance.Run(t, conformance.Config{...}) }
func Run(t *testing.T, cfg Config) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	Specs(&cfg)
	ginkgo.RunSpecs(t, "ipnlab conformance")
}

// Catalog renders the check catalog as Markdown (docs/conformance.md holds
// a copy that CI keeps current).
func Catalog() string {
	var b strings.Builder
	group := ""
	for _, c := range Checks() {
		if g := string(c.Level) + " / " + c.Provider; g != group {
			group = g
			fmt.Fprintf(&b, "\n### %s %s\n\n| ID | requirement | labels | scenario |\n|---|---|---|---|\n",
				strings.ToUpper(c.Provider[:1])+c.Provider[1:], c.Level)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` |\n", c.ID, c.Requirement, strings.Join(c.Labels, ", "), c.Scenario)
	}
	return b.String()
}
