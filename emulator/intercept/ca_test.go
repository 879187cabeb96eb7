package intercept_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

var _ = Describe("The local CA", func() {
	// pairMatches reports whether dir's certificate and key make a pair.
	pairMatches := func(dir string) bool {
		_, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
		return err == nil
	}

	It("is made once when first runs start together: every run gets the same CA, its key matching it", func() {
		for range 20 {
			dir := filepath.Join(GinkgoT().TempDir(), "ca")
			var wg sync.WaitGroup
			certs := make([][]byte, 6)
			for i := range certs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer GinkgoRecover()
					ca, err := intercept.LoadOrCreate(dir)
					Expect(err).NotTo(HaveOccurred())
					certs[i], err = os.ReadFile(ca.CertPath())
					Expect(err).NotTo(HaveOccurred())
				}()
			}
			wg.Wait()
			for _, c := range certs[1:] {
				Expect(c).To(Equal(certs[0]), "one CA")
			}
			Expect(pairMatches(dir)).To(BeTrue(), "the key on disk is the certificate's")
		}
	})

	It("never replaces a CA silently: a certificate without its key, or with another key, is an error saying what to do", func() {
		dir := filepath.Join(GinkgoT().TempDir(), "ca")
		ca, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		trusted, err := os.ReadFile(ca.CertPath())
		Expect(err).NotTo(HaveOccurred())
		key := filepath.Join(dir, "ca-key.pem")
		Expect(os.Rename(key, key+".away")).To(Succeed())
		_, err = intercept.LoadOrCreate(dir)
		Expect(err).To(MatchError(intercept.ErrCA))
		Expect(err).To(MatchError(ContainSubstring("does not replace it; to make a new one, remove " + dir)))
		now, _ := os.ReadFile(ca.CertPath())
		Expect(now).To(Equal(trusted), "the certificate listeners trust is still there")

		other := filepath.Join(GinkgoT().TempDir(), "other")
		_, err = intercept.LoadOrCreate(other)
		Expect(err).NotTo(HaveOccurred())
		raw, err := os.ReadFile(filepath.Join(other, "ca-key.pem"))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(key, raw, 0o600)).To(Succeed())
		_, err = intercept.LoadOrCreate(dir)
		Expect(err).To(MatchError(ContainSubstring("do not make a key pair")))
		now, _ = os.ReadFile(ca.CertPath())
		Expect(now).To(Equal(trusted))
	})

	It("refuses a CA directory another user owns", func() {
		if os.Getuid() != 0 {
			testenv.Skip("giving a directory to another user needs root")
		}
		dir := filepath.Join(GinkgoT().TempDir(), "ca")
		_, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.Chown(dir, 4242, 4242)).To(Succeed())
		_, err = intercept.LoadOrCreate(dir)
		Expect(err).To(MatchError(ContainSubstring("belongs to user 4242, not to this user")))
	})

	It("refuses a key others can read", func() {
		dir := filepath.Join(GinkgoT().TempDir(), "ca")
		_, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.Chmod(filepath.Join(dir, "ca-key.pem"), 0o644)).To(Succeed())
		_, err = intercept.LoadOrCreate(dir)
		Expect(err).To(MatchError(ContainSubstring("can be read by others (mode 0644): chmod 600 it")))
	})

	It("signs for the PayPal hosts ipnlab stands in for and loopback only, and lives two years at most", func() {
		dir := filepath.Join(GinkgoT().TempDir(), "ca")
		ca, err := intercept.LoadOrCreate(dir)
		Expect(err).NotTo(HaveOccurred())
		pair, err := tls.LoadX509KeyPair(ca.CertPath(), filepath.Join(dir, "ca-key.pem"))
		Expect(err).NotTo(HaveOccurred())
		root, err := x509.ParseCertificate(pair.Certificate[0])
		Expect(err).NotTo(HaveOccurred())
		Expect(root.NotAfter.Sub(root.NotBefore)).To(BeNumerically("<=", 2*365*24*time.Hour+time.Hour))

		// Whoever holds the key cannot make a certificate this CA's
		// trusters accept for any other host.
		leaf := func(host string) *x509.Certificate {
			priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			Expect(err).NotTo(HaveOccurred())
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &priv.PublicKey, pair.PrivateKey.(crypto.Signer))
			Expect(err).NotTo(HaveOccurred())
			c, err := x509.ParseCertificate(der)
			Expect(err).NotTo(HaveOccurred())
			return c
		}
		for host, ok := range map[string]bool{"ipnpb.paypal.com": true, "ipnpb.sandbox.paypal.com": true, "localhost": true,
			"api-m.paypal.com": true, "api.sandbox.paypal.com": true, "messageverificationcerts.paypal.com": true,
			"bank.example.com": false, "paypal.com": false, "history.paypal.com": false} {
			_, err := leaf(host).Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host})
			if ok {
				Expect(err).NotTo(HaveOccurred(), host)
			} else {
				Expect(err).To(HaveOccurred(), host)
			}
		}
	})
})
