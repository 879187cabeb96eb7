// Package docsnippet is the Go snippet of docs/conformance.md, as a team
// pastes it into its own repository; conformancespec's specs run it with
// go test (the addresses come from the environment they set) and hold the
// document to this file.
package docsnippet

import (
	"os"
	"testing"

	"github.com/ipnlab/ipnlab/suites/conformance"
	"github.com/ipnlab/ipnlab/suites/conformance/conformancespec"
)

func TestIPNConformance(t *testing.T) {
	conformancespec.Run(t, conformance.Config{
		Listener:     os.Getenv("IPN_LISTENER"),      // your listener's PayPal endpoint
		EmulatorAddr: os.Getenv("IPN_EMULATOR_ADDR"), // its verify URL is http://ADDR/cgi-bin/webscr
		LabelFilter:  "!slow",
	})
}
