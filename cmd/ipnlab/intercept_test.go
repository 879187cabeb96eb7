package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
)

// Listeners that hard-code PayPal's sandbox verify URL, judged with no
// change to their code: the emulator stands in for PayPal's hosts
// (--intercept), and each listener gets only what `ipnlab ca env` prints.
var _ = Describe("conform --intercept", func() {
	var (
		caDir, emuAddr string
		listenerEnv    []string
	)
	// conform runs the binary with the CA directory of this spec.
	conform := func(args ...string) *gexec.Session {
		cmd := exec.Command(binary, append([]string{"conform", "--intercept", "--emulator-addr", emuAddr, "--ack-timeout", "2s"}, args...)...)
		cmd.Env = append(os.Environ(), "IPNLAB_CA_DIR="+caDir)
		s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(s).WithTimeout(2 * time.Minute).Should(gexec.Exit())
		return s
	}
	// start runs a listener process with the environment ipnlab ca env
	// gives, and returns its base URL, read with pattern from its output.
	start := func(pattern string, name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = listenerEnv
		s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			s.Signal(syscall.SIGTERM)
			Eventually(s).WithTimeout(10 * time.Second).Should(gexec.Exit())
		})
		Eventually(s.Out).WithTimeout(10 * time.Second).Should(gbytes.Say(pattern))
		return "http://127.0.0.1:" + regexp.MustCompile(pattern).FindStringSubmatch(string(s.Out.Contents()))[1]
	}

	BeforeEach(func() {
		caDir, emuAddr = filepath.Join(GinkgoT().TempDir(), "ca"), freeAddr()
		cmd := exec.Command(binary, "ca", "env", "--proxy", "http://"+emuAddr)
		cmd.Env = append(os.Environ(), "IPNLAB_CA_DIR="+caDir)
		out, err := cmd.Output()
		Expect(err).NotTo(HaveOccurred())
		listenerEnv = os.Environ()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			kv, ok := strings.CutPrefix(line, "export ")
			Expect(ok).To(BeTrue(), line)
			listenerEnv = append(listenerEnv, strings.Trim(kv, "'"))
		}
		Expect(listenerEnv).To(ContainElement("HTTPS_PROXY=http://" + emuAddr))
		Expect(listenerEnv).To(ContainElement(HavePrefix("SSL_CERT_FILE=" + caDir)))
	})

	It("judges the Go reference listener posting to https://ipnpb.sandbox.paypal.com: every protocol check passes", func() {
		base := start(`listener ready addr=127\.0\.0\.1:(\d+)`, binary, "listen", "--addr", "127.0.0.1:0", "--db", filepath.Join(GinkgoT().TempDir(), "l.db"),
			"--verify-url", "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr", "--log-level", "error")
		s := conform("--listener", base+"/ipn/paypal", "--level", "protocol", "--label-filter", "paypal")
		Expect(s).To(gexec.Exit(0), string(s.Out.Contents()))
		Expect(s.Out).To(gbytes.Say(`ok   PP-VERIFY-ENDPOINT`))
	})

	for _, client := range []string{"curl", "urllib"} {
		It("judges a Python listener that posts back with "+client+" to the hard-coded sandbox host: it passes, and fails the endpoint check in a live run", func() {
			requireCommand("python3")
			if client == "curl" {
				requireCommand("curl")
			}
			base := start(`^(\d+)\n`, "python3", "testdata/hardcoded_listener.py", client)
			focus := "PP-ACK-GENUINE,PP-POSTBACK-SENT,PP-VERIFY-ASCII,PP-VERIFY-WINDOWS-1252,PP-VERIFY-ENDPOINT"
			s := conform("--listener", base, "--focus", focus)
			Expect(s).To(gexec.Exit(0), string(s.Out.Contents()))
			Expect(s.Out).To(gbytes.Say(`5 passed, 0 failed`))

			// A live run: its messages carry no test_ipn, and the listener
			// still posts them to the sandbox host. One bug, one failed check.
			s = conform("--listener", base, "--focus", focus, "--live")
			Expect(s).To(gexec.Exit(1))
			Expect(s.Out).To(gbytes.Say(`BLKD PP-VERIFY-ASCII`))
			Expect(s.Out).To(gbytes.Say(`every INVALID postback of its messages broke what PP-VERIFY-ENDPOINT tests \(endpoint\)`))
			Expect(s.Out).To(gbytes.Say(`FAIL PP-VERIFY-ENDPOINT +A listener MUST post each message back to the verify host of its environment`))
			Expect(s.Out).To(gbytes.Say(`a live message \(no test_ipn\) was posted back to the sandbox verifier ipnpb.sandbox.paypal.com`))
			Expect(s.Out).To(gbytes.Say(`BLKD PP-VERIFY-WINDOWS-1252`))
			Expect(s.Out).To(gbytes.Say(`2 passed, 1 failed, 0 warnings, 2 blocked`))
		})
	}

	It("refuses --intercept when the CA cannot be made, as a harness error", func() {
		blocker := filepath.Join(GinkgoT().TempDir(), "file")
		Expect(os.WriteFile(blocker, nil, 0o644)).To(Succeed())
		caDir = filepath.Join(blocker, "ca") // under a file: cannot be made
		s := conform("--listener", "http://127.0.0.1:9/ipn")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--intercept: ipnlab CA: .*/file/ca: .*not a directory`))
	})
})
