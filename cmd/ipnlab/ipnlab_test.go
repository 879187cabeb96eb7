package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipnlab/ipnlab/internal/testenv"
	junitparser "github.com/joshdk/go-junit"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
	. "github.com/onsi/gomega/gstruct"
)

// readyWait bounds the wait for a process to say it is ready: beside a
// busy CPU, starting one (a Python interpreter, a JVM) takes seconds, and
// the bound matters only when it never does.
const readyWait = time.Minute

// freeAddr returns a loopback address nothing listens on (for an
// emulator the listener must know before it starts).
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer ln.Close()
	return ln.Addr().String()
}

// requireCommand skips a spec on a machine without the command, and fails
// it in CI, whose .ci/run installs it.
func requireCommand(name string) {
	GinkgoHelper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing("CI needs the "+name+" command (.ci/run installs it)", "no "+name+" command on this machine")
	}
}

// verifying is a listener that posts each IPN back to verifyURL, with
// change applied to the body (nil: as sent), before answering: fail first
// answers 500 to that many deliveries, without posting back.
func verifying(verifyURL string, change func([]byte) []byte, failFirst int32) *httptest.Server {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if seen.Add(1) <= failFirst {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if change != nil {
			body = change(body)
		}
		resp, err := http.Post(verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		w.WriteHeader(http.StatusOK)
	}))
	DeferCleanup(srv.Close)
	return srv
}

