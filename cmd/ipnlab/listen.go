package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipnlab/ipnlab/containers/undertest"
	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/paypalrest"
	"github.com/ipnlab/ipnlab/internal/httpserver"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
	"github.com/ipnlab/ipnlab/listener/mutants"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// listenFlags are the reference listener's settings on the command line;
// flags given override the config file.
type listenFlags struct {
	config, verifyURL, db, unknown string
	mutant, paydoToken             string
	receivers, customers, allow    []string
	trusted, currencies            []string
	deductFees                     bool
	verifyBackoff, verifyMax       time.Duration
	verifyAttempts                 int
	// getenv, when set, reads the IPNLAB_* variables that `conform
	// --listener-image` injects; they win over the config file.
	getenv func(string) string
}

func (lf *listenFlags) add(c *cobra.Command, prefix string) {
	f := c.Flags()
	f.StringVar(&lf.config, prefix+"config", "", "listener config file (YAML; see docs/probe.md)")
	f.StringVar(&lf.verifyURL, prefix+"verify-url", "", "where PayPal postbacks go (default: the emulator's)")
	f.StringVar(&lf.db, prefix+"db", "", "SQLite database path (default ipnlab-listener.db)")
	f.StringArrayVar(&lf.receivers, prefix+"receiver", nil, "the merchant's receiver email or id (repeatable)")
	f.StringArrayVar(&lf.customers, prefix+"customer", nil, "a customer: email=id (repeatable)")
	f.StringVar(&lf.unknown, prefix+"unknown-payers", "", "hold (no credit) or create (a customer per new payer email)")
	f.StringSliceVar(&lf.currencies, prefix+"currencies", nil, "accepted currencies (default USD,EUR,GBP,CAD,AUD)")
	f.BoolVar(&lf.deductFees, prefix+"deduct-fees", false, "credit gross minus fee")
	f.StringArrayVar(&lf.allow, prefix+"paydo-allow", nil, "IP or CIDR PayDo may post from (repeatable; default PayDo's two addresses)")
	f.StringArrayVar(&lf.trusted, prefix+"trusted-proxy", nil, "IP or CIDR allowed to set X-Forwarded-For (repeatable)")
	f.StringVar(&lf.paydoToken, prefix+"paydo-lookup-token", "", "the PayDo project's API token its status lookups send (env IPNLAB_PAYDO_TOKEN; default: the emulator's default project's)")
	f.DurationVar(&lf.verifyBackoff, prefix+"verify-backoff", 0, "first wait before retrying a failed postback, doubling (default 1s)")
	f.DurationVar(&lf.verifyMax, prefix+"verify-max-backoff", 0, "longest wait between postback retries (default 1m)")
	f.IntVar(&lf.verifyAttempts, prefix+"verify-attempts", 0, "postbacks tried before giving up (default 8)")
	f.StringVar(&lf.mutant, prefix+"mutant", "", "run as a deliberately broken listener (`list` names them; see docs/conformance.md)")
}

