package e2e_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/ipnlab/ipnlab/containers/testimage"
	"github.com/ipnlab/ipnlab/internal/specwait"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

var (
	image  string // the ipnlab image under test
	binary string // the ipnlab CLI, for conform --listener-image
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "containers end to end")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// No registry is reachable for the Ryuk reaper's image; every spec
	// removes its containers itself.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	tclog.SetDefault(ginkgoLog{})
	var err error
	image, err = testimage.Ensure(context.WithoutCancel(ctx))
	if errors.Is(err, testimage.ErrNoDocker) && !testimage.InCI() {
		testenv.Skip("container specs need a Docker engine (.ci/run installs and starts one): " + err.Error())
	}
	Expect(err).NotTo(HaveOccurred())
	binary, err = gexec.Build("github.com/ipnlab/ipnlab/cmd/ipnlab")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(gexec.CleanupBuildArtifacts)
}, NodeTimeout(10*time.Minute))

// ginkgoLog sends testcontainers' progress lines to the spec's output.
type ginkgoLog struct{}

func (ginkgoLog) Printf(format string, v ...any) { GinkgoWriter.Printf(format+"\n", v...) }
