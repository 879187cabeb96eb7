package conformance_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/internal/webhooktest"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
	"github.com/ipnlab/ipnlab/suites/conformance/webhookchecks"
)

// referenceListener starts the reference listener verifying against the
// emulator that will listen on ln.
func referenceListener(ln net.Listener) *httptest.Server {
	return referenceListenerWith(ln, "http://"+ln.Addr().String()+"/cgi-bin/webscr", nil)
}

// referenceSession is a business-level session against a reference
// listener of its own, closed when the spec ends.
func referenceSession() *conformance.Session {
	ln := freeListener()
	ref := referenceListener(ln)
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.Probe = ln, ref.URL+"/ipn/paypal", ref.URL
	s, err := conformance.NewSession(context.Background(), cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(s.Close)
	return s
}

// referenceListenerDB starts it and says where its database is.
func referenceListenerDB(ln net.Listener) (*httptest.Server, string) {
	db := filepath.Join(GinkgoT().TempDir(), "ref.db")
	return referenceListenerAt(ln, "http://"+ln.Addr().String()+"/cgi-bin/webscr", nil, db), db
}

// referenceListenerWith starts it posting back to verifyURL with client
// (nil: its own).
func referenceListenerWith(ln net.Listener, verifyURL string, client *http.Client) *httptest.Server {
	return referenceListenerAt(ln, verifyURL, client, filepath.Join(GinkgoT().TempDir(), "ref.db"))
}

func referenceListenerAt(ln net.Listener, verifyURL string, client *http.Client, db string) *httptest.Server {
	// Its PayPal REST API is the emulator's address, or, with a client
	// through the emulator's proxy, PayPal's own host.
	api := "http://" + ln.Addr().String()
	if client != nil {
		api = "https://api-m.sandbox.paypal.com"
	}
	l, err := listener.New(listener.Config{
		PayPalREST: listener.PayPalRESTConfig{WebhookID: labWebhookID, APIURL: api, CertRoots: labCA().CertPath()},
		VerifyURL:  verifyURL, Client: client,
		ReceiverEmails: []string{"merchant@example.com"}, ReceiverIDs: []string{"LABMERCHANT01"},
		Customers: []listener.Customer{{ID: "C1", Email: "customer@example.com"}},
		DB:        db,
		Verify:    listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Attempts: 20, Timeout: 10 * time.Second},
		PayDo:     listener.PayDoConfig{AllowedSources: []string{"127.0.0.1"}, LookupURL: "http://" + ln.Addr().String() + "/paydo/v1/transactions/"},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(l.Start(context.Background())).To(Succeed())
	srv := httptest.NewServer(l.Handler())
	DeferCleanup(func() { srv.Close(); l.Close() })
	return srv
}

// specCA is a CA of the spec's own, where the session looks for one
// (IPNLAB_CA_DIR) under --intercept or --tls-addr.
func specCA() *intercept.CA {
	dir := filepath.Join(GinkgoT().TempDir(), "ca")
	GinkgoT().Setenv(intercept.EnvDir, dir)
	ca, err := intercept.LoadOrCreate(dir)
	Expect(err).NotTo(HaveOccurred())
	return ca
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func serve(l *listener.Listener) *httptest.Server { return httptest.NewServer(l.Handler()) }

func freeListenerErr() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return ln
}

func freeListener() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	return ln
}

func byID(rep conformance.Report) map[string]conformance.Result {
	out := map[string]conformance.Result{}
	for _, r := range rep.Checks {
		out[r.ID] = r
	}
	return out
}

var _ = Describe("The conformance suite", func() {
	It("passes the reference listener on every check, protocol and business, PayPal and PayDo, posting back to PayPal's sandbox host (the order checks, for order shops, skipped saying why)", func() {
		// It posts back to https://ipnpb.sandbox.paypal.com through the
		// emulator's proxy, as HTTPS_PROXY and ipnlab's CA make it do.
		ca := specCA()
		ln := freeListener()
		proxy, err := url.Parse("http://" + ln.Addr().String())
		Expect(err).NotTo(HaveOccurred())
		ref := referenceListenerWith(ln, "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr", ca.Client(proxy))
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener, cfg.Probe = ln, ref.URL+"/ipn/paypal", ref.URL+"/ipn/paydo", ref.URL
		cfg.Intercept = true
		cfg.AckTimeout, cfg.Name = 2*time.Second, "reference listener"
		Expect(webhookchecks.Configure(&cfg, ref.URL+listener.PayPalRESTPath, labWebhookID, labCA())).To(Succeed())
		rep, err := conformance.RunAll(context.Background(), cfg, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		for _, r := range rep.Checks {
			if r.Check.HasLabel("orders") {
				// A prepaid-credit listener keeps no orders: these need
				// an order shop and its order source.
				Expect(r.Status).To(Equal(scenarios.Skipped), r.ID)
				Expect(r.Message).To(ContainSubstring("needs an order source (--orders)"), r.ID)
				continue
			}
			Expect(r.Status).To(Equal(scenarios.Passed), "%s: %s\n%s", r.ID, r.Message, strings.Join(r.Evidence, "\n"))
		}
		Expect(rep.Checks).To(HaveLen(len(conformance.Checks())))
		Expect(rep.Conformant()).To(BeTrue())
		Expect(rep.Seconds).To(BeNumerically("<", 40))
		// A listener that acks needs no resends; the outage checks move
		// the clock two minutes for PayPal's resends.
		Expect(rep.SimulatedSeconds).To(BeNumerically(">=", 120))
		GinkgoWriter.Printf("reference listener: %d checks in %.1fs, %.1f days simulated\n", len(rep.Checks), rep.Seconds, rep.SimulatedSeconds/86400)
	})

	It("fails a listener that answers 200 and does nothing else, with evidence, at protocol level without a probe", func() {
		ln := freeListener()
		idle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		DeferCleanup(idle.Close)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.PayDoListener = ln, idle.URL, idle.URL
		cfg.LabelFilter, cfg.PostbackWait = "!slow", time.Second
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Level).To(Equal(conformance.Protocol))
		Expect(rep.Conformant()).To(BeFalse())
		res := byID(rep)
		Expect(res["PP-ACK-GENUINE"].Status).To(Equal(scenarios.Passed))
		Expect(res["PD-ACK"].Status).To(Equal(scenarios.Passed))
		Expect(res["PP-POSTBACK-SENT"].Status).To(Equal(scenarios.Failed))
		Expect(res["PP-POSTBACK-SENT"].Message).To(ContainSubstring("never posted back"))
		Expect(rep.Notices).To(ConsistOf(ContainSubstring("but posted none of them back to http://" + ln.Addr().String() + "/cgi-bin/webscr")))
		for _, id := range []string{"PP-POSTBACK-SENT", "PP-VERIFY-WINDOWS-1252", "PP-VERIFY-CRLF", "PP-POSTBACK-USER-AGENT"} {
			if id != "PP-POSTBACK-SENT" {
				// One bug, one verdict: the others could not be judged.
				Expect(res[id].Status).To(Equal(scenarios.Blocked), id)
				Expect(res[id].BlockedBy).To(Equal([]string{"PP-POSTBACK-SENT"}), id)
				Expect(res[id].Message).To(ContainSubstring("never posted back"), id)
			}
			Expect(res[id].Evidence).To(ContainElement(MatchRegexp(`delivery 1 \(initial\) at .*: you answered HTTP 200`)), id)
			Expect(res[id].Replay).To(Equal(fmt.Sprintf("ipnlab conform --focus %s --seed %d --listener %s --paydo-listener %s --postback-wait 1s", id, rep.Seed, idle.URL, idle.URL)))
		}
		Expect(res["PP-CREDIT-ONCE"].Status).To(Equal(scenarios.Skipped))
		Expect(res["PP-CREDIT-ONCE"].Message).To(ContainSubstring("needs the listener's probe"))
		Expect(res["PP-ACK-SLOW-VERIFIER"].Status).To(Equal(scenarios.Disabled))
	})

	It("refuses to run without a reachable listener: a harness error, not a verdict", func() {
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener = freeListener(), "http://127.0.0.1:1/ipn"
		_, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).To(MatchError(conformance.ErrHarness))
		Expect(err.Error()).To(ContainSubstring("not reachable"))
	})

	It("keeps docs/conformance.md's catalog current", func() {
		doc, err := os.ReadFile("../../docs/conformance.md")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(doc)).To(ContainSubstring(conformance.Catalog()), "regenerate with: ipnlab conform --catalog")
	})

	It("keeps docs/scenarios.md's format reference current, and its worked example passes against the reference listener", func() {
		doc, err := os.ReadFile("../../docs/scenarios.md")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(doc)).To(ContainSubstring(scenarios.Reference()), "regenerate with: ipnlab run --reference")

		sc, err := scenarios.Parse("worked example", []byte(scenarios.WorkedExample))
		Expect(err).NotTo(HaveOccurred())
		s := referenceSession()
		res := s.RunScenario(context.Background(), sc, 0, GinkgoWriter)
		Expect(res.Status).To(Equal(scenarios.Passed), "%s\n%s", res.Message, strings.Join(res.Evidence, "\n"))
	})

	It("judges a customer's balances by how far they moved since the scenario started", func() {
		s := referenceSession()
		run := func(want string) scenarios.Result {
			sc, err := scenarios.Parse("balances", []byte("name: balances\nprovider: paypal\nsteps:\n"+
				"  - send: {as: pay, kind: web_accept, params: {gross: \"10.00\", currency: USD}, set: {payer_email: customer@example.com}}\n"+
				"  - expect: {txn: \"${pay.txn_id}\", effects: 1}\n"+
				"  - expect: {customer: C1, balance_change: "+want+"}\n"))
			Expect(err).NotTo(HaveOccurred())
			return s.RunScenario(context.Background(), sc, 0, GinkgoWriter)
		}
		Expect(run(`{USD: "10.00"}`).Status).To(Equal(scenarios.Passed), "the second run starts from the first's balance")
		Expect(run(`{USD: "10.00"}`).Status).To(Equal(scenarios.Passed))
		res := run(`{USD: "0.00"}`)
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.Message).To(Equal("customer C1's USD balance moved by 10.00, want 0.00"))
		Expect(res.Evidence).To(ContainElement("customer C1's USD balance: 20.00 when the scenario started, 30.00 now"))
		res = run(`{EUR: "10.00"}`)
		Expect(res.Status).To(Equal(scenarios.Failed), "a currency not named must not move")
		Expect(res.Message).To(Equal("customer C1's EUR balance moved by 0.00, want 10.00"))
	})

	It("checks every registered check's scenario exists and names a MUST or SHOULD", func() {
		for _, c := range conformance.Checks() {
			Expect(c.Requirement).To(MatchRegexp(` (MUST|SHOULD) `), c.ID)
			_, ok := conformance.Lookup(c.ID)
			Expect(ok).To(BeTrue())
		}
	})
})