func (lf *listenFlags) build(c *cobra.Command, prefix string, log *slog.Logger) (listener.Config, error) {
	var cfg listener.Config
	if lf.config != "" {
		var err error
		if cfg, err = listener.Load(lf.config); err != nil {
			return cfg, usageError{err}
		}
	}
	if lf.getenv != nil {
		if v := lf.getenv(undertest.EnvVerifyURL); v != "" {
			cfg.VerifyURL = v
		}
		if v := lf.getenv(undertest.EnvPayDoToken); v != "" {
			cfg.PayDo.LookupToken = v
		}
		// PayDo's lookup is the emulator's, wherever PayPal postbacks go
		// (PayPal's own host under --intercept).
		if v := lf.getenv(undertest.EnvEmulatorURL); v != "" && cfg.PayDo.LookupURL == "" {
			cfg.PayDo.LookupURL = strings.TrimRight(v, "/") + "/paydo/v1/transactions/"
		}
		email, id := lf.getenv(undertest.EnvReceiverEmail), lf.getenv(undertest.EnvReceiverID)
		if email != "" || id != "" {
			cfg.ReceiverEmails, cfg.ReceiverIDs = nil, nil
		}
		if email != "" {
			cfg.ReceiverEmails = []string{email}
		}
		if id != "" {
			cfg.ReceiverIDs = []string{id}
		}
		if v := lf.getenv(undertest.EnvPayDoSource); v != "" {
			cfg.PayDo.AllowedSources = []string{v}
		}
		// PayPal REST webhooks: signed for this webhook id, with
		// certificates of this CA, fetched from the emulator.
		if v := lf.getenv(undertest.EnvWebhookID); v != "" {
			cfg.PayPalREST.WebhookID = v
			if u := lf.getenv(undertest.EnvEmulatorURL); u != "" {
				cfg.PayPalREST.APIURL = u
			}
			if ca := lf.getenv(undertest.EnvSigningCA); ca != "" {
				cfg.PayPalREST.CertRoots = ca
			}
		}
	}
	changed := func(name string) bool { return c.Flags().Changed(prefix + name) }
	if changed("verify-url") {
		cfg.VerifyURL = lf.verifyURL
	}
	if changed("db") {
		cfg.DB = lf.db
	}
	if len(lf.receivers) > 0 {
		cfg.ReceiverEmails, cfg.ReceiverIDs = nil, nil
	}
	for _, r := range lf.receivers {
		if strings.Contains(r, "@") {
			cfg.ReceiverEmails = append(cfg.ReceiverEmails, r)
		} else {
			cfg.ReceiverIDs = append(cfg.ReceiverIDs, r)
		}
	}
	for _, kv := range lf.customers {
		email, id, ok := strings.Cut(kv, "=")
		if !ok || email == "" || id == "" {
			return cfg, usageError{fmt.Errorf("--%scustomer %q: want email=id", prefix, kv)}
		}
		cfg.Customers = append(cfg.Customers, listener.Customer{ID: id, Email: email})
	}
	if changed("unknown-payers") {
		cfg.UnknownPayers = lf.unknown
	}
	if changed("currencies") {
		cfg.Currencies = lf.currencies
	}
	if changed("deduct-fees") {
		cfg.DeductFees = lf.deductFees
	}
	if changed("mutant") {
		cfg.Mutant = lf.mutant
	}
	for name, d := range map[string]*time.Duration{"verify-backoff": &lf.verifyBackoff, "verify-max-backoff": &lf.verifyMax} {
		if changed(name) && *d <= 0 {
			return cfg, usageError{fmt.Errorf("--%s%s %s: must be positive", prefix, name, *d)}
		}
	}
	if changed("verify-backoff") {
		cfg.Verify.Backoff = lf.verifyBackoff
	}
	if changed("verify-max-backoff") {
		cfg.Verify.MaxBackoff = lf.verifyMax
	}
	if changed("verify-attempts") {
		if lf.verifyAttempts < 1 {
			return cfg, usageError{fmt.Errorf("--%sverify-attempts %d: want 1 to 100", prefix, lf.verifyAttempts)}
		}
		cfg.Verify.Attempts = lf.verifyAttempts
	}
	if len(lf.allow) > 0 {
		cfg.PayDo.AllowedSources = lf.allow
	}
	cfg.PayDo.TrustedProxies = append(cfg.PayDo.TrustedProxies, lf.trusted...)
	if lf.paydoToken != "" {
		cfg.PayDo.LookupToken = lf.paydoToken
	}
	cfg.Logger = log
	return cfg, nil
}

// serveListener starts a reference listener on addr.
func serveListener(cfg listener.Config, addr string) (*listener.Listener, *http.Server, net.Listener, error) {
	// The address first: a taken port must not leave a database behind.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, nil, listenError("the listener", addr, err)
	}
	l, err := flawed.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, nil, usageError{err}
	}
	if err := l.Start(context.Background()); err != nil {
		ln.Close()
		l.Close()
		return nil, nil, nil, err
	}
	srv := httpserver.New(l.Handler())
	go func() { _ = srv.Serve(ln) }()
	return l, srv, ln, nil
}