// run runs the binary to completion and returns its session.
func run(args ...string) *gexec.Session {
	s, err := gexec.Start(exec.Command(binary, args...), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Eventually(s).WithTimeout(20 * time.Second).Should(gexec.Exit())
	return s
}

var _ = Describe("ipnlab serve and its clients", func() {
	var (
		serve *gexec.Session
		emu   string
		ack   *httptest.Server
	)
	BeforeEach(func() {
		var err error
		serve, err = gexec.Start(exec.Command(binary, "serve", "--emulator-addr", "127.0.0.1:0", "--clock", "manual", "--log-level", "warn"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(serve.Out).WithTimeout(readyWait).Should(gbytes.Say(`ipnlab emulator ready addr=(127\.0\.0\.1:\d+) clock=manual verify=paypal seed=\d+\n`))
		addr := regexp.MustCompile(`addr=(\S+)`).FindSubmatch(serve.Out.Contents())[1]
		emu = "--emulator=http://" + string(addr)
		ack = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
		DeferCleanup(func() {
			ack.Close()
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
	})

	It("runs PayPal REST webhooks: ipnlab send paypalrest delivers a signed event, its webhook subscribed on the way", func() {
		var mu sync.Mutex
		var got []http.Header
		var bodies []string
		hooks := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			got, bodies = append(got, r.Header.Clone()), append(bodies, string(body))
			mu.Unlock()
		}))
		DeferCleanup(hooks.Close)
		s := run("send", "paypalrest", emu, "--listener", hooks.URL, "--kind", "PAYMENT.CAPTURE.COMPLETED", "--set", "amount=12.34")
		Expect(s).To(gexec.Exit(0))
		mu.Lock()
		defer mu.Unlock()
		Expect(got).To(HaveLen(1))
		Expect(got[0].Get("Paypal-Auth-Algo")).To(Equal("SHA256withRSA"))
		Expect(got[0].Get("Paypal-Transmission-Sig")).NotTo(BeEmpty())
		Expect(got[0].Get("Paypal-Cert-Url")).To(HavePrefix("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-"))
		Expect(bodies[0]).To(ContainSubstring(`"amount":{"currency_code":`))
		Expect(bodies[0]).To(ContainSubstring(`"value":"12.34"`))
		Expect(run("send", "paypalrest", emu, "--listener", hooks.URL, "--kind", "PAYMENT.CAPTURE.COMPLETD").Err).To(gbytes.Say(`PAYMENT.CAPTURE.COMPLETD`))
	})

	It("sends, advances the clock, and shows History and the message", func() {
		s := run("send", "paypal", emu, "--listener", ack.URL, "--kind", "cart", "--param", "items=2", "--set", "custom=order-42")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`id=([A-Z0-9]{17}) txn_id=[A-Z0-9]{17} kind=cart status="Retrying" seed=\d+`))
		id := regexp.MustCompile(`id=(\S+)`).FindSubmatch(s.Out.Contents())[1]

		Expect(run("clock", "advance", "4d", emu).Out).To(gbytes.Say(`mode=manual pending=0`))
		h := run("history", emu)
		Expect(h).To(gexec.Exit(0))
		Expect(h.Out).To(gbytes.Say(`Failed\s+500\s+16`))

		m := run("message", string(id), emu)
		Expect(m).To(gexec.Exit(0))
		Expect(m.Out).To(gbytes.Say(`custom = "order-42"`))
		Expect(m.Out).To(gbytes.Say(`#16 retry`))

		r := run("resend", string(id), emu)
		Expect(r).To(gexec.Exit(0))
		Expect(r.Out).To(gbytes.Say(`attempts=17`))
	})

	It("send --wait prints the outcome and exits 0 only when acknowledged and VERIFIED", func() {
		verify := strings.TrimPrefix(emu, "--emulator=") + "/cgi-bin/webscr"
		good := verifying(verify, nil, 0)
		s := run("send", "paypal", emu, "--listener", good.URL, "--wait")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`id=(\w+) .*\n\w+: delivered \(HTTP 200\) and verified\n`))

		mangled := verifying(verify, func(b []byte) []byte {
			return regexp.MustCompile(`mc_gross=[^&]*`).ReplaceAll(b, []byte("mc_gross=0.01"))
		}, 0)
		s = run("send", "paypal", emu, "--listener", mangled.URL, "--wait=5s")
		Expect(s).To(gexec.Exit(1))
		Expect(s.Out).To(gbytes.Say(`delivered \(HTTP 200\), but the postback was INVALID value-changed: field "mc_gross"`))
		Expect(s.Err).To(gbytes.Say(`messages: 1 of 1 acknowledged but not verified`))
		// The verdict as the verifier names it: the field stays lower case.
		id := regexp.MustCompile(`id=(\w+)`).FindSubmatch(s.Out.Contents())[1]
		m := run("message", string(id), emu)
		Expect(m.Out).To(gbytes.Say(`^INVALID value-changed \(mc_gross\): delivered \(HTTP 200\), but the postback was INVALID`))

		// Not acknowledged, on a manual clock: nothing more happens until the clock moves, so it does not wait.
		s = run("send", "paypal", emu, "--listener", ack.URL, "--wait", "--json")
		Expect(s).To(gexec.Exit(1))
		Expect(s.Out).To(gbytes.Say(`"state": "undelivered"`))
		Expect(s.Err).To(gbytes.Say(`not acknowledged: HTTP 500 \(attempt 1; next `))

		Expect(run("send", "paypal", emu, "--lifecycle", "pay_refund", "--wait").Err).To(gbytes.Say(`--wait and --lifecycle do not go together`))

		h := run("history", emu, "--verdict", "invalid")
		Expect(h).To(gexec.Exit(0))
		Expect(h.Out).To(gbytes.Say(`VERDICT\n.*INVALID value-changed \(mc_gross\)\n\(1 of 1 shown|VERDICT\n[^\n]*INVALID value-changed \(mc_gross\)\n$`))
		all := run("history", emu, "--limit", "1")
		Expect(all.Out).To(gbytes.Say(`(?s)VERDICT\n[^\n]*not acknowledged\n\(1 of 3 shown`), "newest first: --limit 1 is the newest")
	})

	It("tails deliveries, postbacks and verdicts as they happen, in order", func() {
		verify := strings.TrimPrefix(emu, "--emulator=") + "/cgi-bin/webscr"
		flaky := verifying(verify, nil, 1)
		// --all: from the first event this (fresh) emulator keeps, so no line is missed.
		t, err := gexec.Start(exec.Command(binary, "tail", "--all", emu), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { t.Interrupt(); Eventually(t).Should(gexec.Exit()) })
		s := run("send", "paypal", emu, "--listener", flaky.URL)
		Expect(s).To(gexec.Exit(0))
		id := regexp.MustCompile(`id=(\w+)`).FindSubmatch(s.Out.Contents())[1]
		Expect(run("clock", "advance", "1m", emu)).To(gexec.Exit(0))
		Eventually(t.Out).Should(gbytes.Say(string(id) + `  created  paypal web_accept txn \w+ → ` + regexp.QuoteMeta(flaky.URL)))
		Eventually(t.Out).Should(gbytes.Say(string(id) + `  attempt 1 \(initial\) → HTTP 500: not acknowledged; next attempt `))
		// The listener posts back before it answers attempt 2: the
		// postback's line follows that attempt's.
		Eventually(t.Out).Should(gbytes.Say(string(id) + `  attempt 2 \(retry\) → HTTP 200: acknowledged`))
		Eventually(t.Out).Should(gbytes.Say(string(id) + `  postback → VERIFIED`))
		Eventually(t.Out).Should(gbytes.Say(`clock advanced by 1m0s`), "once the deliveries it fired are done")
		Expect(string(t.Out.Contents())).NotTo(ContainSubstring("\x1b["), "plain into a pipe")
	})

	It("lists the postbacks of no message the emulator sent, with the reason", func() {
		verify := strings.TrimPrefix(emu, "--emulator=") + "/cgi-bin/webscr"
		resp, err := http.Post(verify, "application/x-www-form-urlencoded", strings.NewReader("cmd=_notify-validate&txn_id=NOTSENT0000000000&verify_sign=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrSt"))
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		p := run("postbacks", emu, "--unknown")
		Expect(p).To(gexec.Exit(0))
		Expect(p.Out).To(gbytes.Say(`PB\d+\s+\(none\)\s+Go-http-client/1.1\s+INVALID unknown-message: `))
		Expect(run("postbacks", emu, "--unknown", "--message", "M1").Err).To(gbytes.Say(`--unknown and --message do not go together`))
	})

	It("replays a raw file byte for byte", func() {
		path := filepath.Join(GinkgoT().TempDir(), "ipn.txt")
		Expect(os.WriteFile(path, []byte("txn_id=61E67681CH3238416&first_name=J%F6rg&charset=windows-1252"), 0o600)).To(Succeed())
		s := run("send", "paypal", emu, "--listener", ack.URL, "--raw-file", path, "--json")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`"body": "txn_id=61E67681CH3238416&first_name=J%F6rg&charset=windows-1252"`))
	})

	It("sets faults and the profile", func() {
		Expect(run("fault", "set", "slow", "--delay", "2s", emu)).To(gexec.Exit(0))
		Expect(run("fault", "set", "sometimes", emu).Err).To(gbytes.Say(`fault kind "sometimes": want one of`))
		Expect(run("fault", "clear", emu)).To(gexec.Exit(0))
		p := run("profile", emu, "--listener", ack.URL, "--on")
		Expect(p).To(gexec.Exit(0))
		Expect(p.Out).To(gbytes.Say(`notifications: on\nlistener:      ` + regexp.QuoteMeta(ack.URL) + `\n`))
		Expect(p.Out).To(gbytes.Say(`release held:  false`))
		p = run("profile", emu, "--json")
		Expect(p.Out).To(gbytes.Say(`"enabled": true`))
		Expect(run("fault", "set", "status500", "--count", "2", emu).Out).To(gbytes.Say(`fault status500 set on every postback, for the next 2\n`))
		Expect(run("fault", "clear", emu).Out).To(gbytes.Say(`fault cleared`))
		Expect(run("paydo", "register", "--project", "shop", "--listener", ack.URL, emu).Out).To(gbytes.Say(`project shop \(checkout notifications\): IPN URL ` + regexp.QuoteMeta(ack.URL)))
		Expect(run("clock", "show", "--json", emu).Out).To(gbytes.Say(`"mode": "manual"`))
	})

	It("lists the kinds within 80 columns, or as JSON", func() {
		l := run("fixtures", "list")
		Expect(l).To(gexec.Exit(0))
		for _, line := range strings.Split(string(l.Out.Contents()), "\n") {
			Expect(len([]rune(line))).To(BeNumerically("<=", 80), line)
		}
		Expect(run("fixtures", "list", "--json").Out).To(gbytes.Say(`"name": "adaptive_account"`))
	})

	It("leaves messages made while IPN was off Held until resent, or releases them with --release-held", func() {
		Expect(run("profile", emu, "--listener", ack.URL, "--off")).To(gexec.Exit(0))
		clk := run("clock", "show", emu)
		Expect(clk).To(gexec.Exit(0))
		since := regexp.MustCompile(`now=(\S+)`).FindSubmatch(clk.Out.Contents())[1]
		for range 2 {
			s := run("send", "paypal", emu, "--kind", "web_accept")
			Expect(s).To(gexec.Exit(0))
			Expect(s.Out).To(gbytes.Say(`Held`))
		}
		Expect(run("profile", emu, "--on")).To(gexec.Exit(0))
		Expect(run("history", "--status", "Held", emu).Out).To(gbytes.Say(`(?s)Held.*Held`))
		r := run("resend", emu, "--since", string(since), "--status", "Held")
		Expect(r).To(gexec.Exit(0))
		Expect(r.Out).To(gbytes.Say(`resent 2: `))

		Expect(run("profile", emu, "--off")).To(gexec.Exit(0))
		Expect(run("send", "paypal", emu, "--kind", "web_accept")).To(gexec.Exit(0))
		p := run("profile", emu, "--on", "--release-held")
		Expect(p).To(gexec.Exit(0))
		Expect(p.Out).To(gbytes.Say(`release held:  true`))
		Expect(run("history", "--status", "Held", emu).Out).NotTo(gbytes.Say(`Held`))
	})

	It("exits 2 with a precise message on bad input", func() {
		for args, msg := range map[*[]string]string{
			{"send", "paypal", emu, "--kind", "nope", "--listener", "http://127.0.0.1:9/"}:                  `unknown kind "nope"`,
			{"send", "paypal", emu, "--set", "novalue"}:                                                     `--set "novalue": want name=value`,
			{"send", "paypal", emu, "--param", "colour=red"}:                                                `--param colour: not a parameter`,
			{"clock", "advance", "soon", emu}:                                                               `duration "soon"`,
			{"history", "--status", "Lost", emu}:                                                            `status "Lost"`,
			{"resend", emu}:                                                                                 "give a message ID or --since",
			{"fixtures", "show", "web_accept", "--at", "soon"}:                                              `--at "soon": want a time such as 2026-01-15T18:30:00Z`,
			{"clock", "advance", "-1h", emu}:                                                                "-1h: a negative value is not accepted here",
			{"resend", "M1", "--status", "Held", emu}:                                                       "--status chooses the messages to resend with --since",
			{"history", "--status", "Disabled", emu}:                                                        "merchant's account is disabled",
			{"serve", "--clock", "fast"}:                                                                    `clock mode "fast"`,
			{"serve", "--verify", "loose"}:                                                                  `verify mode "loose"`,
			{"serve", "--allow", ""}:                                                                        "--allow is empty",
			{"lab", "--emulator-addr", "0.0.0.0:0"}:                                                         "--emulator-addr 0.0.0.0:0: not a loopback address: set an API token",
			{"load", "--listener", "http://127.0.0.1:9/", "--emulator-addr", "0.0.0.0:0"}:                   "--emulator-addr 0.0.0.0:0: not a loopback address",
			{"conform", "--listener", "http://127.0.0.1:9/", "--emulator-addr", "0.0.0.0:0"}:                "emulator_addr 0.0.0.0:0: not a loopback address",
			{"conform", "--listener", "http://127.0.0.1:9/", "--focus", "NOPE"}:                             `no check matches focus "NOPE"`,
			{"conform", "--listener", "http://127.0.0.1:9/", "--label-filter", "paypall"}:                   `no check matches focus "" and label filter "paypall"`,
			{"run", "paypal-ack-genuine", "--listener", "http://127.0.0.1:9/", "--emulator-addr", "[::]:0"}: "not a loopback address",
			{"serve", "--clock", "scale:NaN"}:                                                               `clock mode "scale:NaN"`,
			{"serve", "--log-format", "xml"}:                                                                `--log-format "xml": want text or json`,
			{"serve", "--debug-addr", "0.0.0.0:6060"}:                                                       "profiles are served on loopback only",
			{"lab", "--debug-addr", "6060"}:                                                                 `--debug-addr "6060": want HOST:PORT on loopback`,
			{"serve", "--metrics-token", "m"}:                                                               "--metrics-token (or IPNLAB_METRICS_TOKEN) needs --api-token",
			{"clock", "advance", "1e300d", emu}:                                                             "longer than a century",
			{"history", "--emulator", "http://127.0.0.1:1"}:                                                 "emulator unreachable",
			{"send", "paypal", "--bogus"}:                                                                   "unknown flag: --bogus",
		} {
			s := run(*args...)
			Expect(s).To(gexec.Exit(2), "%v", *args)
			Expect(s.Err).To(gbytes.Say(regexp.QuoteMeta(msg)), "%v", *args)
		}
	})
})

