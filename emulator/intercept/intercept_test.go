package intercept_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

const sandboxVerify = "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr"

// capture is a listener that keeps the IPNs it gets and acks them.
type capture struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.mu.Unlock()
}

func (c *capture) last() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bodies) == 0 {
		return nil
	}
	return c.bodies[len(c.bodies)-1]
}

// lab is an intercepting emulator and a listener it delivers to.
type lab struct {
	ca   *intercept.CA
	emu  *emulator.Server
	recv *capture
	lst  *httptest.Server
}

func newLab(mode paypal.Mode) *lab {
	ca, err := intercept.LoadOrCreate(filepath.Join(GinkgoT().TempDir(), "ca"))
	Expect(err).NotTo(HaveOccurred())
	emu, err := emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), PayPal: paypal.Settings{Verify: mode},
		Intercept: ca, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	l := &lab{ca: ca, emu: emu, recv: &capture{}}
	l.lst = httptest.NewServer(l.recv)
	DeferCleanup(func() {
		l.lst.Close()
		shutdown(emu)
	})
	return l
}

// ipn sends a message (sandbox unless live) and returns the postback a
// correct listener makes of it.
func (l *lab) ipn(live bool) (id string, postback []byte) {
	req := emulator.SendRequest{NotifyURL: l.lst.URL, Kind: "web_accept"}
	if live {
		req.Unset = []string{"test_ipn"}
	}
	v, err := l.emu.SendPayPal(req)
	Expect(err).NotTo(HaveOccurred())
	Eventually(l.recv.last).WithTimeout(5 * time.Second).ShouldNot(BeNil())
	return v.ID, append([]byte("cmd=_notify-validate&"), l.recv.last()...)
}

// env is the environment a listener's process gets: the proxy and the CA,
// nothing else of ipnlab's.
func (l *lab) env() []string {
	return append(os.Environ(), l.ca.Env(l.emu.URL(), l.ca.Layout())...)
}

func shutdown(s *emulator.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	Expect(s.Shutdown(ctx)).To(Succeed())
}

