package conformance_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// What the first screen says when a listener does not reach the
// emulator under --intercept, and what the wire shows of an answer it
// should not have trusted.
var _ = Describe("A listener that does not reach the emulator under --intercept", func() {
	// run runs focus against the reference listener posting back to
	// PayPal's sandbox host with client, under --intercept.
	run := func(focus string, client func(proxy *url.URL, ca *intercept.CA) *http.Client) (conformance.Report, *intercept.CA, string) {
		ca := specCA()
		ln := freeListener()
		proxy, err := url.Parse("http://" + ln.Addr().String())
		Expect(err).NotTo(HaveOccurred())
		ref := referenceListenerWith(ln, "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr", client(proxy, ca))
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Intercept, cfg.Focus = ln, ref.URL+"/ipn/paypal", true, focus
		cfg.AckTimeout, cfg.PostbackWait = 2*time.Second, time.Second
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		return rep, ca, proxy.String()
	}

	It("is told, when its HTTP client ignores the proxy variables, that no connection reached the proxy, and where the fix is", func() {
		rep, ca, proxy := run("PP-POSTBACK-SENT", func(*url.URL, *intercept.CA) *http.Client {
			// It dials PayPal directly, as a client that ignores
			// HTTPS_PROXY does; this machine reaches nothing but loopback.
			return &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: func(context.Context, string, string) (net.Conn, error) {
				return nil, errors.New("network unreachable")
			}}}
		})
		Expect(rep.Intercept).To(Equal(&scenarios.Intercept{ProxyURL: proxy, CA: ca.CertPath()}))
		res := byID(rep)["PP-POSTBACK-SENT"]
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.Message).To(ContainSubstring("was never posted back to the verifier within 1s: no connection reached ipnlab's proxy (" + proxy + ") since it was delivered: the listener's HTTP client ignores its proxy variables"))
		Expect(res.Message).To(ContainSubstring("`ipnlab ca env`"))
		Expect(rep.Notices).To(ConsistOf(ContainSubstring("no connection reached ipnlab's proxy (" + proxy + ") during the run")))
		Expect(rep.Notices[0]).NotTo(ContainSubstring("verify URL"), "under --intercept the listener needs none")
		Expect(rep.Notices[0]).NotTo(ContainSubstring("--live"))
	})

	It("is told, when it does not trust the CA, that TLS failed, with the client's alert and the CA to trust", func() {
		rep, ca, _ := run("PP-POSTBACK-SENT", func(proxy *url.URL, _ *intercept.CA) *http.Client {
			return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
		})
		res := byID(rep)["PP-POSTBACK-SENT"]
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.Message).To(ContainSubstring("connection(s) to ipnpb.sandbox.paypal.com:443 reached ipnlab's proxy since it was delivered, but TLS failed (the client refused the certificate: tls: bad certificate): " +
			"the listener's HTTP client does not trust ipnlab's CA (" + ca.CertPath() + ")"))
		Expect(rep.Notices).To(ConsistOf(ContainSubstring("TLS failed")))
	})

	It("passes with the proxy and the CA, and the report names both at the top", func() {
		rep, ca, proxy := run("PP-POSTBACK-SENT", func(proxy *url.URL, ca *intercept.CA) *http.Client { return ca.Client(proxy) })
		Expect(byID(rep)["PP-POSTBACK-SENT"].Status).To(Equal(scenarios.Passed))
		Expect(rep.Notices).To(BeEmpty())
		var console strings.Builder
		rep.WriteConsole(&console)
		Expect(console.String()).To(ContainSubstring("intercepting PayPal's verify hosts: the listener needs HTTPS_PROXY=" + proxy + " and to trust " + ca.CertPath()))
	})
})