var _ = Describe("A taken port", func() {
	It("is named as such, before lab creates its database", func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		defer ln.Close()
		dir := GinkgoT().TempDir()
		cmd := exec.Command(binary, "lab", "--emulator-addr", freeAddr(), "--listener-addr", ln.Addr().String())
		cmd.Dir = dir
		s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(s).WithTimeout(20 * time.Second).Should(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`the listener cannot listen on ` + regexp.QuoteMeta(ln.Addr().String()) + `: the port is taken`))
		Expect(filepath.Join(dir, "ipnlab-lab.db")).NotTo(BeAnExistingFile())
		Expect(run("serve", "--emulator-addr", ln.Addr().String()).Err).To(gbytes.Say(`the emulator cannot listen on .*: the port is taken`))
	})
})

var _ = Describe("ipnlab fixtures", func() {
	It("lists kinds and shows one reproducibly by seed", func() {
		l := run("fixtures", "list")
		Expect(l).To(gexec.Exit(0))
		Expect(l.Out).To(gbytes.Say(`\n  masspay\n      Mass Pay sent by the merchant`))
		a := run("fixtures", "show", "web_accept", "--seed", "7", "--raw")
		b := run("fixtures", "show", "web_accept", "--seed", "7", "--raw")
		Expect(a.Out.Contents()).To(Equal(b.Out.Contents()))
		Expect(run("fixtures", "show", "web_accept", "--seed", "8", "--raw").Out.Contents()).NotTo(Equal(a.Out.Contents()))
		s := run("fixtures", "show", "refund", "--seed", "3")
		Expect(s.Out).To(gbytes.Say(`# kind=refund seed=3 charset=windows-1252`))
		Expect(s.Out).To(gbytes.Say(`mc_gross = -\d+\.\d\d`))
	})
})

