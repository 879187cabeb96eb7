// Package console_test drives the emulator's web console in Debian's
// headless Chromium (chromedp): the Simulator, History updating live, a
// message's postbacks with the differing field, resends, the clock and the
// catalog. Screenshots of each page go to build/screenshots/.
package console_test

import (
	"os"
	"os/exec"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestConsole(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "web console in a browser")
}

// chromium finds the browser: IPNLAB_CHROMIUM, else chromium on the PATH.
func chromium() string {
	if p := os.Getenv("IPNLAB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
