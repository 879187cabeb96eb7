package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ipnlab/ipnlab/containers/undertest"
	"github.com/ipnlab/ipnlab/suites/conformance"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

// The failing run docs/ci.md shows is generated here, from a real run:
// the spec fails when the page no longer matches what the binary prints,
// and IPNLAB_UPDATE_DOCS=1 rewrites the page from the run instead.
const (
	ciDoc      = "../../docs/ci.md"
	beginMark  = "<!-- begin generated: a failing run (cmd/ipnlab/docs_test.go; IPNLAB_UPDATE_DOCS=1 go test ./cmd/ipnlab regenerates it) -->\n"
	endMark    = "<!-- end generated -->\n"
	docsSeed   = "42"
	docsFocus  = "PP-ACK-GENUINE,PP-REFUND"
	docsMutant = "refund-as-payment"
)

// timings are the parts of a run that differ from one run to the next.
var timings = regexp.MustCompile(`\d+(\.\d+)?(s|ms|µs)\b|time="[0-9.e+-]+"`)

var _ = Describe("docs/ci.md", func() {
	It("shows a failing run's console output and JUnit file as the binary really prints them", func() {
		emuAddr := freeAddr()
		dir := GinkgoT().TempDir()
		addr := startMutantListener(docsMutant, emuAddr, dir)

		junit := filepath.Join(dir, "conformance.xml")
		s := run("conform", "--listener", "http://"+addr+"/ipn/paypal", "--probe", "http://"+addr, "--focus", docsFocus,
			"--seed", docsSeed, "--junit", junit, "--emulator-addr", emuAddr)
		Expect(s).To(gexec.Exit(1))
		xml, err := os.ReadFile(junit)
		Expect(err).NotTo(HaveOccurred())

		// As the reader runs it: the default ports, no --emulator-addr.
		// ipnlab on the PATH: the binary here is run by its path.
		asDocumented := strings.NewReplacer(" --emulator-addr "+emuAddr, "", addr, "127.0.0.1:8701", emuAddr, "127.0.0.1:8700", dir+"/", "", binary+" ", "ipnlab ")
		generated := beginMark + "```console\n" +
			"$ ipnlab listen --mutant " + docsMutant + " --customer customer@example.com=C1 &\n" +
			"$ ipnlab conform --listener http://127.0.0.1:8701/ipn/paypal --probe http://127.0.0.1:8701 \\\n" +
			"    --focus " + docsFocus + " --seed " + docsSeed + " --junit conformance.xml\n" +
			asDocumented.Replace(string(s.Out.Contents())) +
			asDocumented.Replace(string(s.Err.Contents())) +
			"$ echo $?\n1\n```\n\n`conformance.xml`, as CI systems read it:\n\n```xml\n" +
			asDocumented.Replace(string(xml)) + "```\n" + endMark

		doc, err := os.ReadFile(ciDoc)
		Expect(err).NotTo(HaveOccurred())
		before, rest, found := strings.Cut(string(doc), beginMark)
		Expect(found).To(BeTrue(), "docs/ci.md has no generated block")
		current, after, found := strings.Cut(rest, endMark)
		Expect(found).To(BeTrue(), "docs/ci.md's generated block has no end")
		if os.Getenv("IPNLAB_UPDATE_DOCS") != "" {
			Expect(os.WriteFile(ciDoc, []byte(before+generated+after), 0o644)).To(Succeed())
			return
		}
		Expect(timings.ReplaceAllString(beginMark+current+endMark, "T")).To(Equal(timings.ReplaceAllString(generated, "T")),
			"docs/ci.md's failing run is not what the binary prints: IPNLAB_UPDATE_DOCS=1 go test ./cmd/ipnlab")
	})
})

var _ = Describe("The variables a listener's container gets", func() {
	It("are the ones docs/ci.md's table and conform --help name, in that order", func() {
		raw, err := os.ReadFile(ciDoc)
		Expect(err).NotTo(HaveOccurred())
		var table []string
		for _, m := range regexp.MustCompile("(?m)^\\| `((?:IPNLAB_[A-Z_]+)|PORT)` \\|").FindAllStringSubmatch(string(raw), -1) {
			table = append(table, m[1])
		}
		Expect(table).To(Equal(undertest.EnvNames))
		help := string(run("conform", "--help").Out.Contents())
		Expect(help).To(ContainSubstring("It sets in it:\n  " + strings.Join(undertest.EnvNames, "\n  ")))
	})
})

var _ = Describe("The check counts the pages give", func() {
	It("are the catalog's: the README's total, and docs/ci.md's run of the reference image (no --orders, no --intercept, no --webhook-listener)", func() {
		checks := conformance.Checks()
		readme, err := os.ReadFile("../../README.md")
		Expect(err).NotTo(HaveOccurred())
		m := regexp.MustCompile(`runs (\d+) checks`).FindStringSubmatch(string(readme))
		Expect(m).NotTo(BeNil())
		Expect(m[1]).To(Equal(strconv.Itoa(len(checks))))

		disabled, skipped := 0, 0
		for _, c := range checks {
			switch {
			case c.HasLabel("intercept"), c.Provider == "paypalrest":
				disabled++ // judged only under --intercept; no webhook endpoint
			case c.HasLabel("orders"):
				skipped++
			}
		}
		ci, err := os.ReadFile(ciDoc)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(ci)).To(ContainSubstring(fmt.Sprintf("# %d passed, 0 failed, 0 warnings, 0 blocked, %d skipped, %d disabled, 0 errors", len(checks)-disabled-skipped, skipped, disabled)))
	})
})