var _ = Describe("ipnlab send paydo", func() {
	It("sends, follows up, registers, and refuses a second transfer URL", func() {
		serve, err := gexec.Start(exec.Command(binary, "serve", "--emulator-addr", "127.0.0.1:0", "--clock", "manual", "--log-level", "warn", "--paydo-source", "127.0.0.2"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Eventually(serve.Out).WithTimeout(readyWait).Should(gbytes.Say(`ready addr=(\S+)`))
		emu := "--emulator=http://" + string(regexp.MustCompile(`addr=(\S+)`).FindSubmatch(serve.Out.Contents())[1])
		var remote atomic.Value
		ack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { remote.Store(r.RemoteAddr) }))
		defer ack.Close()

		s := run("send", "paydo", emu, "--listener", ack.URL, "--kind", "transfer", "--param", "status=3", "--then", "2", "--set", "transaction.currency=USD")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`id=pd_\S+ transaction=\S+ kind=transfer status="Sent"\n.*status="Sent"`))
		Expect(remote.Load()).To(HavePrefix("127.0.0.2:"))

		Expect(run("paydo", "register", emu, "--user", "acme", "--listener", ack.URL)).To(gexec.Exit(0))
		r := run("paydo", "register", emu, "--user", "acme", "--listener", ack.URL+"/x")
		Expect(r).To(gexec.Exit(2))
		Expect(r.Err).To(gbytes.Say("PayDo allows one transfer IPN URL per user"))
		Expect(run("send", "paydo", emu, "--kind", "transfer", "--user", "acme")).To(gexec.Exit(0))

		bad := run("send", "paydo", emu, "--listener", ack.URL, "--set", "transaction.status:=two")
		Expect(bad).To(gexec.Exit(2))
		Expect(bad.Err).To(gbytes.Say(`"two" is not valid JSON`))
		Expect(run("fixtures", "show", "checkout", "--seed", "1").Out).To(gbytes.Say(`"invoice":\{"id":`))
	})
})