var _ = Describe("A team's own check", func() {
	It("is judged with the bundled ones once registered, in a strict order for any provider, and refused when it is not a check", func() {
		steps, err := scenarios.Parse("acme-cart.yaml", []byte("name: acme-cart-acked\ndescription: a cart is acknowledged\nprovider: paypal\nsteps:\n"+
			"  - send: {as: cart, kind: cart}\n  - expect: {message: cart, acked: true, ack_status: 200}\n"))
		Expect(err).NotTo(HaveOccurred())
		check := conformance.Check{ID: "ACME-CART-ACKED", Requirement: "Our listener MUST answer 200 to a cart.", Level: conformance.Protocol,
			Provider: "acme", Labels: []string{"ack"}, Scenario: steps.Name, Steps: steps}
		unregister, err := conformance.Register(check)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(unregister)

		_, err = conformance.Register(check)
		Expect(err).To(MatchError(conformance.ErrDuplicateCheck))
		for _, bad := range []conformance.Check{
			{ID: "ACME-X", Requirement: "It answers.", Level: conformance.Protocol, Provider: "acme", Scenario: "paypal-ack-genuine"},
			{ID: "ACME-X", Requirement: "It MUST answer.", Level: "strict", Provider: "acme", Scenario: "paypal-ack-genuine"},
			{ID: "ACME-X", Requirement: "It MUST answer.", Level: conformance.Protocol, Scenario: "paypal-ack-genuine"},
			{ID: "ACME-X", Requirement: "It MUST answer.", Level: conformance.Protocol, Provider: "acme", Scenario: "no-such-scenario"},
			{ID: "ACME X", Requirement: "It MUST answer.", Level: conformance.Protocol, Provider: "acme", Scenario: "paypal-ack-genuine"},
		} {
			_, err := conformance.Register(bad)
			Expect(err).To(MatchError(conformance.ErrInvalidCheck), "%+v", bad)
		}

		// After every bundled protocol check, before the business ones.
		ids := func() []string {
			var out []string
			for _, c := range conformance.Checks() {
				out = append(out, string(c.Level)+" "+c.ID)
			}
			return out
		}
		order := ids()
		at := slices.Index(order, "protocol ACME-CART-ACKED")
		Expect(at).To(BeNumerically(">", 0))
		Expect(order[at-1]).To(HavePrefix("protocol PW-"), "after the providers registered before it")
		Expect(order[at+1]).To(HavePrefix("business PP-"))
		Expect(ids()).To(Equal(order), "the same order every time")

		ln := freeListener()
		ref := referenceListener(ln)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Focus = ln, ref.URL+"/ipn/paypal", "ACME-"
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(byID(rep)["ACME-CART-ACKED"].Status).To(Equal(scenarios.Passed))
		Expect(rep.Summary.Passed).To(Equal(1))

		refuses := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
		DeferCleanup(refuses.Close)
		cfg.EmulatorListener, cfg.Listener = freeListener(), refuses.URL
		rep, err = conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(byID(rep)["ACME-CART-ACKED"].Status).To(Equal(scenarios.Failed))
		Expect(rep.Conformant()).To(BeFalse())
	})

	It("may be of a plug-in provider: sent by the session's emulator to the listener's endpoint for it, and disabled, saying why, without one", func() {
		steps, err := scenarios.ParseFor("bell.yaml", []byte("name: bell-acked\nprovider: bell\nsteps:\n"+
			"  - send: {as: ring, kind: bell.rang, set: {room: \"12\"}}\n  - expect: {message: ring, acked: true, ack_status: 200}\n"), []string{"bell"})
		Expect(err).NotTo(HaveOccurred())
		unregister, err := conformance.Register(conformance.Check{ID: "BELL-ACKED", Requirement: "A listener MUST answer 200 to a bell.",
			Level: conformance.Protocol, Provider: "bell", Scenario: steps.Name, Steps: steps})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(unregister)
		bells := webhooktest.NewInbox()
		DeferCleanup(bells.Close)

		run := func(listeners map[string]string) (conformance.Result, error) {
			bell := webhooktest.New("bell")
			cfg := conformance.Defaults()
			cfg.EmulatorListener, cfg.Listener, cfg.Focus = freeListener(), bells.URL, "BELL-"
			cfg.Providers, cfg.Listeners = []emulator.Factory{bell.Factory}, listeners
			rep, err := conformance.RunAll(context.Background(), cfg, nil)
			return byID(rep)["BELL-ACKED"], err
		}
		res, err := run(map[string]string{"bell": bells.URL + "/bell"})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Status).To(Equal(scenarios.Passed))
		Expect(bells.Bodies()).To(ConsistOf(ContainSubstring(`"room":"12"`)))
		// Alone and disabled, nothing ran: the run says why.
		_, err = run(nil)
		Expect(err).To(MatchError(ContainSubstring(`1 check(s): no bell listener given (Config.Listeners["bell"])`)))

		cfg := conformance.Defaults()
		cfg.Listener, cfg.Listeners = bells.URL, map[string]string{"paydo": bells.URL, "bell": "nowhere"}
		Expect(cfg.Validate()).To(MatchError(And(ContainSubstring(`listeners["paydo"]: give paydo's endpoint as paydo-listener`),
			ContainSubstring(`listeners["bell"] "nowhere": want an absolute http(s) URL`))))
	})
})

