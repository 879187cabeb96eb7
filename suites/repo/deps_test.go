package repo_test

import (
	"os/exec"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// forbidden are the dependencies a package's users must not pay for:
// test frameworks, container clients and browser drivers.
var (
	testCode      = []string{"testing", "github.com/onsi/ginkgo/v2", "github.com/onsi/gomega"}
	containerCode = []string{"github.com/testcontainers/testcontainers-go", "github.com/moby/moby/client", "github.com/docker/go-connections/nat"}
	browserCode   = []string{"github.com/chromedp/chromedp"}
	// sqlite is what only a store needs: the emulator library takes any
	// journal.Journal, and its Go client talks HTTP.
	sqlite = []string{"modernc.org/sqlite"}
	// theServer is what a client of the control API must not link: the
	// emulator itself, its console, the fixtures and their fake data (the
	// wire types are in emulator/api).
	theServer = []string{"github.com/ipnlab/ipnlab/emulator", "github.com/ipnlab/ipnlab/emulator/console",
		"github.com/ipnlab/ipnlab/generate", "github.com/brianvoe/gofakeit/v7"}
	// theEngine is the emulator's machinery: a client speaks wire shapes
	// (emulator/api), it links no delivery engine, verifier, journal,
	// event bus, clock or watchdog.
	theEngine = []string{"github.com/ipnlab/ipnlab/emulator/delivery", "github.com/ipnlab/ipnlab/emulator/paypal",
		"github.com/ipnlab/ipnlab/emulator/paydo", "github.com/ipnlab/ipnlab/emulator/journal", "github.com/ipnlab/ipnlab/emulator/events",
		"github.com/ipnlab/ipnlab/emulator/clock", "github.com/ipnlab/ipnlab/emulator/watchdog"}
	// theHost is the emulator a provider plugs into: a provider's package,
	// a built-in's too, knows only the contract (emulator/plugin).
	theHost = []string{"github.com/ipnlab/ipnlab/emulator"}
	// theGallery is the mutant gallery: the listener a team adopts has no
	// branch for any bug (they are decorations, built by flawed).
	theGallery = []string{"github.com/ipnlab/ipnlab/listener/mutants", "github.com/ipnlab/ipnlab/listener/flawed"}
)

var _ = DescribeTable("A package's dependencies",
	func(pkg string, forbidden ...[]string) {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, group := range forbidden {
			for _, f := range group {
				Expect(deps).NotTo(HaveKey(f), "%s depends on %s", pkg, f)
			}
		}
	},
	Entry("the emulator library", "github.com/ipnlab/ipnlab/emulator", testCode, containerCode, browserCode, sqlite),
	Entry("the emulator's Go client", "github.com/ipnlab/ipnlab/emulator/client", testCode, containerCode, browserCode, sqlite, theServer, theEngine),
	Entry("the control API's wire types", "github.com/ipnlab/ipnlab/emulator/api", testCode, containerCode, browserCode, sqlite, theServer, theEngine),
	// It runs the image and talks to it over HTTP (testcontainers links
	// testing itself).
	Entry("the emulator's testcontainers module", "github.com/ipnlab/ipnlab/containers/emulatorcontainer", browserCode, sqlite, theServer, theEngine),
	Entry("message generation", "github.com/ipnlab/ipnlab/generate", testCode, containerCode, browserCode),
	Entry("the provider contract", "github.com/ipnlab/ipnlab/emulator/plugin", testCode, containerCode, browserCode, sqlite, theHost),
	Entry("the fake PayPal, a provider", "github.com/ipnlab/ipnlab/emulator/paypal", testCode, containerCode, browserCode, sqlite, theHost),
	Entry("the fake PayDo, a provider", "github.com/ipnlab/ipnlab/emulator/paydo", testCode, containerCode, browserCode, sqlite, theHost),
	Entry("the form codec", "github.com/ipnlab/ipnlab/form", testCode, containerCode, browserCode),
	Entry("the probe contract", "github.com/ipnlab/ipnlab/probe", testCode, containerCode, browserCode),
	Entry("the reference listener", "github.com/ipnlab/ipnlab/listener", testCode, containerCode, browserCode, theGallery),
	Entry("scenarios", "github.com/ipnlab/ipnlab/scenarios", testCode, containerCode, browserCode),
	Entry("the load runner", "github.com/ipnlab/ipnlab/load", testCode, containerCode, browserCode),
	Entry("the conformance runner", "github.com/ipnlab/ipnlab/suites/conformance", testCode, containerCode, browserCode),
	Entry("the explorer", "github.com/ipnlab/ipnlab/explore", testCode, containerCode, browserCode),
	Entry("the JUnit writer", "github.com/ipnlab/ipnlab/junit", testCode, containerCode, browserCode, sqlite, theServer),
	// The binary runs a listener's image for conform --listener-image with
	// the docker command, not a linked container client.
	Entry("the ipnlab binary (the image's only file)", "github.com/ipnlab/ipnlab/cmd/ipnlab", testCode, containerCode, browserCode),
)