// startLab starts ipnlab lab on free ports and a manual clock, stopped
// after the spec; it returns the emulator's address and the listener's URL.
func startLab() (emuAddr, listener string) {
	db := filepath.Join(GinkgoT().TempDir(), "lab.db")
	lab, err := gexec.Start(exec.Command(binary, "lab", "--emulator-addr", "127.0.0.1:0", "--listener-addr", "127.0.0.1:0", "--clock", "manual",
		"--listener-db", db, "--log-level", "warn"), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		lab.Signal(syscall.SIGTERM)
		Eventually(lab).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
	})
	Eventually(lab.Out).WithTimeout(readyWait).Should(gbytes.Say(`ipnlab listener ready addr=(\S+)`))
	out := string(lab.Out.Contents())
	return regexp.MustCompile(`emulator ready addr=(\S+)`).FindStringSubmatch(out)[1], "http://" + regexp.MustCompile(`listener ready addr=(\S+)`).FindStringSubmatch(out)[1]
}

var _ = Describe("ipnlab lab", func() {
	It("runs the emulator and the reference listener wired together", func() {
		emuAddr, lst := startLab()
		emu := "--emulator=http://" + emuAddr

		Expect(run("send", "paypal", emu, "--kind", "web_accept", "--param", "gross=25.00", "--param", "payer_email=ann@example.com")).To(gexec.Exit(0))
		Eventually(func() string {
			resp, err := http.Get(lst + "/probe/v1/customers/ann@example.com")
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}).WithTimeout(5 * time.Second).Should(ContainSubstring(`"USD": "25.00"`))
		Expect(run("history", emu).Out).To(gbytes.Say(`web_accept\s+\S+\s+Sent\s+200\s+1`))
	})

	It("is the emulator ipnlab run sends from while it runs, and conform names it instead of failing to listen", func() {
		emuAddr, lst := startLab()

		// The address the listener posts back to is taken by the lab's
		// emulator: the run goes there, and its History shows it.
		s := run("run", "paypal-credit-once", "--listener", lst+"/ipn/paypal", "--probe", lst, "--emulator-addr", emuAddr, "--seed", "5")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`paypal-credit-once: `))
		Expect(s.Out).To(gbytes.Say(`running in the emulator at http://` + regexp.QuoteMeta(emuAddr) + ` \(already running`))
		Expect(s.Out).To(gbytes.Say(`line \d+: send paypal web_accept -> \S+ txn_id=\S+`))
		Expect(s.Out).To(gbytes.Say(`passed in \S+s \(seed 5\)`))
		Expect(run("history", "--emulator=http://"+emuAddr).Out).To(gbytes.Say(`web_accept\s+\S+\s+Sent\s+200\s+1\s+verified`))

		// A file of the user's own, named with --emulator; what the
		// running emulator sets itself is refused by name.
		file := filepath.Join(GinkgoT().TempDir(), "mine.yaml")
		Expect(os.WriteFile(file, []byte("name: mine\ndescription: one payment, acknowledged\nprovider: paypal\nsteps:\n  - send: {as: pay, kind: web_accept}\n  - expect: {message: pay, acked: true}\n"), 0o644)).To(Succeed())
		s = run("run", file, "--listener", lst+"/ipn/paypal", "--emulator", "http://"+emuAddr)
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`mine: one payment, acknowledged`))
		Expect(s.Out).To(gbytes.Say(`passed in`))
		s = run("run", "PP-ACK-GENUINE", "--listener", lst+"/ipn/paypal", "--emulator", "http://"+emuAddr, "--ack-timeout", "3s")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--ack-timeout: the running emulator at http://` + regexp.QuoteMeta(emuAddr) + ` has its own`))
		s = run("run", "PP-ACK-GENUINE", "--listener", lst+"/ipn/paypal", "--emulator", "http://"+lst[len("http://"):])
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--emulator http://\S+: no ipnlab emulator answers there`))

		s = run("conform", "--listener", lst+"/ipn/paypal", "--emulator-addr", emuAddr)
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(regexp.QuoteMeta(emuAddr) + ` is an ipnlab emulator already running \(make run, serve or lab\): conform needs one of its own`))
		s = run("explore", "--listener", lst+"/ipn/paypal", "--probe", lst, "--emulator-addr", emuAddr, "--histories", "1")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(regexp.QuoteMeta(emuAddr) + ` is an ipnlab emulator already running \(make run, serve or lab\): explore needs one of its own`))
	})

	It("refuses a bad listener config at start, naming the problem", func() {
		s := run("listen", "--addr", "127.0.0.1:0", "--verify-url", "nowhere", "--db", filepath.Join(GinkgoT().TempDir(), "x.db"))
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`verify_url "nowhere": want an absolute http\(s\) URL`))
		s = run("listen", "--customer", "nobody")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--customer "nobody": want email=id`))
		s = run("listen", "--verify-attempts", "0")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--verify-attempts 0: want 1 to 100`))
		s = run("listen", "--verify-backoff", "-1s")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--verify-backoff -1s: must be positive`))
	})

	It("takes its address and verify URL from the variables conform --listener-image sets, flags winning", func() {
		start := func(args ...string) *gexec.Session {
			cmd := exec.Command(binary, append([]string{"listen", "--db", filepath.Join(GinkgoT().TempDir(), "l.db")}, args...)...)
			cmd.Env = append(os.Environ(), "IPNLAB_LISTEN_ADDR=127.0.0.1:0", "IPNLAB_VERIFY_URL=http://127.0.0.1:9/cgi-bin/webscr",
				"IPNLAB_RECEIVER_EMAIL=shop@example.com", "IPNLAB_PAYDO_SOURCE=127.0.0.9")
			s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { s.Signal(syscall.SIGTERM); Eventually(s).WithTimeout(10 * time.Second).Should(gexec.Exit(0)) })
			return s
		}
		s := start()
		Eventually(s.Out).WithTimeout(readyWait).Should(gbytes.Say(`listener ready addr=127\.0\.0\.1:\d+ verify_url=http://127\.0\.0\.1:9/cgi-bin/webscr`))
		s = start("--verify-url", "http://127.0.0.1:10/cgi-bin/webscr")
		Eventually(s.Out).WithTimeout(readyWait).Should(gbytes.Say(`verify_url=http://127\.0\.0\.1:10/cgi-bin/webscr`))
	})
})

