package version

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestVersion(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "version")
}

var _ = Describe("The version line", func() {
	It("names the commit, or says it is unknown and how a build sets it", func() {
		Expect(Info{Name: "ipnlab", Version: "v1.2.0", Commit: "abc123", Modified: true, Go: "go1.26"}.String()).
			To(Equal("ipnlab v1.2.0 (commit abc123, modified) go1.26"))
		Expect(Info{Name: "ipnlab", Version: "(devel)", Go: "go1.26"}.String()).
			To(Equal(`ipnlab (devel) (unknown commit: built without VCS metadata; -ldflags "-X github.com/ipnlab/ipnlab/version.commit=SHA" sets it) go1.26`))
	})

	It("takes the commit set at link time when the build information has none", func() {
		defer func(was string) { commit = was }(commit)
		commit = "feedbeef"
		if Read().Commit == "" || Read().Commit == "feedbeef" {
			Expect(Read().Commit).To(Equal("feedbeef"))
		}
	})
})