var _ = Describe("Config", func() {
	It("reads a YAML file, then IPNLAB_* variables over it, and validates", func() {
		path := filepath.Join(GinkgoT().TempDir(), "c.yaml")
		Expect(os.WriteFile(path, []byte("listener: http://127.0.0.1:9/ipn\nack_timeout: 5s\nlevel: protocol\n"), 0o600)).To(Succeed())
		cfg := conformance.Defaults()
		Expect(cfg.LoadFile(path)).To(Succeed())
		env := map[string]string{"IPNLAB_ACK_TIMEOUT": "7s", "IPNLAB_PAYER_EMAIL": "x@example.com"}
		Expect(cfg.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })).To(Succeed())
		Expect(cfg.AckTimeout).To(Equal(7 * time.Second))
		Expect(cfg.PayerEmail).To(Equal("x@example.com"))
		Expect(cfg.Validate()).To(Succeed())
	})

	It("names every problem", func() {
		cfg := conformance.Defaults()
		cfg.Listener, cfg.Level, cfg.StrangerSource = "nowhere", "deep", "somewhere"
		err := cfg.Validate()
		Expect(err).To(MatchError(ContainSubstring(`listener "nowhere": want an absolute http(s) URL`)))
		Expect(err).To(MatchError(ContainSubstring(`level "deep": want protocol or business`)))
		Expect(err).To(MatchError(ContainSubstring(`"somewhere": not an IP address`)))
		path := filepath.Join(GinkgoT().TempDir(), "c.yaml")
		Expect(os.WriteFile(path, []byte("listner: x\n"), 0o600)).To(Succeed())
		Expect(cfg.LoadFile(path)).To(MatchError(ContainSubstring(`line 1: unknown field "listner": want one of ack_timeout, api_token`)))
	})

	It("refuses a focus or label filter that selects no check, naming the checks and labels there are (a typo made a green run of nothing)", func() {
		for _, set := range []func(*conformance.Config){
			func(c *conformance.Config) { c.Focus = "NOPE" },
			func(c *conformance.Config) { c.LabelFilter = "paypall" },
			func(c *conformance.Config) { c.LabelFilter, c.Focus = "paydo", "PP-" },
		} {
			cfg := conformance.Defaults()
			cfg.Listener = "http://127.0.0.1:9/ipn"
			set(&cfg)
			err := cfg.Validate()
			Expect(err).To(MatchError(ContainSubstring("no check matches focus")))
			Expect(err).To(MatchError(ContainSubstring("PP-VERIFY-UTF-8")))
			Expect(err).To(MatchError(ContainSubstring("the labels are")))
		}
		cfg := conformance.Defaults()
		cfg.Listener, cfg.Focus = "http://127.0.0.1:9/ipn", "PP-VERIFY-UTF-8"
		Expect(cfg.Validate()).To(Succeed())
	})

	It("calls a run whose every check was skipped no pass: a harness error, with the report and the reasons", func() {
		ack := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer ack.Close()
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.LabelFilter = freeListener(), ack.URL+"/ipn", "paydo" // and no PayDo listener
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).To(MatchError(conformance.ErrNothingRan))
		Expect(err).To(MatchError(conformance.ErrHarness))
		Expect(err.Error()).To(MatchRegexp(`\d+ check\(s\): `))
		Expect(rep.Checks).NotTo(BeEmpty())
		Expect(rep.Summary.Passed + rep.Summary.Failed).To(BeZero())
	})

	It("takes the defaults for the zero fields of a Go caller's Config, and keeps what is set", func() {
		cfg := conformance.Config{Listener: "http://127.0.0.1:9/ipn", Parallel: 2}.WithDefaults()
		Expect(cfg.Validate()).To(Succeed())
		Expect(cfg.Parallel).To(Equal(2))
		Expect(cfg.AckTimeout).To(Equal(conformance.Defaults().AckTimeout))
		Expect(cfg.PayDoSource).To(Equal(conformance.Defaults().PayDoSource))
	})

	It("chooses how many checks run at once unless told: more through a SQL probe, whose checks mostly wait", func() {
		cfg := conformance.Config{Listener: "http://127.0.0.1:9/ipn"}.WithDefaults()
		Expect(cfg.ChecksAtOnce()).To(Equal(4))
		cfg.Probe, cfg.ProbeMap = "sql:sqlite:shop.db", "map.yaml"
		Expect(cfg.ChecksAtOnce()).To(Equal(8))
		cfg.Parallel = 3
		Expect(cfg.ChecksAtOnce()).To(Equal(3), "what the user says wins")
		cfg.Parallel = -1
		Expect(cfg.Validate()).To(MatchError(ContainSubstring("parallel -1: want 1 to 64, or 0 to choose")))
	})

	It("selects checks by labels and focus", func() {
		cfg := conformance.Defaults()
		c, _ := conformance.Lookup("PP-ACK-SLOW-VERIFIER")
		cfg.LabelFilter = "paypal,!slow"
		Expect(cfg.Selected(c)).To(BeFalse())
		cfg.LabelFilter, cfg.Focus = "", "SLOW"
		Expect(cfg.Selected(c)).To(BeTrue())
	})
})