var _ = Describe("ipnlab listen after kill -9", func() {
	It("replays what it acked and credits it exactly once", func() {
		serve, err := gexec.Start(exec.Command(binary, "serve", "--emulator-addr", "127.0.0.1:0", "--clock", "manual", "--log-level", "warn"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Eventually(serve.Out).WithTimeout(readyWait).Should(gbytes.Say(`ready addr=(\S+)`))
		emuURL := "http://" + string(regexp.MustCompile(`addr=(\S+)`).FindSubmatch(serve.Out.Contents())[1])
		emu := "--emulator=" + emuURL

		dir := GinkgoT().TempDir()
		cfg := filepath.Join(dir, "listener.yaml")
		Expect(os.WriteFile(cfg, []byte("verify_url: "+emuURL+"/cgi-bin/webscr\nreceiver_emails: [merchant@example.com]\n"+
			"customers: [{id: C1, email: customer@example.com}]\ndb: "+filepath.Join(dir, "l.db")+"\nverify: {backoff: 20ms, max_backoff: 50ms, attempts: 100}\n"), 0o600)).To(Succeed())
		listen := func() (*gexec.Session, string) {
			s, err := gexec.Start(exec.Command(binary, "listen", "--addr", "127.0.0.1:0", "--config", cfg, "--log-level", "error"), GinkgoWriter, GinkgoWriter)
			Expect(err).NotTo(HaveOccurred())
			Eventually(s.Out).WithTimeout(readyWait).Should(gbytes.Say(`listener ready addr=(\S+)`))
			return s, "http://" + string(regexp.MustCompile(`listener ready addr=(\S+)`).FindSubmatch(s.Out.Contents())[1])
		}
		get := func(url string) string {
			resp, err := http.Get(url)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}

		// The verifier is down: the listener acks, then cannot verify.
		Expect(run("fault", "set", "drop", emu)).To(gexec.Exit(0))
		l1, base := listen()
		s := run("send", "paypal", emu, "--listener", base+"/ipn/paypal", "--param", "gross=33.00", "--param", "payer_email=customer@example.com")
		Expect(s.Out).To(gbytes.Say(`status="Sent"`))
		Eventually(func() string { return get(emuURL + "/api/v1/postbacks") }).Should(ContainSubstring(`"fault": "drop"`))
		l1.Kill() // SIGKILL: no shutdown, nothing flushed by us
		Eventually(l1).Should(gexec.Exit())

		Expect(run("fault", "clear", emu)).To(gexec.Exit(0))
		l2, base := listen()
		DeferCleanup(func() { l2.Signal(syscall.SIGTERM); Eventually(l2).WithTimeout(10 * time.Second).Should(gexec.Exit(0)) })
		Expect(get(base + "/probe/v1/idle?wait=10s")).To(ContainSubstring(`"idle": true`))
		Expect(get(base + "/probe/v1/customers/C1")).To(ContainSubstring(`"USD": "33.00"`))
		Expect(get(base + "/probe/v1/log")).To(ContainSubstring(`"action": "credited"`))
	})
})

var _ = Describe("ipnlab conform and run", func() {
	It("exits 1 with evidence against a listener that only answers 200, and writes the reports", func() {
		idle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		defer idle.Close()
		dir := GinkgoT().TempDir()
		s := run("conform", "--listener", idle.URL, "--emulator-addr", "127.0.0.1:0", "--focus", "PP-ACK-GENUINE,PP-POSTBACK-SENT,PP-VERIFY-CRLF",
			"--postback-wait", "500ms", "--seed", "77", "--report", filepath.Join(dir, "r.json"), "--junit", filepath.Join(dir, "r.xml"), "--listener-version", "1.2.3", "--api-token", "s3cret-token")
		Expect(s).To(gexec.Exit(1))
		Expect(s.Out).To(gbytes.Say(`!! your listener acknowledged 3 PayPal messages but posted none of them back to http://127.0.0.1:\d+/cgi-bin/webscr`))
		Expect(s.Out).To(gbytes.Say(`ok   PP-ACK-GENUINE`))
		Expect(s.Out).To(gbytes.Say(`FAIL PP-POSTBACK-SENT`))
		Expect(s.Out).To(gbytes.Say(`message pay was never posted back to the verifier within 500ms`))
		// The binary is not the PATH's ipnlab: replay names it as it was run.
		Expect(s.Out).To(gbytes.Say(`replay: ` + regexp.QuoteMeta(binary) + ` conform --focus PP-POSTBACK-SENT --seed 77 --listener ` + idle.URL + ` --emulator-addr 127.0.0.1:0 --postback-wait 500ms`))
		Expect(s.Out).To(gbytes.Say(`BLKD PP-VERIFY-CRLF`))
		Expect(s.Out).To(gbytes.Say(`not judged: the listener posted none of its messages back \(what PP-POSTBACK-SENT tests\)`))
		Expect(s.Err).To(gbytes.Say("not conformant: 1 required check\\(s\\) failed, 1 blocked by them"))
		js, err := os.ReadFile(filepath.Join(dir, "r.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(js)).To(ContainSubstring(`"id": "PP-VERIFY-CRLF"`))
		Expect(string(js)).To(ContainSubstring(`"status": "blocked"`))
		Expect(string(js)).To(ContainSubstring(`"blocked_by": [`))
		Expect(string(js)).NotTo(ContainSubstring("s3cret-token"))
		var head struct {
			APIVersion, Kind string
			Tool             struct{ Name, Version string }
			Implementation   struct{ Version string }
			Checks           []struct{ ID, Requirement, Replay string }
			Config           map[string]any
			Replay, Error    string
		}
		Expect(json.Unmarshal(js, &head)).To(Succeed())
		Expect(head.Config).To(HaveKeyWithValue("listener", idle.URL))
		Expect(head.Config).To(HaveKeyWithValue("postback_wait", "500ms"))
		Expect(head.Config).To(HaveKeyWithValue("seed", BeNumerically("==", 77)))
		Expect(head.Config).To(HaveKeyWithValue("api_token", "[redacted]"))
		Expect(head.Replay).To(Equal(binary + " conform --seed 77 --listener " + idle.URL + " --emulator-addr 127.0.0.1:0 --postback-wait 500ms --focus PP-ACK-GENUINE,PP-POSTBACK-SENT,PP-VERIFY-CRLF"))
		Expect(head.Error).To(BeEmpty())
		Expect(head.APIVersion).To(Equal("conformance.ipnlab/v1"))
		Expect(head.Kind).To(Equal("ConformanceReport"))
		Expect(head.Tool.Name).To(Equal("ipnlab"))
		Expect(head.Tool.Version).NotTo(BeEmpty())
		Expect(head.Implementation.Version).To(Equal("1.2.3"))
		Expect(head.Checks).To(ContainElement(MatchFields(IgnoreExtras, Fields{"ID": Equal("PP-POSTBACK-SENT"),
			"Requirement": ContainSubstring("MUST post each message back"), "Replay": ContainSubstring(binary + " conform --focus PP-POSTBACK-SENT")})))
		xml, err := os.ReadFile(filepath.Join(dir, "r.xml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(xml)).To(ContainSubstring(`<failure message="message pay was never posted back to the verifier within 500ms">`))
		Expect(string(xml)).To(ContainSubstring(`<failure message="blocked by PP-POSTBACK-SENT: not judged`))
	})

	It("says its own version (ipnlab version, --version); conform's old --version still names the listener's, with a deprecation note", func() {
		v := run("version")
		Expect(v).To(gexec.Exit(0))
		Expect(v.Out).To(gbytes.Say(`^ipnlab \S+.* go1\.`))
		Expect(run("--version").Out).To(gbytes.Say(`^ipnlab \S+`))
		old := run("conform", "--version", "9", "--listener", "http://127.0.0.1:9/", "--focus", "NOPE")
		Expect(old.Err).To(gbytes.Say(`--version has been deprecated, it names the listener's version: use --listener-version`))
	})

	It("says that no Docker engine answers, and how to start one, when --listener-image has none to run on", func() {
		requireCommand("docker")
		cmd := exec.Command(binary, "conform", "--listener-image", "ipnlab:test", "--listener", "/ipn/paypal", "--emulator-addr", "127.0.0.1:0")
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(GinkgoT().TempDir(), "no-engine.sock"))
		s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(s).WithTimeout(30 * time.Second).Should(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`no Docker engine answers \(.*\): start one \(dockerd, or systemctl start docker\), or run your listener yourself and give conform --listener`))
	})

	It("exits 2 when the harness cannot run, and still writes the reports asked for, saying why", func() {
		dir := GinkgoT().TempDir()
		bad := filepath.Join(dir, "bad.yaml")
		Expect(os.WriteFile(bad, []byte("listenr: http://127.0.0.1:1/ipn\n"), 0o644)).To(Succeed())
		for _, tc := range []struct {
			args []string
			why  string
		}{
			{[]string{"--listener", "http://127.0.0.1:1/ipn", "--emulator-addr", "127.0.0.1:0"}, "not reachable"},
			{nil, "listener is required"},
			{[]string{"--listener", "http://127.0.0.1:1/ipn", "--level", "business"}, "level business needs probe"},
			{[]string{"--config", bad}, `unknown field "listenr": want one of`},
			{[]string{"--listener", "http://127.0.0.1:1/ipn", "--listener-port", "9"}, "--listener-port needs --listener-image"},
		} {
			js, junit := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml")
			s := run(append([]string{"conform", "--report", js, "--junit", junit, "--api-token", "s3cret-token"}, tc.args...)...)
			Expect(s).To(gexec.Exit(2), tc.why)
			Expect(s.Err).To(gbytes.Say(regexp.QuoteMeta(tc.why)))
			var rep struct {
				Kind, Error string
				Config      map[string]any
			}
			raw, err := os.ReadFile(js)
			Expect(err).NotTo(HaveOccurred(), tc.why)
			Expect(json.Unmarshal(raw, &rep)).To(Succeed())
			Expect(rep.Kind).To(Equal("ConformanceReport"))
			Expect(rep.Error).To(ContainSubstring(tc.why))
			Expect(rep.Config).To(HaveKeyWithValue("api_token", "[redacted]"))
			suites, err := junitparser.IngestFile(junit)
			Expect(err).NotTo(HaveOccurred(), tc.why)
			Expect(suites).To(HaveLen(1))
			Expect(suites[0].Tests).To(HaveLen(1))
			Expect(suites[0].Tests[0].Status).To(Equal(junitparser.StatusError))
			Expect(suites[0].Tests[0].Error.Error()).To(ContainSubstring(tc.why))
			Expect(os.Remove(js)).To(Succeed())
			Expect(os.Remove(junit)).To(Succeed())
		}
	})

	It("runs one bundled scenario step by step, and lists them", func() {
		ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer ok.Close()
		s := run("run", "paypal-ack-genuine", "--listener", ok.URL, "--emulator-addr", "127.0.0.1:0")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`line 5: send paypal web_accept -> \S+ txn_id=\S+ Sent`))
		Expect(s.Out).To(gbytes.Say(`passed in`))
		Expect(run("run", "--list").Out).To(gbytes.Say("paypal-chargeback"))
		byCheck := run("run", "PP-ACK-GENUINE", "--listener", ok.URL, "--emulator-addr", "127.0.0.1:0")
		Expect(byCheck).To(gexec.Exit(0), "a check ID runs the scenario that judges it")
		Expect(byCheck.Out).To(gbytes.Say(`paypal-ack-genuine: `))
		bad := run("run", "no-such-scenario", "--listener", ok.URL)
		Expect(bad).To(gexec.Exit(2))
		Expect(bad.Err).To(gbytes.Say(`no bundled scenario "no-such-scenario"`))
	})
})

var _ = Describe("ipnlab load", func() {

	It("drives the reference listener and reports every message acked and VERIFIED", func() {
		emuAddr := freeAddr()
		lst, err := gexec.Start(exec.Command(binary, "listen", "--addr", "127.0.0.1:0", "--db", filepath.Join(GinkgoT().TempDir(), "l.db"),
			"--verify-url", "http://"+emuAddr+"/cgi-bin/webscr", "--log-level", "warn"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			lst.Signal(syscall.SIGTERM)
			Eventually(lst).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Eventually(lst.Out).WithTimeout(readyWait).Should(gbytes.Say(`ipnlab listener ready addr=(\S+)`))
		addr := regexp.MustCompile(`listener ready addr=(\S+)`).FindStringSubmatch(string(lst.Out.Contents()))[1]

		s := run("load", "--listener", "http://"+addr+"/ipn/paypal", "--emulator-addr", emuAddr, "--count", "300", "--concurrency", "8", "--kind", "web_accept,cart")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Err).To(gbytes.Say(`emulator at http://` + regexp.QuoteMeta(emuAddr) + `: postbacks to`))
		Expect(s.Err).To(gbytes.Say(`(?m)^done +[0-9.]+s  sent 300 `))
		Expect(s.Out).To(gbytes.Say(`answers +200: 300 \(100\.0%\)`))
		Expect(s.Out).To(gbytes.Say(`ack latency +p50 \S+  p90 \S+  p99 \S+  p99\.9 \S+  max \S+  \(300\)`))
		Expect(s.Out).To(gbytes.Say(`acked +300 of 300 messages \(100\.0%\), 300 on the first attempt`))
		Expect(s.Out).To(gbytes.Say(`postbacks +VERIFIED 300, INVALID 0, acked and never posted back 0`))
	})

	It("reports a listener answering 500 half the time as such, in JSON too", func() {
		var n atomic.Int64
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		DeferCleanup(flaky.Close)
		s := run("load", "--listener", flaky.URL, "--emulator-addr", "127.0.0.1:0", "--count", "40", "--concurrency", "4",
			"--no-retries", "--settle", "10ms", "--quiet", "--json")
		Expect(s).To(gexec.Exit(0))
		var rep struct {
			Sent    int            `json:"sent"`
			Answers map[string]int `json:"answers"`
			Acked   int            `json:"acked"`
			Waiting int            `json:"waiting"`
			Verify  struct {
				None int `json:"none"`
			} `json:"verification"`
		}
		Expect(json.Unmarshal(s.Out.Contents(), &rep)).To(Succeed())
		Expect(rep.Sent).To(Equal(40))
		Expect(rep.Answers).To(Equal(map[string]int{"200": 20, "500": 20}))
		Expect(rep.Acked).To(Equal(20))
		Expect(rep.Waiting).To(Equal(20))
		Expect(rep.Verify.None).To(Equal(20))
	})

	It("exits 2 with a precise message on bad flags and an unreachable listener", func() {
		s := run("load")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`the listener URL is required`))
		s = run("load", "--listener", "http://127.0.0.1:1/ipn", "--rate", "5", "--concurrency", "2")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--rate and --concurrency: give one`))
		s = run("load", "--listener", "http://127.0.0.1:1/ipn", "--provider", "stripe")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`provider "stripe": want paypal, paydo or paypalrest`))
		s = run("load", "--listener", "http://127.0.0.1:1/ipn", "--kind", "nope")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`paypal kind "nope": want one of`))
		s = run("load", "--listener", "http://"+freeAddr()+"/ipn", "--emulator-addr", "127.0.0.1:0", "--count", "1")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`does not accept connections: .*connection refused \(use --backlog to simulate an outage\)`))
		s = run("load", "--listener", "http://127.0.0.1:1/ipn", "--duration", "soon")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`invalid argument "soon" for "--duration"`))
	})
})
