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
		Eventually(s.Out).WithTimeout(readyWait).Should(gbytes.Say(pattern))
		return "http://127.0.0.1:" + regexp.MustCompile(pattern).FindStringSubmatch(string(s.Out.Contents()))[1]
	}

	BeforeEach(func() {
		caDir, emuAddr = filepath.Join(GinkgoT().TempDir(), "ca"), freeAddr()
		// The address as conform reads it: from IPNLAB_EMULATOR_ADDR.
		cmd := exec.Command(binary, "ca", "env", "--dotenv")
		cmd.Env = append(os.Environ(), "IPNLAB_CA_DIR="+caDir, "IPNLAB_EMULATOR_ADDR="+emuAddr)
		out, err := cmd.Output()
		Expect(err).NotTo(HaveOccurred())
		listenerEnv = os.Environ()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			Expect(line).To(MatchRegexp(`^[A-Za-z_]+=`))
			listenerEnv = append(listenerEnv, line)
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
			Expect(s.Out).To(gbytes.Say(`a live message \(no test_ipn\) was posted back to the sandbox verifier ipnpb.sandbox.paypal.com, .*: post it to ipnpb.paypal.com \(choose the host by test_ipn\); ` +
				`if your listener is configured for the sandbox, run without --live`))
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

var _ = Describe("ipnlab ca env", func() {
	var caDir string
	caEnv := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command(binary, append([]string{"ca", "env"}, args...)...)
		cmd.Env = append(append(os.Environ(), "IPNLAB_CA_DIR="+caDir), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return stdout.String(), stderr.String(), code
	}
	BeforeEach(func() { caDir = filepath.Join(GinkgoT().TempDir(), "ca") })

	It("prints, for every common stack, the variables it reads, as shell exports saying who reads each", func() {
		out, _, code := caEnv(nil)
		Expect(code).To(BeZero())
		for _, want := range []string{
			"export HTTPS_PROXY=http://127.0.0.1:8700 # ", "export https_proxy=http://127.0.0.1:8700 # ", "export http_proxy=http://127.0.0.1:8700 # Ruby",
			"export SSL_CERT_FILE=" + caDir + "/bundle.pem # ", "export NODE_EXTRA_CA_CERTS=" + caDir + "/ca.pem # ",
			"export NODE_OPTIONS='--require " + caDir + "/node/proxy.cjs' # Node before 24",
			"export PERL_LWP_ENV_PROXY=1 # ", "export PERL_LWP_SSL_CA_FILE=" + caDir + "/bundle.pem # ",
			"export PHP_INI_SCAN_DIR=:" + caDir + "/php # ", "export JAVA_TOOL_OPTIONS='-Djavax.net.ssl.trustStore=" + caDir + "/java/truststore.p12 ",
		} {
			Expect(out).To(ContainSubstring(want))
		}
		for _, f := range []string{"php/ipnlab.ini", "node/proxy.cjs", "java/truststore.p12"} {
			Expect(filepath.Join(caDir, f)).To(BeARegularFile(), "written with the CA")
		}
		ini, err := os.ReadFile(filepath.Join(caDir, "php/ipnlab.ini"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(ini)).To(ContainSubstring(`curl.cainfo = "${SSL_CERT_FILE}"`))
	})

	It("reads the emulator's address where conform does, and a flag over it", func() {
		out, _, _ := caEnv([]string{"IPNLAB_EMULATOR_ADDR=127.0.0.1:9911"}, "--dotenv")
		Expect(out).To(ContainSubstring("\nhttps_proxy=http://127.0.0.1:9911\n"))
		Expect(out).To(ContainSubstring("-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9911 "))
		out, _, _ = caEnv([]string{"IPNLAB_EMULATOR_ADDR=127.0.0.1:9911"}, "--dotenv", "--emulator-addr", "127.0.0.1:9922")
		Expect(out).To(HavePrefix("HTTPS_PROXY=http://127.0.0.1:9922\n"))
	})

	It("prints unquoted lines for .env and $GITHUB_ENV, and docker run arguments with the files mounted where the variables say", func() {
		out, _, code := caEnv(nil, "--github-actions")
		Expect(code).To(BeZero())
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			Expect(line).To(MatchRegexp(`^[A-Za-z_]+=[^'"]*$`), "GITHUB_ENV takes NAME=value")
		}
		out, _, code = caEnv(nil, "--docker-args")
		Expect(code).To(BeZero())
		Expect(out).To(HavePrefix("--network host -e "))
		Expect(out).To(ContainSubstring("-e SSL_CERT_FILE=/etc/ipnlab/bundle.pem "))
		Expect(out).To(ContainSubstring("-e 'NODE_OPTIONS=--require /etc/ipnlab/node/proxy.cjs' "))
		Expect(out).To(ContainSubstring("-v " + caDir + "/bundle.pem:/etc/ipnlab/bundle.pem:ro"))
		Expect(out).To(ContainSubstring("-v " + caDir + "/php:/etc/ipnlab/php:ro"))
	})

	It("refuses two forms at once and a proxy that is no URL, saying why", func() {
		_, errOut, code := caEnv(nil, "--dotenv", "--docker-args")
		Expect(code).To(Equal(2))
		Expect(errOut).To(ContainSubstring("--dotenv, --github-actions and --docker-args: choose one"))
		_, errOut, code = caEnv(nil, "--proxy", "127.0.0.1:8700")
		Expect(code).To(Equal(2))
		Expect(errOut).To(ContainSubstring(`--proxy "127.0.0.1:8700": want http://HOST:PORT`))
		_, errOut, code = caEnv(nil, "--emulator-addr", "nowhere")
		Expect(code).To(Equal(2))
		Expect(errOut).To(ContainSubstring(`--emulator-addr "nowhere": want host:port`))
	})
})