var _ = Describe("A listener whose client reads no proxy variable, on the route without a proxy (--tls-addr)", func() {
	// direct is a client that goes straight to PayPal's hosts, which its
	// machine maps onto the verifier at addr (as /etc/hosts or
	// --add-host, with port 443, do), trusting roots. The spec serves the
	// verifier on a port of its own: port 443 is the stacks spec's.
	direct := func(addr string, roots *x509.CertPool) *http.Client {
		return &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, hostPort string) (net.Conn, error) {
				host, _, _ := net.SplitHostPort(hostPort)
				if !slices.Contains(intercept.Hosts, host) {
					return nil, errors.New("only PayPal's hosts resolve here")
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
	}
	run := func(client func(addr string, ca *intercept.CA) *http.Client) (conformance.Report, *intercept.CA, string) {
		ca := specCA()
		tlsAddr := freeListener()
		addr := tlsAddr.Addr().String()
		Expect(tlsAddr.Close()).To(Succeed())
		ln := freeListener()
		ref := referenceListenerWith(ln, "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr", client(addr, ca))
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.TLSAddr = ln, ref.URL+"/ipn/paypal", addr
		cfg.Focus, cfg.AckTimeout, cfg.PostbackWait = "PP-POSTBACK-SENT,PP-VERIFY-ENDPOINT,PP-VERIFY-ASCII", 2*time.Second, time.Second
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		return rep, ca, "https://" + addr + "/cgi-bin/webscr"
	}

	It("is verified with the CA alone, and its host is judged", func() {
		rep, ca, tlsURL := run(func(addr string, ca *intercept.CA) *http.Client { return direct(addr, ca.Pool()) })
		for _, id := range []string{"PP-POSTBACK-SENT", "PP-VERIFY-ENDPOINT", "PP-VERIFY-ASCII"} {
			Expect(byID(rep)[id].Status).To(Equal(scenarios.Passed), id)
		}
		Expect(rep.Intercept).To(Equal(&scenarios.Intercept{CA: ca.CertPath(), TLSURL: tlsURL}))
		var console strings.Builder
		rep.WriteConsole(&console)
		Expect(console.String()).To(ContainSubstring("serving PayPal's verify hosts over TLS at " + tlsURL))
		Expect(console.String()).NotTo(ContainSubstring("HTTPS_PROXY"), "no proxy on this route")
	})

	It("is told, when it does not trust the CA, to map the hosts and trust it", func() {
		rep, ca, tlsURL := run(func(addr string, _ *intercept.CA) *http.Client { return direct(addr, x509.NewCertPool()) })
		Expect(byID(rep)["PP-POSTBACK-SENT"].Status).To(Equal(scenarios.Failed))
		Expect(rep.Notices).To(ConsistOf(MatchRegexp(`^your listener acknowledged \d+ PayPal messages but posted none of them back to ` + regexp.QuoteMeta(tlsURL) + `: ` +
			`check that its machine maps PayPal's verify hosts to that address \(port 443\) and that it trusts ` + regexp.QuoteMeta(ca.CertPath()) + `$`)))
	})
})

var _ = Describe("A listener that trusts VERIFIED answered with HTTP 500", func() {
	It("is told it may have acted on that answer, which the wire cannot tell from giving up, and that a probe would show it", func() {
		var trusting stub
		for _, s := range buggy {
			if s.name == "trusts VERIFIED with HTTP 500" {
				trusting = s
			}
		}
		Expect(trusting.name).NotTo(BeEmpty())
		ln := freeListenerErr()
		srv := trusting.serve("http://" + ln.Addr().String() + "/cgi-bin/webscr")
		defer srv.Close()
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Focus = ln, srv.URL, "PP-OUTAGE-500-VERIFIED"
		cfg.AckTimeout, cfg.PostbackWait = time.Second, time.Second
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		res := byID(rep)["PP-OUTAGE-500-VERIFIED"]
		Expect(res.Status).To(Equal(scenarios.Failed))
		Expect(res.Message).To(ContainSubstring("you never asked the verifier again: you may have acted on that answer as if verified (its body says VERIFIED, its status 500 says it is no answer), or dropped the message; " +
			"the wire cannot tell which: a probe (--probe) shows whether you credited it"))
	})
})
