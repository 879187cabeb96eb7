package flawed_test

import (
	"context"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

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
})
