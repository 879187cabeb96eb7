package main_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
)

// tourStep is one command of the README's tour and what it prints.
type tourStep struct {
	command string
	want    []string // lines; … stands for anything within a line
}

// readTour reads the console block between the tour markers of README.md.
func readTour() []tourStep { return readBlock("tour") }

// readBlock reads the console block between README.md's NAME:begin and
// NAME:end markers.
func readBlock(name string) []tourStep {
	raw, err := os.ReadFile("../../README.md")
	Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile("(?s)<!-- " + name + ":begin -->\n```console\n(.*?)```\n<!-- " + name + ":end -->").FindSubmatch(raw)
	Expect(m).NotTo(BeNil(), "README.md has a %s block", name)
	var steps []tourStep
	for _, line := range strings.Split(strings.TrimSuffix(string(m[1]), "\n"), "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			steps = append(steps, tourStep{command: cmd})
			continue
		}
		Expect(steps).NotTo(BeEmpty(), "output before the first command: %q", line)
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
	}
	return steps
}

// lineMatcher turns a README line into a pattern: … matches anything.
func lineMatcher(line string) *regexp.Regexp {
	parts := strings.Split(line, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*?") + "$")
}

// runTour starts a fresh lab as make run does (its own ports and a new
// ledger) and runs every step of the tour against it. With yours, a
// listener of its own (the reference one, standing in for the user's)
// takes IPNs at the page's http://127.0.0.1:8080/ipn and posts back to
// the lab's emulator.
func runTour(steps []tourStep, yours bool) {
	emuAddr, lisAddr := freeAddr(), freeAddr()
	dir := GinkgoT().TempDir()
	lab, err := gexec.Start(exec.Command(binary, "lab", "--clock", "manual", "--tail", "--emulator-addr", emuAddr, "--listener-addr", lisAddr,
		"--listener-db", filepath.Join(dir, "lab.db")), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	defer func() {
		lab.Interrupt()
		Eventually(lab).WithTimeout(20 * time.Second).Should(gexec.Exit(0))
	}()
	Eventually(lab.Out).WithTimeout(20 * time.Second).Should(gbytes.Say(`ipnlab listener ready`))
	swap := strings.NewReplacer("127.0.0.1:8700", emuAddr, "127.0.0.1:8701", lisAddr)
	if yours {
		ownAddr := freeAddr()
		own, err := gexec.Start(exec.Command(binary, "listen", "--addr", ownAddr, "--verify-url", "http://"+emuAddr+"/cgi-bin/webscr",
			"--db", filepath.Join(dir, "yours.db")), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		defer func() {
			own.Interrupt()
			Eventually(own).WithTimeout(20 * time.Second).Should(gexec.Exit(0))
		}()
		Eventually(own.Out).WithTimeout(20 * time.Second).Should(gbytes.Say(`ipnlab listener ready`))
		swap = strings.NewReplacer("127.0.0.1:8700", emuAddr, "127.0.0.1:8701", lisAddr, "http://127.0.0.1:8080/ipn", "http://"+ownAddr+"/ipn/paypal")
	}
	// What the commands print names the lab's address as the page does.
	unswap := strings.NewReplacer(emuAddr, "127.0.0.1:8700", lisAddr, "127.0.0.1:8701")
	for _, st := range steps {
		var got string
		args := strings.Fields(swap.Replace(st.command))
		switch args[0] {
		case "curl":
			// A person types slower than the listener books: wait until it
			// has nothing in progress, as the probe allows.
			get("http://" + lisAddr + "/probe/v1/idle?wait=10s")
			got = get(args[len(args)-1])
		case "./bin/ipnlab":
			cmd := exec.Command(binary, args[1:]...)
			cmd.Env = append(os.Environ(), "IPNLAB_EMULATOR=http://"+emuAddr, "IPNLAB_EMULATOR_ADDR="+emuAddr)
			s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
			Expect(err).NotTo(HaveOccurred())
			Eventually(s).WithTimeout(30*time.Second).Should(gexec.Exit(0), st.command)
			got = unswap.Replace(string(s.Out.Contents()))
		default:
			Fail("the tour runs ./bin/ipnlab and curl only: " + st.command)
		}
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		Expect(lines).To(HaveLen(len(st.want)), "%s printed:\n%s", st.command, got)
		for i, want := range st.want {
			Expect(lines[i]).To(MatchRegexp(lineMatcher(want).String()), "%s, line %d:\n%s", st.command, i+1, got)
		}
	}
}

func get(url string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.StatusCode).To(Equal(http.StatusOK), "GET %s: %s", url, body)
	return string(body)
}

var _ = Describe("The README's tour", func() {
	It("prints what the README shows, twice in a row from a fresh lab", func() {
		steps := readTour()
		Expect(len(steps)).To(BeNumerically(">=", 5))
		for range 2 {
			runTour(steps, false)
		}
	})
})

var _ = Describe("The README's test of your own listener", func() {
	It("prints what the README shows, against the emulator make run started", func() {
		steps := readBlock("own")
		Expect(len(steps)).To(BeNumerically(">=", 3))
		runTour(steps, true)
	})
})
