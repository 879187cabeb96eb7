package flawed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/fixtures"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/flawed"
	"github.com/ipnlab/ipnlab/listener/mutants"
)

// recorder is a team's own verifier decoration: it records what it was
// asked to verify and answers VERIFIED.
type recorder struct{ got *[]string }

func (r recorder) Verify(_ context.Context, raw []byte) (string, error) {
	*r.got = append(*r.got, string(raw))
	return "VERIFIED", nil
}

var _ = Describe("A flawed listener", func() {
	It("is the reference listener decorated at its verifier: a verification mutant is no switch inside the listener", func() {
		cfg, err := flawed.Configure(listener.Config{Mutant: string(mutants.CRLFToLF)})
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Mutant).To(BeEmpty(), "the listener it builds knows of no mutant")
		Expect(cfg.WrapVerifier).NotTo(BeNil())

		// A decoration of the team's own goes under the mutant's.
		var got []string
		cfg, err = flawed.Configure(listener.Config{Mutant: string(mutants.CRLFToLF),
			WrapVerifier: func(listener.Verifier) listener.Verifier { return recorder{&got} }})
		Expect(err).NotTo(HaveOccurred())
		v := cfg.WrapVerifier(listener.Postback{})
		Expect(v.Verify(context.Background(), []byte("address_street=1+Main%0D%0AFlat+2"))).To(Equal("VERIFIED"))
		Expect(got).To(Equal([]string{"address_street=1+Main%0AFlat+2"}), "the CRLF made an LF before the team's verifier saw it")
	})

	It("builds implicit-200 as a listener that tries a verification once: a verifier outage loses the message", func() {
		cfg, err := flawed.Configure(listener.Config{Mutant: string(mutants.Implicit200), Verify: listener.VerifyConfig{Attempts: 8}})
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Verify.Attempts).To(Equal(1))
		Expect(cfg.Mutant).To(BeEmpty())
	})

	It("keeps a mutant that is still a decision inside the listener for the listener, and builds none for a configuration without one", func() {
		cfg, err := flawed.Configure(listener.Config{Mutant: string(mutants.CreditPending)})
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Mutant).To(Equal(string(mutants.CreditPending)))
		Expect(cfg.WrapVerifier).To(BeNil())
		cfg, err = flawed.Configure(listener.Config{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.WrapVerifier).To(BeNil())
	})

	It("is refused by the listener when a verification mutant is asked of it directly, with where it is built", func() {
		_, err := listener.New(listener.Config{VerifyURL: "http://127.0.0.1:9/cgi-bin/webscr", ReceiverEmails: []string{"m@example.com"},
			DB: filepath.Join(GinkgoT().TempDir(), "l.db"), Mutant: string(mutants.NoPostback)})
		Expect(err).To(MatchError(ContainSubstring(`mutant "no-postback" decorates the listener's verifier: build it with flawed.New (package listener/flawed)`)))
		l, err := flawed.New(listener.Config{VerifyURL: "http://127.0.0.1:9/cgi-bin/webscr", ReceiverEmails: []string{"m@example.com"},
			DB: filepath.Join(GinkgoT().TempDir(), "l.db"), Mutant: string(mutants.NoPostback)})
		Expect(err).NotTo(HaveOccurred())
		Expect(l.Close()).To(Succeed())
	})
	Describe("built at its handler", func() {
		// start serves a flawed listener whose verifier is verify, and
		// returns its base URL.
		start := func(mutant mutants.Name, verify http.HandlerFunc) string {
			vsrv := httptest.NewServer(verify)
			DeferCleanup(vsrv.Close)
			l, err := flawed.New(listener.Config{VerifyURL: vsrv.URL + "/cgi-bin/webscr", ReceiverEmails: []string{"m@example.com"},
				DB: filepath.Join(GinkgoT().TempDir(), "l.db"), Mutant: string(mutant), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Verify: listener.VerifyConfig{Timeout: 50 * time.Millisecond}})
			Expect(err).NotTo(HaveOccurred())
			Expect(l.Start(context.Background())).To(Succeed())
			srv := httptest.NewServer(l.Handler())
			DeferCleanup(func() { srv.Close(); _ = l.Close() })
			return srv.URL
		}
		post := func(url, body string) int {
			resp, err := http.Post(url, "application/x-www-form-urlencoded", strings.NewReader(body))
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			return resp.StatusCode
		}
		verified := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "VERIFIED") }

		It("ack-204 answers PayPal 204 No Content where the listener answers 200, and nothing else changes", func() {
			base := start(mutants.Ack204, verified)
			Expect(post(base+listener.PayPalPath, "txn_id=1&receiver_email=m%40example.com")).To(Equal(http.StatusNoContent))
			Expect(post(base+listener.PayPalPath, "")).To(Equal(http.StatusBadRequest), "a refusal stays a refusal")
			resp, err := http.Get(base + "/healthz")
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusOK))
		})

		It("ack-after-verify posts a PayPal message back before it acks, waiting past the listener's own timeout", func() {
			var mu sync.Mutex
			var asked []string
			release := make(chan struct{})
			base := start(mutants.AckAfterVerify, func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				mu.Lock()
				asked = append(asked, string(raw))
				mu.Unlock()
				<-release
				_, _ = io.WriteString(w, "VERIFIED")
			})
			postbacks := func() []string {
				mu.Lock()
				defer mu.Unlock()
				return append([]string(nil), asked...)
			}
			answered := make(chan int, 1)
			go func() { answered <- post(base+listener.PayPalPath, "txn_id=1&receiver_email=m%40example.com") }()
			Eventually(postbacks).Should(HaveLen(1))
			// Four times the listener's postback timeout, and no ack.
			Consistently(answered, 200*time.Millisecond).ShouldNot(Receive())
			close(release)
			Eventually(answered).Should(Receive(Equal(http.StatusOK)))

			Expect(post(base+listener.PayPalPath, "a=%ZZ")).To(Equal(http.StatusBadRequest))
			Expect(post(base+listener.PayPalPath, strings.Repeat("x", listener.MaxBody+1))).To(Equal(http.StatusRequestEntityTooLarge))
			Expect(postbacks()).To(HaveEach(ContainSubstring("txn_id=1")), "what the listener refuses is not posted back")
		})
	})

	Describe("a PayDo notification from a stranger", func() {
		// accepted says what a listener built with mutant (none: the
		// reference one) answers a PayDo transfer that reaches it from
		// 127.0.0.1, carrying X-Forwarded-For if forwarded is set, while
		// only 203.0.113.5 is PayDo's.
		accepted := func(mutant mutants.Name, forwarded string) int {
			gen, err := fixtures.New(7, fixtures.Options{})
			Expect(err).NotTo(HaveOccurred())
			msg, err := gen.PayDo(fixtures.PayDoTransfer, fixtures.PayDoParams{})
			Expect(err).NotTo(HaveOccurred())
			body, err := json.Marshal(msg.Body)
			Expect(err).NotTo(HaveOccurred())
			l, err := flawed.New(listener.Config{VerifyURL: "http://127.0.0.1:9/cgi-bin/webscr", ReceiverEmails: []string{"m@example.com"},
				DB: filepath.Join(GinkgoT().TempDir(), "l.db"), Mutant: string(mutant), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				PayDo: listener.PayDoConfig{AllowedSources: []string{"203.0.113.5"}}})
			Expect(err).NotTo(HaveOccurred())
			srv := httptest.NewServer(l.Handler())
			DeferCleanup(func() { srv.Close(); _ = l.Close() })
			req, err := http.NewRequest("POST", srv.URL+listener.PayDoPath, bytes.NewReader(body))
			Expect(err).NotTo(HaveOccurred())
			req.Header.Set("Content-Type", "application/json")
			if forwarded != "" {
				req.Header.Set("X-Forwarded-For", forwarded)
			}
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			return resp.StatusCode
		}

		It("is refused by the reference listener, even when it names PayDo's address in X-Forwarded-For", func() {
			Expect(accepted("", "")).To(Equal(http.StatusForbidden))
			Expect(accepted("", "203.0.113.5")).To(Equal(http.StatusForbidden))
		})
		It("is taken by paydo-no-allowlist, whose allowlist lets any address in", func() {
			Expect(accepted(mutants.PaydoNoAllowlist, "")).To(Equal(http.StatusOK))
		})
		It("is taken by paydo-trust-xff when it names PayDo's address in X-Forwarded-For, and refused when it does not", func() {
			Expect(accepted(mutants.PaydoTrustXFF, "203.0.113.5")).To(Equal(http.StatusOK))
			Expect(accepted(mutants.PaydoTrustXFF, "")).To(Equal(http.StatusForbidden))
		})
	})
})