func newListen() *cobra.Command {
	var (
		addr, debugAddr string
		logs            logFlags
		lf              listenFlags
	)
	c := &cobra.Command{
		Use:   "listen",
		Short: "Run the reference listener (PayPal at /ipn/paypal, PayDo at /ipn/paydo, probe at /probe/v1/)",
		Long: `Run the reference listener. On start it prints one line:
  ipnlab listener ready addr=HOST:PORT verify_url=URL
Settings: flags, then the variables ipnlab conform --listener-image sets
(IPNLAB_LISTEN_ADDR, IPNLAB_VERIFY_URL, IPNLAB_RECEIVER_EMAIL,
IPNLAB_RECEIVER_ID, IPNLAB_PAYDO_SOURCE), then --config.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lf.mutant == "list" {
				for _, m := range mutants.All() {
					fmt.Fprintln(cmd.OutOrStdout(), m.Name)
				}
				return nil
			}
			log, err := logs.logger()
			if err != nil {
				return err
			}
			stopDebug, err := debugServer(debugAddr, log)
			if err != nil {
				return err
			}
			defer stopDebug()
			lf.getenv = os.Getenv
			if v := os.Getenv(undertest.EnvListenAddr); v != "" && !cmd.Flags().Changed("addr") {
				addr = v
			}
			cfg, err := lf.build(cmd, "", log)
			if err != nil {
				return err
			}
			if cfg.VerifyURL == "" {
				cfg.VerifyURL = "http://127.0.0.1:8700/cgi-bin/webscr"
			}
			if len(cfg.ReceiverEmails) == 0 && len(cfg.ReceiverIDs) == 0 {
				cfg.ReceiverEmails, cfg.ReceiverIDs = []string{emulator.DefaultReceiverEmail}, []string{emulator.DefaultReceiverID}
			}
			l, srv, ln, err := serveListener(cfg, addr)
			if err != nil {
				return err
			}
			stopped := notifyStop() // before "ready"
			fmt.Fprintf(cmd.OutOrStdout(), "ipnlab listener ready addr=%s verify_url=%s\n", ln.Addr(), cfg.VerifyURL)
			<-stopped
			return shutdown(srv, l)
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8701", "address to listen on")
	logs.add(c.Flags())
	c.Flags().StringVar(&debugAddr, "debug-addr", "", debugAddrHelp)
	lf.add(c, "")
	return c
}

func shutdown(srv *http.Server, l *listener.Listener) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(ctx), l.Close())
}

func newLab() *cobra.Command {
	var (
		addr, listenerAddr, clockMode, verify, tokenFlag string
		storeSpec, debugAddr, metricsToken               string
		logs                                             logFlags
		seed                                             uint64
		tailLines                                        bool
		lf                                               listenFlags
		icpt                                             interceptFlags
	)
	c := &cobra.Command{
		Use:   "lab",
		Short: "Run the emulator and the reference listener, wired together (what `make run` starts)",
		Long: `Run the emulator on --emulator-addr and the reference listener on --listener-addr: the
emulator's IPN URL is the listener's /ipn/paypal, PayDo's default project and
user post to its /ipn/paydo, and the listener verifies against the emulator.
New payers become customers (--listener-unknown-payers hold to refuse them).
With --intercept, --listener-verify-url may be PayPal's own
(https://ipnpb.sandbox.paypal.com/cgi-bin/webscr): the listener reaches it
through the emulator's proxy, as with HTTPS_PROXY.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, clk, mode, err := emulatorBasics(logs, clockMode, verify)
			if err != nil {
				return err
			}
			stopDebug, err := debugServer(debugAddr, log)
			if err != nil {
				return err
			}
			defer stopDebug()
			cfg, err := lf.build(cmd, "listener-", log)
			if err != nil {
				return err
			}
			token := apiToken(tokenFlag)
			if err := checkExposure("emulator-addr", addr, token); err != nil {
				return err
			}
			if metricsToken, err = metricsTokenOf(metricsToken, token); err != nil {
				return err
			}
			ca, err := icpt.ca()
			if err != nil {
				return err
			}
			jnl, err := openStore(storeSpec)
			if err != nil {
				return err
			}
			// REST webhooks are signed with certificates of ipnlab's CA
			// (the one --intercept uses), which the listener trusts.
			signing := ca
			if signing == nil {
				if signing, err = loadCA(); err != nil {
					return err
				}
			}
			ecfg := emulator.Config{Clock: clk, PayPal: paypal.Settings{Verify: mode}, Seed: seed, Logger: log, Scenarios: catalog.Runner{Alias: conformance.ScenarioOf},
				APIToken: token, MetricsToken: metricsToken, Intercept: ca, Providers: providers(false, signing)}
			if jnl != nil {
				ecfg.Journal = jnl
				defer func() {
					if err := jnl.Close(); err != nil {
						log.Error("closing the store", "err", err)
					}
				}()
			}
			emu, err := emulator.Start(ecfg, addr)
			if errors.Is(err, syscall.EADDRINUSE) {
				return listenError("the emulator", addr, err)
			} else if err != nil {
				return err
			}
			if ca != nil {
				// What HTTPS_PROXY and the CA's variables do for a listener
				// in its own process.
				proxy, _ := url.Parse(emu.URL())
				cfg.Client = ca.Client(proxy)
			}
			stopEmu := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return emu.Shutdown(ctx)
			}
			if cfg.VerifyURL == "" {
				cfg.VerifyURL = emu.VerifyURL()
			}
			if len(cfg.ReceiverEmails) == 0 && len(cfg.ReceiverIDs) == 0 {
				cfg.ReceiverEmails, cfg.ReceiverIDs = []string{emulator.DefaultReceiverEmail}, []string{emulator.DefaultReceiverID}
			}
			if len(cfg.PayDo.AllowedSources) == 0 {
				cfg.PayDo.AllowedSources = []string{"127.0.0.1"}
			}
			if cfg.UnknownPayers == "" {
				cfg.UnknownPayers = "create"
			}
			if cfg.DB == "" {
				cfg.DB = "ipnlab-lab.db"
			}
			if cfg.PayPalREST.WebhookID == "" {
				cfg.PayPalREST = listener.PayPalRESTConfig{WebhookID: LabWebhookID, Verify: cfg.PayPalREST.Verify, APIURL: emu.URL(), CertRoots: signing.CertPath(),
					ClientID: paypalrest.DefaultClientID, Secret: paypalrest.DefaultSecret}
			}
			l, srv, ln, err := serveListener(cfg, listenerAddr)
			if err != nil {
				return errors.Join(err, stopEmu())
			}
			base := "http://" + ln.Addr().String()
			if err := errors.Join(
				emu.PayPal().SetProfile(paypal.Profile{NotifyURL: base + "/ipn/paypal", Enabled: true,
					ReceiverEmail: emulator.DefaultReceiverEmail, ReceiverID: emulator.DefaultReceiverID}),
				emu.PayDo().RegisterCheckoutURL("default", base+"/ipn/paydo"),
				emu.PayDo().RegisterTransferURL("default", base+"/ipn/paydo"),
				subscribeLab(emu.Emulator, cfg.PayPalREST.WebhookID, base+listener.PayPalRESTPath)); err != nil {
				return errors.Join(err, stopEmu(), shutdown(srv, l))
			}
			emu.SetScenarioTarget(emulator.ScenarioTarget{Endpoints: map[string]string{paypal.Provider: base + "/ipn/paypal", paydo.Provider: base + "/ipn/paydo",
				paypalrest.Provider: base + listener.PayPalRESTPath}, ProbeURL: base})
			out := cmd.OutOrStdout()
			stopped := notifyStop() // before "ready"
			fmt.Fprintf(out, "ipnlab emulator ready addr=%s clock=%s verify=%s seed=%d\n", emu.Addr(), clk.Mode(), mode, emu.Seed())
			fmt.Fprintf(out, "ipnlab listener ready addr=%s verify_url=%s\n", ln.Addr(), cfg.VerifyURL)
			fmt.Fprintf(out, "console: %s/ (IPN History, Simulator, clock)\n", emu.URL())
			fmt.Fprintf(out, "try:  ./bin/ipnlab send paypal --emulator %s --kind web_accept --wait\n      curl %s/probe/v1/log\n", emu.URL(), base)
			if tailLines {
				defer startTail(cmd, emu.Events())()
			}
			<-stopped
			return errors.Join(stopEmu(), shutdown(srv, l))
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "emulator-addr", "127.0.0.1:8700", "the emulator's address")
	f.StringVar(&listenerAddr, "listener-addr", "127.0.0.1:8701", "the reference listener's address")
	f.StringVar(&clockMode, "clock", "real", "clock: real, manual or scale:N")
	f.StringVar(&verify, "verify", "paypal", "verifier mode: paypal or strict")
	f.Uint64Var(&seed, "seed", 0, "seed for generated messages (0: drawn and printed)")
	logs.add(f)
	f.StringVar(&debugAddr, "debug-addr", "", debugAddrHelp)
	f.StringVar(&tokenFlag, "api-token", "", apiTokenHelp)
	f.StringVar(&metricsToken, "metrics-token", "", metricsTokenHelp)
	f.BoolVar(&tailLines, "tail", false, "print one line per message, attempt, postback and verdict (as ipnlab tail)")
	f.StringVar(&storeSpec, "store", "memory", "where the emulator keeps History and the retry queue: memory, sqlite:PATH or postgres://... (keep it with --listener-db to resume both)")
	lf.add(c, "listener-")
	icpt.add(f, false)
	renamed(f, "addr", "emulator-addr")
	return c
}

// LabWebhookID is the webhook the lab subscribes its listener's REST
// endpoint under, and the listener verifies with.
const LabWebhookID = "WH-IPNLAB-LAB"

// subscribeLab subscribes the lab's listener to every REST event type.
func subscribeLab(emu *emulator.Emulator, id, url string) error {
	p, ok := emu.Provider(paypalrest.Provider)
	if !ok {
		return nil
	}
	_, err := p.(*paypalrest.Plugin).Subscribe(paypalrest.Webhook{ID: id, URL: url})
	return err
}

// listenError says why what could not listen on addr, and what to do
// when the port is taken.
func listenError(what, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s cannot listen on %s: the port is taken (another ipnlab still running?): stop it, or choose another address", what, addr)
	}
	return fmt.Errorf("%s cannot listen on %s: %w", what, addr, err)
}
