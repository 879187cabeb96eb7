package e2e_test

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/ipnlab/ipnlab/containers"
	"github.com/ipnlab/ipnlab/containers/emulatorcontainer"
	"github.com/ipnlab/ipnlab/containers/listenercontainer"
	"github.com/ipnlab/ipnlab/emulator"
	wire "github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
	_ "github.com/ipnlab/ipnlab/suites/conformance/webhookchecks" // the image's conform has them
)

// fastVerify makes the reference listener retry failed postbacks quickly,
// as the in-process conformance specs do.
var fastVerify = testcontainers.WithCmdArgs("--verify-backoff=20ms", "--verify-max-backoff=100ms", "--verify-attempts=20")

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// removeOnCleanup terminates ctr when the spec ends, whatever happened.
func removeOnCleanup(ctr testcontainers.Container) {
	DeferCleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		Expect(testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))).To(Succeed())
	})
}

func output(ctx context.Context, ctr testcontainers.Container) string {
	rc, err := ctr.Logs(ctx)
	Expect(err).NotTo(HaveOccurred())
	defer rc.Close()
	out, err := io.ReadAll(rc)
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}

// leftovers lists the containers of the image under test, running or not.
func leftovers() string {
	out, err := exec.Command("docker", "ps", "-a", "-q", "--filter", "ancestor="+image).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return strings.TrimSpace(string(out))
}

var _ = AfterSuite(func() {
	if image != "" {
		Expect(leftovers()).To(BeEmpty(), "containers left behind")
	}
})

var _ = Describe("The image", func() {
	// 30 MB: Prometheus' client (with protobuf, for /metrics) added 3.3 MB
	// to a 23.8 MB image.
	It("is under 30 MB, runs as nobody, has ipnlab as its entrypoint and a health check", func() {
		out, err := exec.Command("docker", "image", "inspect", "--format",
			"{{.Size}}|{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}", image).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		parts := strings.Split(strings.TrimSpace(string(out)), "|")
		Expect(parts).To(HaveLen(4))
		size, err := strconv.ParseInt(parts[0], 10, 64)
		Expect(err).NotTo(HaveOccurred())
		Expect(size).To(BeNumerically("<", 30_000_000))
		Expect(parts[1]).To(Equal("65534:65534"))
		Expect(parts[2]).To(Equal(`["/ipnlab"]`))
		Expect(parts[3]).To(Equal(`["CMD","/ipnlab","healthz"]`))
	})
})

