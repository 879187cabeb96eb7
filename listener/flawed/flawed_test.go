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

	"github.com/ipnlab/ipnlab/generate"
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

	It("builds every mutant of the gallery at its seam, and leaves a configuration that names none as it is", func() {
		for _, m := range mutants.All() {
			cfg, err := flawed.Configure(listener.Config{Mutant: string(m.Name)})
			Expect(err).NotTo(HaveOccurred(), string(m.Name))
			Expect(cfg.Mutant).To(BeEmpty(), "%s: the listener it builds knows of no mutant", m.Name)
			switch m.Seam {
			case mutants.SeamRules:
				Expect(cfg.WrapRules).NotTo(BeNil(), string(m.Name))
			case mutants.SeamHandler:
				Expect(cfg.WrapHandler).NotTo(BeNil(), string(m.Name))
			case mutants.SeamStore:
				Expect(cfg.WrapStore).NotTo(BeNil(), string(m.Name))
			}
		}
		cfg, err := flawed.Configure(listener.Config{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.WrapVerifier).To(BeNil())
		Expect(cfg.WrapRules).To(BeNil())
		_, err = flawed.Configure(listener.Config{Mutant: "credit-pendings"})
		Expect(err).To(MatchError(HavePrefix(`mutant "credit-pendings": want one of ack-204, ack-after-verify,`)))
	})

	It("is refused by the listener when a mutant is asked of it directly, with where it is built", func() {
		_, err := listener.New(listener.Config{VerifyURL: "http://127.0.0.1:9/cgi-bin/webscr", ReceiverEmails: []string{"m@example.com"},
			DB: filepath.Join(GinkgoT().TempDir(), "l.db"), Mutant: string(mutants.CreditPending)})
		Expect(err).To(MatchError(ContainSubstring(`mutant "credit-pending": the reference listener carries no bug; flawed.New builds the gallery's mutants (package listener/flawed)`)))
		l, err := flawed.New(listener.Config{VerifyURL: "http://127.0.0.1:9/cgi-bin/webscr", ReceiverEmails: []string{"m@example.com"},
			DB: filepath.Join(GinkgoT().TempDir(), "l.db"), Mutant: string(mutants.CreditPending)})
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

		It("ignored-500 answers 500 to a message the listener would ignore, and acks the rest", func() {
			base := start(mutants.Ignored500, verified)
			Expect(post(base+listener.PayPalPath, "txn_type=web_accept&txn_id=1&receiver_email=m%40example.com")).To(Equal(http.StatusOK))
			Expect(post(base+listener.PayPalPath, "txn_type=web_accept&txn_id=2&receiver_email=someone%40example.com")).To(Equal(http.StatusInternalServerError))
			Expect(post(base+listener.PayPalPath, "txn_type=web_accept&txn_id=3&parent_txn_id=9&receiver_email=m%40example.com")).To(Equal(http.StatusInternalServerError), "a refund of a payment never seen")
			Expect(post(base+listener.PayPalPath, "a=%ZZ")).To(Equal(http.StatusBadRequest), "a refusal stays a refusal")
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
			gen, err := generate.New(7, generate.Options{})
			Expect(err).NotTo(HaveOccurred())
			msg, err := gen.PayDo(generate.PayDoTransfer, generate.PayDoParams{})
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