var _ = Describe("Standing in for PayPal's verify hosts", func() {
	It("keeps one CA: made once, read back the same, its key private, its bundle holding it", func() {
		dir := filepath.Join(GinkgoT().TempDir(), "ca")
		a, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		b, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		pa, _ := os.ReadFile(a.CertPath())
		pb, _ := os.ReadFile(b.CertPath())
		Expect(pa).To(Equal(pb))
		st, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o600)))
		bundle, err := os.ReadFile(a.BundlePath())
		Expect(err).NotTo(HaveOccurred())
		Expect(bytes.HasSuffix(bundle, pa)).To(BeTrue(), "the bundle ends with the CA")

		Expect(os.WriteFile(a.CertPath(), []byte("not a certificate"), 0o644)).To(Succeed())
		_, err = intercept.LoadOrCreate(dir)
		Expect(err).To(MatchError(intercept.ErrCA))
	})

	It("verifies a sandbox message posted to https://ipnpb.sandbox.paypal.com by curl with only HTTPS_PROXY and the CA set", func() {
		requireCommand("curl")
		l := newLab(paypal.ModePayPal)
		id, pb := l.ipn(false)
		out := runClient(l.env(), pb, "curl", "-sS", "--fail-with-body", "--data-binary", "@-", sandboxVerify)
		Expect(out).To(Equal("VERIFIED"))
		got := l.emu.PayPal().Postbacks(id)
		Expect(got).To(HaveLen(1))
		Expect(got[0].Host).To(Equal("ipnpb.sandbox.paypal.com"))
		Expect(got[0].Endpoint).To(Equal(paypal.EndpointSandbox))
	})

	It("verifies through Python's urllib, with only HTTPS_PROXY and SSL_CERT_FILE", func() {
		requireCommand("python3")
		l := newLab(paypal.ModePayPal)
		_, pb := l.ipn(false)
		out := runClient(l.env(), pb, "python3", "-c",
			"import sys, urllib.request; print(urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.stdin.buffer.read())).read().decode(), end='')", sandboxVerify)
		Expect(out).To(Equal("VERIFIED"))
	})

	It("verifies through Python requests, with only HTTPS_PROXY and REQUESTS_CA_BUNDLE", func() {
		requireCommand("python3")
		require("Python requests", exec.Command("python3", "-c", "import requests").Run() == nil)
		l := newLab(paypal.ModePayPal)
		_, pb := l.ipn(false)
		out := runClient(l.env(), pb, "python3", "-c",
			"import sys, requests; r = requests.post(sys.argv[1], data=sys.stdin.buffer.read()); print(r.text, end='')", sandboxVerify)
		Expect(out).To(Equal("VERIFIED"))
	})

	It("verifies through Go's net/http as configured by the environment (ProxyFromEnvironment, the CA as a root)", func() {
		l := newLab(paypal.ModePayPal)
		_, pb := l.ipn(false)
		resp, err := l.trustingClient().Post(sandboxVerify, "application/x-www-form-urlencoded", bytes.NewReader(pb))
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		Expect(string(body)).To(Equal("VERIFIED"))
		Expect(resp.Proto).To(Equal("HTTP/1.1"), "PayPal's verifier speaks HTTP/1.1")
	})

	It("answers INVALID to a sandbox message posted to the live host, and to a live one posted to the sandbox", func() {
		l := newLab(paypal.ModePayPal)
		client := l.trustingClient()
		id, pb := l.ipn(false)
		Expect(post(client, "https://ipnpb.paypal.com/cgi-bin/webscr", pb)).To(Equal("INVALID"))
		got := l.emu.PayPal().Postbacks(id)
		Expect(got[len(got)-1].Verdict.Rule).To(Equal(paypal.RuleEndpoint))
		Expect(got[len(got)-1].Verdict.Findings[0].Detail).To(ContainSubstring("a sandbox message (test_ipn=1) was posted back to the live verifier ipnpb.paypal.com"))
		Expect(post(client, sandboxVerify, pb)).To(Equal("VERIFIED"))

		id, pb = l.ipn(true)
		Expect(post(client, sandboxVerify, pb)).To(Equal("INVALID"))
		got = l.emu.PayPal().Postbacks(id)
		Expect(got[len(got)-1].Verdict.Rule).To(Equal(paypal.RuleEndpoint))
		Expect(post(client, "https://ipnpb.paypal.com/cgi-bin/webscr", pb)).To(Equal("VERIFIED"))
		Expect(post(client, "https://www.paypal.com/cgi-bin/webscr", pb)).To(Equal("VERIFIED"), "the legacy host verifies as PayPal's live service does")

		// A listener on the legacy hosts is told the legacy host it needed.
		id, pb = l.ipn(false)
		Expect(post(client, "https://www.paypal.com/cgi-bin/webscr", pb)).To(Equal("INVALID"))
		got = l.emu.PayPal().Postbacks(id)
		f := got[len(got)-1].Verdict.Findings[0]
		Expect(f.Got).To(Equal("www.paypal.com"))
		Expect(f.Expected).To(Equal("www.sandbox.paypal.com"))
		Expect(f.Detail).To(ContainSubstring("posted back to the live verifier www.paypal.com, which does not know it and answers INVALID: post it to www.sandbox.paypal.com"))
	})

	It("models the legacy www. host in strict mode: a redirect that a following client turns into a bodiless GET", func() {
		l := newLab(paypal.ModeStrict)
		id, pb := l.ipn(false)
		client := l.trustingClient()
		client.CheckRedirect = nil // follow, as most clients do
		Expect(post(client, "https://www.sandbox.paypal.com/cgi-bin/webscr", pb)).NotTo(Equal("VERIFIED"))
		got := l.emu.PayPal().Postbacks(id)
		Expect(got).To(HaveLen(1), "the GET carries nothing to match: it is the legacy host's record that names the message")
		Expect(got[0].Status).To(Equal(http.StatusFound))
		Expect(got[0].Verdict.Rule).To(Equal(paypal.RuleLegacyHost))
		Expect(got[0].Verdict.Findings[0].Detail).To(ContainSubstring("redirects to https://ipnpb.sandbox.paypal.com/cgi-bin/webscr"))
	})

	It("refuses every other host with a 403 naming the ones it serves, and never dials out", func() {
		requireCommand("curl")
		l := newLab(paypal.ModePayPal)
		cmd := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect}", "https://api.stripe.com/v1/charges")
		cmd.Env = l.env()
		out, err := cmd.Output()
		Expect(err).To(HaveOccurred(), "the tunnel is refused")
		Expect(string(out)).To(Equal("403"))

		req, err := http.NewRequest(http.MethodConnect, l.emu.URL(), nil)
		Expect(err).NotTo(HaveOccurred())
		req.Host = "api.stripe.com:443"
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
		Expect(string(body)).To(ContainSubstring("it serves ipnpb.paypal.com, ipnpb.sandbox.paypal.com, www.paypal.com, www.sandbox.paypal.com on port 443"))
	})

	It("gives a client that does not trust the CA a TLS error, never a plain-HTTP answer", func() {
		requireCommand("curl")
		l := newLab(paypal.ModePayPal)
		_, pb := l.ipn(false)
		cmd := exec.Command("curl", "-sS", "--data-binary", "@-", sandboxVerify)
		cmd.Env = append(os.Environ(), "HTTPS_PROXY="+l.emu.URL(), "CURL_CA_BUNDLE="+filepath.Join(GinkgoT().TempDir(), "none.pem"))
		cmd.Stdin = bytes.NewReader(pb)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred())
		Expect(string(out)).NotTo(ContainSubstring("VERIFIED"))

		untrusting := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(l.emu.URL())), TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
		_, err = untrusting.Post(sandboxVerify, "application/x-www-form-urlencoded", bytes.NewReader(pb))
		var unknown x509.UnknownAuthorityError
		Expect(errors.As(err, &unknown)).To(BeTrue(), "%v", err)
	})

	It("records what every client did: each tunnel, each refused request, each handshake a client refused, with its alert", func() {
		l := newLab(paypal.ModePayPal)
		start := time.Now()
		traffic := func() intercept.Traffic {
			t, ok := l.emu.ProxyTraffic(start)
			Expect(ok).To(BeTrue())
			return t
		}
		_, pb := l.ipn(false)
		Expect(traffic().Events).To(BeEmpty(), "nothing came yet")

		Expect(post(l.trustingClient(), sandboxVerify, pb)).To(Equal("VERIFIED"))
		untrusting := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(l.emu.URL())), TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
		_, err := untrusting.Post(sandboxVerify, "application/x-www-form-urlencoded", bytes.NewReader(pb))
		Expect(err).To(HaveOccurred())
		req, err := http.NewRequest(http.MethodConnect, l.emu.URL(), nil)
		Expect(err).NotTo(HaveOccurred())
		req.Host = "api.stripe.com:443"
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()

		// The failed handshake is recorded once the client's alert came.
		Eventually(func() int { return len(traffic().Events) }).WithTimeout(5 * time.Second).Should(Equal(3))
		t := traffic()
		Expect(t.Count(intercept.Tunnelled)).To(Equal(1))
		ok, _ := t.Last(intercept.Tunnelled)
		Expect(ok.Host).To(Equal("ipnpb.sandbox.paypal.com:443"))
		failed, _ := t.Last(intercept.HandshakeFailed)
		Expect(failed.Host).To(Equal("ipnpb.sandbox.paypal.com:443"))
		Expect(failed.Detail).To(Equal("the client refused the certificate: tls: bad certificate"), "Go's client sends bad_certificate for an unknown authority")
		refused, _ := t.Last(intercept.Refused)
		Expect(refused.Host).To(Equal("api.stripe.com:443"))
		Expect(refused.Detail).To(ContainSubstring("not one of the hosts it stands in for"))
		later, _ := l.emu.ProxyTraffic(time.Now())
		Expect(later.Events).To(BeEmpty(), "traffic is kept by time")
	})

	It("answers a request sent to the proxy whole, in the clear (absolute form, as axios sends it), for PayPal's hosts only", func() {
		l := newLab(paypal.ModePayPal)
		id, pb := l.ipn(false)
		start := time.Now()
		send := func(target string) (int, string) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(l.emu.URL(), "http://"))
			Expect(err).NotTo(HaveOccurred())
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				target, mustURL(target).Host, len(pb), pb)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		status, body := send(sandboxVerify)
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(Equal("VERIFIED"))
		got := l.emu.PayPal().Postbacks(id)
		Expect(got[len(got)-1].Host).To(Equal("ipnpb.sandbox.paypal.com"), "judged as posted to that host")
		status, body = send("https://ipnpb.paypal.com/cgi-bin/webscr")
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(Equal("INVALID"), "a sandbox message on the live host, as at PayPal")

		status, body = send("https://api.stripe.com/v1/charges")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(body).To(ContainSubstring("only CONNECT, or https:// to the hosts it stands in for, is served"))
		Expect(body).To(ContainSubstring("it serves ipnpb.paypal.com, ipnpb.sandbox.paypal.com"))
		status, _ = send("http://ipnpb.sandbox.paypal.com/cgi-bin/webscr")
		Expect(status).To(Equal(http.StatusForbidden), "PayPal's verifier is https only")
		t, _ := l.emu.ProxyTraffic(start)
		Expect(t.Count(intercept.Forwarded)).To(Equal(2))
		Expect(t.Count(intercept.Refused)).To(Equal(2))
	})

	It("hears curl's own alert when it does not trust the CA: unknown CA", func() {
		requireCommand("curl")
		_, err := os.Stat("/etc/ssl/certs/ca-certificates.crt")
		require("the system's CA bundle (ca-certificates)", err == nil)
		l := newLab(paypal.ModePayPal)
		_, pb := l.ipn(false)
		start := time.Now()
		cmd := exec.Command("curl", "-sS", "--data-binary", "@-", sandboxVerify)
		// The system's roots, without ipnlab's CA.
		cmd.Env = append(os.Environ(), "HTTPS_PROXY="+l.emu.URL(), "CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt")
		cmd.Stdin = bytes.NewReader(pb)
		_, err = cmd.CombinedOutput()
		Expect(err).To(HaveOccurred())
		Eventually(func() int {
			t, _ := l.emu.ProxyTraffic(start)
			return t.Count(intercept.HandshakeFailed)
		}).WithTimeout(5 * time.Second).Should(Equal(1))
		t, _ := l.emu.ProxyTraffic(start)
		failed, _ := t.Last(intercept.HandshakeFailed)
		// OpenSSL sends the alert and resets the connection: the alert is
		// heard, or lost with the reset.
		Expect(failed.Detail).To(Or(Equal("the client refused the certificate: tls: unknown certificate authority"),
			MatchRegexp(`^the client broke off the handshake once it had the certificate \(.*\): most likely it does not trust the CA$`)))
	})

	It("serves the verifier over plain TLS too, for clients that insist on an https verify URL", func() {
		l := newLab(paypal.ModePayPal)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		t := intercept.ServeTLS(l.ca, ln, l.emu.PayPal())
		defer t.Close()
		_, pb := l.ipn(false)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.ca.Pool()}}}
		Expect(t.URL()).To(HavePrefix("https://127.0.0.1:"))
		Expect(post(client, t.URL(), pb)).To(Equal("VERIFIED"))
		Expect(post(client, strings.Replace(t.URL(), "127.0.0.1", "localhost", 1), pb)).To(Equal("VERIFIED"))
	})

	It("tells a client that CONNECTs to an emulator started without --intercept how to start one", func() {
		emu, err := emulator.Start(emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		defer shutdown(emu)
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(emu.URL()))}}
		_, err = client.Post(sandboxVerify, "text/plain", strings.NewReader("x"))
		Expect(err).To(MatchError(ContainSubstring("Forbidden")))
	})
})

func (l *lab) trustingClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{Proxy: http.ProxyURL(mustURL(l.emu.URL())), TLSClientConfig: &tls.Config{RootCAs: l.ca.Pool()}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func post(c *http.Client, u string, body []byte) string {
	resp, err := c.Post(u, "application/x-www-form-urlencoded", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	Expect(err).NotTo(HaveOccurred())
	return u
}

// runClient runs a real client with env, the postback on its stdin, and
// returns what it printed.
func runClient(env []string, stdin []byte, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Stdin = env, bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "%s: %s", name, stderr.String())
	return string(out)
}

func requireCommand(name string) {
	_, err := exec.LookPath(name)
	require(name, err == nil)
}

// require skips a spec on a machine without what it needs, and fails it
// in CI, whose .ci/run installs it.
func require(what string, present bool) {
	if present {
		return
	}
	testenv.Missing(what+" is needed in CI (.ci/run installs it)", what+" is not installed on this machine")
}