var _ = Describe("The emulator and reference listener modules", func() {
	It("deliver, verify and credit a payment once, through a listener outage and PayPal's retries on the manual clock", func(ctx SpecContext) {
		emu, err := emulatorcontainer.Run(ctx, image, emulatorcontainer.WithClock("manual"), emulatorcontainer.WithSeed(42))
		Expect(err).NotTo(HaveOccurred())
		removeOnCleanup(emu)
		Expect(emu.VerifyURL()).To(HavePrefix("http://127.0.0.1:"))

		// A fixed port, so the listener comes back where PayPal resends.
		port := freePort()
		lst, err := listenercontainer.Run(ctx, image, listenercontainer.WithVerifyURL(emu.VerifyURL()),
			listenercontainer.WithUnknownPayers("create"), listenercontainer.WithPayDoSources("127.0.0.1"),
			testcontainers.WithCmdArgs("--addr", "127.0.0.1:"+port))
		Expect(err).NotTo(HaveOccurred())
		removeOnCleanup(lst)
		Expect(lst.Addr()).To(Equal("127.0.0.1:" + port))

		api := emu.Client()
		_, err = api.SetProfile(ctx, wire.Profile{NotifyURL: lst.PayPalURL(), Enabled: true,
			ReceiverEmail: emulator.DefaultReceiverEmail, ReceiverID: emulator.DefaultReceiverID})
		Expect(err).NotTo(HaveOccurred())

		By("taking the listener down before the payment is sent")
		Expect(lst.Stop(ctx, nil)).To(Succeed())
		msg, err := api.SendPayPal(ctx, emulator.SendRequest{Kind: "web_accept", Params: emulator.Params{Status: "Completed", Gross: "12.34", Currency: "USD"}})
		Expect(err).NotTo(HaveOccurred())
		_, err = api.Advance(ctx, "2h")
		Expect(err).NotTo(HaveOccurred())
		down, err := api.Message(ctx, msg.ID)
		Expect(err).NotTo(HaveOccurred())
		Expect(len(down.Attempts)).To(BeNumerically(">=", 2), "PayPal resent while the listener was down")
		for _, a := range down.Attempts {
			Expect(a.Acked).To(BeFalse())
			Expect(a.Error).NotTo(BeEmpty())
		}

		By("bringing it back: the next resend is acknowledged, verified and credited once")
		Expect(lst.Start(ctx)).To(Succeed())
		_, err = api.RunUntilIdle(ctx, "")
		Expect(err).NotTo(HaveOccurred())
		up, err := api.Message(ctx, msg.ID)
		Expect(err).NotTo(HaveOccurred())
		last := up.Attempts[len(up.Attempts)-1]
		Expect(last.Acked).To(BeTrue(), "%+v", last)
		Expect(last.StatusCode).To(Equal(200))
		probe, err := scenarios.NewProbe(lst.BaseURL())
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			postbacks, err := api.Postbacks(ctx, msg.ID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(postbacks).NotTo(BeEmpty())
			g.Expect(postbacks[len(postbacks)-1].Verdict.Result).To(Equal(paypal.Verified))
			txn, err := probe.Transaction(ctx, "paypal", msg.TxnID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(txn.Effects).To(HaveLen(1))
			g.Expect(txn.Net).To(Equal(map[string]string{"USD": "12.34"}))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("sending a PayDo checkout, which PayDo delivers once accepted")
		Expect(api.RegisterPayDo(ctx, "default", "", lst.PayDoURL())).To(Succeed())
		sent, err := api.SendPayDo(ctx, emulator.PayDoRequest{Kind: "checkout", Project: "default"})
		Expect(err).NotTo(HaveOccurred())
		Expect(sent).To(HaveLen(1))
		Expect(sent[0].Attempts).To(HaveLen(1))
		Expect(sent[0].Attempts[0].Acked).To(BeTrue(), "%+v", sent[0].Attempts[0])
	}, SpecTimeout(3*time.Minute))

	It("refuse bad options before starting anything, and remove a container that never gets ready", func(ctx SpecContext) {
		_, err := emulatorcontainer.Run(ctx, image, emulatorcontainer.WithClock("sideways"))
		Expect(err).To(MatchError(ContainSubstring("clock")))
		_, err = emulatorcontainer.Run(ctx, image, emulatorcontainer.WithFault(emulator.FaultRequest{Kind: "gremlins"}))
		Expect(err).To(MatchError(ContainSubstring(`fault kind "gremlins"`)))
		_, err = listenercontainer.Run(ctx, image)
		Expect(err).To(MatchError(ContainSubstring("no verify URL")))
		_, err = listenercontainer.Run(ctx, image, listenercontainer.WithVerifyURL("http://127.0.0.1:1/cgi-bin/webscr"), listenercontainer.WithMutant("nice"))
		Expect(err).To(MatchError(ContainSubstring(`mutant "nice"`)))

		// A flag the binary refuses: the container exits, Run says why
		// (with its output) and leaves nothing behind.
		_, err = emulatorcontainer.Run(ctx, image, testcontainers.WithCmdArgs("--retries", "-3"))
		Expect(err).To(MatchError(containers.ErrExited))
		Expect(err.Error()).To(ContainSubstring("retries -3: want 0 to 100"))
		Expect(leftovers()).To(BeEmpty())
	}, SpecTimeout(2*time.Minute))

	It("start with a fault set and an API token", func(ctx SpecContext) {
		emu, err := emulatorcontainer.Run(ctx, image, emulatorcontainer.WithAPIToken("s3cret"),
			emulatorcontainer.WithFault(emulator.FaultRequest{Kind: "status500", Count: 1}), emulatorcontainer.WithVerifyMode("strict"))
		Expect(err).NotTo(HaveOccurred())
		removeOnCleanup(emu)
		api := emu.Client()
		_, err = api.Profile(ctx)
		Expect(err).NotTo(HaveOccurred())
		_, err = emu.Client().WithToken("").Profile(ctx)
		Expect(err).To(MatchError(ContainSubstring("401")))

		lst, err := listenercontainer.Run(ctx, image, listenercontainer.WithVerifyURL(emu.VerifyURL()), listenercontainer.WithUnknownPayers("create"), fastVerify)
		Expect(err).NotTo(HaveOccurred())
		removeOnCleanup(lst)
		msg, err := api.SendPayPal(ctx, emulator.SendRequest{Kind: "web_accept", NotifyURL: lst.PayPalURL()})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pbs, err := api.Postbacks(ctx, msg.ID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(pbs)).To(BeNumerically(">=", 2))
			g.Expect(pbs[0].Fault).To(Equal(paypal.FaultStatus500), "the first postback meets the fault")
			g.Expect(pbs[len(pbs)-1].Verdict.Result).To(Equal(paypal.Verified))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	}, SpecTimeout(2*time.Minute))
})

// notRun counts the checks a run without --orders and without
// --webhook-listener does not judge: the order checks (an order shop's:
// skipped) and the PW- ones (a listener of PayPal's REST webhooks:
// disabled, as PayDo's are without --paydo-listener).
func notRun() (skipped, disabled int) {
	for _, c := range conformance.Checks() {
		switch {
		case c.HasLabel("orders"):
			skipped++
		case c.Provider == "paypalrest":
			disabled++
		}
	}
	return skipped, disabled
}

var _ = Describe("The conformance suite in containers", func() {
	It("passes the reference listener's container, run by the image's own `ipnlab conform` (the emulator in a container too)", func(ctx SpecContext) {
		emuPort := freePort()
		lst, err := listenercontainer.Run(ctx, image, listenercontainer.WithVerifyURL("http://127.0.0.1:"+emuPort+"/cgi-bin/webscr"),
			listenercontainer.WithCustomer("customer@example.com", "C1"), listenercontainer.WithPayDoSources("127.0.0.1"), fastVerify)
		Expect(err).NotTo(HaveOccurred())
		removeOnCleanup(lst)

		conform, err := testcontainers.Run(ctx, image,
			testcontainers.WithCmd("conform", "--listener", lst.PayPalURL(), "--paydo-listener", lst.PayDoURL(), "--probe", lst.BaseURL(),
				"--emulator-addr", "127.0.0.1:"+emuPort, "--ack-timeout", "2s", "--name", "reference listener (container)"),
			containers.HostNetwork(), testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(3*time.Minute)))
		Expect(err).NotTo(HaveOccurred())
		removeOnCleanup(conform)
		st, err := conform.State(ctx)
		Expect(err).NotTo(HaveOccurred())
		out := output(ctx, conform)
		Expect(st.ExitCode).To(Equal(0), out)
		// All but PP-VERIFY-ENDPOINT, judged only under --intercept, the
		// order checks, which need an order shop, and the PW- checks,
		// which need --webhook-listener.
		skipped, disabled := notRun()
		Expect(out).To(MatchRegexp(`\b%d passed, 0 failed, 0 warnings, 0 blocked, %d skipped, %d disabled, 0 errors\b`, len(conformance.Checks())-1-skipped-disabled, skipped, 1+disabled))
	}, SpecTimeout(4*time.Minute))

	conform := func(args ...string) *gexec.Session {
		cmd := exec.Command(binary, append([]string{"conform", "--listener-image", image, "--ack-timeout", "2s"}, args...)...)
		cmd.Env = append(os.Environ(), "IPNLAB_CA_DIR="+filepath.Join(GinkgoT().TempDir(), "ca"))
		s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		return s.Wait(4 * time.Minute)
	}
	reference := []string{"--listener-arg", "listen", "--listener-arg", "--customer=customer@example.com=C1",
		"--listener-arg=--verify-backoff=20ms", "--listener-arg=--verify-max-backoff=100ms", "--listener-arg=--verify-attempts=20",
		"--listener", "/ipn/paypal", "--paydo-listener", "/ipn/paydo", "--probe", "/"}

	It("`ipnlab conform --listener-image --intercept --webhook-listener` passes the reference listener's image posting back to PayPal's sandbox host and verifying REST webhooks, and removes its container", func() {
		// The image is FROM scratch: the CA bundle mounted in it and
		// HTTPS_PROXY are all it has to reach https://ipnpb.sandbox.paypal.com.
		junit := filepath.Join(GinkgoT().TempDir(), "junit.xml")
		s := conform(append(reference, "--junit", junit, "--intercept", "--listener-arg=--verify-url=https://ipnpb.sandbox.paypal.com/cgi-bin/webscr",
			"--webhook-listener", "/webhooks/paypal")...)
		Expect(s).To(gexec.Exit(0), string(s.Err.Contents()))
		Expect(s.Err).To(gbytes.Say(`listener container ready: image=` + image + ` addr=127\.0\.0\.1:\d+ verify_url=http://127\.0\.0\.1:\d+/cgi-bin/webscr`))
		// The order checks need an order shop: skipped, saying so. The
		// PW- checks run too: the image's listener verifies REST webhooks
		// with the webhook id and the mounted CA the run gives it.
		skipped, _ := notRun()
		Expect(s.Out).To(gbytes.Say(`%d passed, 0 failed, 0 warnings, 0 blocked, %d skipped, 0 disabled`, len(conformance.Checks())-skipped, skipped))
		raw, err := os.ReadFile(junit)
		Expect(err).NotTo(HaveOccurred())
		var report struct {
			Suites []struct {
				Tests    int `xml:"tests,attr"`
				Failures int `xml:"failures,attr"`
				Errors   int `xml:"errors,attr"`
			} `xml:"testsuite"`
		}
		Expect(xml.Unmarshal(raw, &report)).To(Succeed())
		tests, bad := 0, 0
		for _, s := range report.Suites {
			tests, bad = tests+s.Tests, bad+s.Failures+s.Errors
		}
		Expect(tests).To(Equal(len(conformance.Checks())))
		Expect(bad).To(BeZero())
		Expect(leftovers()).To(BeEmpty())
	})

	It("fails a mutant listener's image, naming the checks it broke, and removes its container", func() {
		args := append(append([]string{}, reference...), "--listener-arg=--mutant=credit-pending")
		s := conform(args...)
		Expect(s).To(gexec.Exit(1), string(s.Err.Contents()))
		Expect(s.Out).To(gbytes.Say(`FAIL PP-PENDING-ECHECK`))
		Expect(s.Err).To(gbytes.Say(`the listener container's output ends:\n  `))
		Expect(s.Err).To(gbytes.Say(`not conformant: \d+ required check\(s\) failed`))
		Expect(leftovers()).To(BeEmpty())
	})

	It("reports a listener image that cannot start as a harness error (exit 2) with its output", func() {
		s := conform("--listener", "/ipn", "--listener-arg", "listen", "--listener-arg", "--unknown-payers=maybe", "--listener-startup", "30s")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`container exited before it was ready \(exit code 2\)`))
		Expect(leftovers()).To(BeEmpty())

		s = conform("--listener-env", "NOEQUALS")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--listener-env "NOEQUALS": want NAME=VALUE`))
		s = conform()
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--listener-image needs --listener`))
		s, err := gexec.Start(exec.Command(binary, "conform", "--listener", "http://127.0.0.1:1/ipn", "--listener-port", "8080"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(s).Should(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--listener-port needs --listener-image`))
	})
})
