// Package intercept stands in for PayPal's verify hostnames, so that a
// listener that hard-codes https://ipnpb.paypal.com reaches the emulator
// with no change to its code: an HTTPS proxy (HTTPS_PROXY) that answers
// CONNECT for PayPal's hosts only, terminates TLS with certificates from a
// local CA that ipnlab makes once and keeps, and hands each request to the
// verifier with the Host it was sent to. Nothing is ever dialled: every
// other host is refused.
package intercept

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Hosts are PayPal's verify hostnames: live and sandbox, current and legacy.
var Hosts = []string{"ipnpb.paypal.com", "ipnpb.sandbox.paypal.com", "www.paypal.com", "www.sandbox.paypal.com"}

// SigningNames are the names on the certificates PayPal signs messages
// with (not TLS): its REST webhooks' signing certificate.
var SigningNames = []string{"messageverificationcerts.paypal.com"}

// APIHosts are PayPal's REST API hostnames, live and sandbox, current
// and older: its OAuth, verify and webhooks APIs, and its signing
// certificates.
var APIHosts = []string{"api-m.paypal.com", "api-m.sandbox.paypal.com", "api.paypal.com", "api.sandbox.paypal.com"}

// Domains are what a new CA may sign for, beside loopback: the PayPal
// hosts the emulator's providers stand in for, and nothing else of
// PayPal's. A CA made when it signed for the verify hosts alone still
// serves those; Permits says which hosts it covers.
var Domains = append(append(append([]string{}, Hosts...), APIHosts...), SigningNames...)

// Files in the CA's directory.
const (
	CertFile   = "ca.pem"     // the CA certificate: trust this
	keyFile    = "ca-key.pem" // its private key, readable by its owner only
	BundleFile = "bundle.pem" // the system's roots followed by the CA, for SSL_CERT_FILE
	lockFile   = ".lock"      // held while the CA is read or made
)

// Life is how long a new CA is valid: clients that trust it must trust a
// new one after that, and a leaked key is worth less.
const Life = 2 * 365 * 24 * time.Hour

// EnvDir names the CA's directory, over the default (DefaultDir).
const EnvDir = "IPNLAB_CA_DIR"

// ErrCA wraps every failure to load or make the CA.
var ErrCA = errors.New("ipnlab CA")

// CA is ipnlab's local certificate authority.
type CA struct {
	dir  string
	cert *x509.Certificate
	key  crypto.Signer

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// DefaultDir is where the CA is kept: $IPNLAB_CA_DIR, else ipnlab/ca in
// the user's configuration directory.
func DefaultDir() (string, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		return dir, nil
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("%w: no configuration directory (set %s): %v", ErrCA, EnvDir, err)
	}
	return filepath.Join(base, "ipnlab", "ca"), nil
}

// LoadOrCreate reads the CA kept in dir, making it the first time: one CA
// per machine, so that what trusts it once keeps working. It holds dir's
// lock meanwhile, so that runs starting together make one CA. It never
// replaces a CA silently: a certificate without its key, or a key that
// does not match it, is an error saying to remove the directory (and to
// trust the new CA). It refuses a directory or key another user owns,
// and a key others can read.
func LoadOrCreate(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCA, dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCA, dir, err)
	}
	if err := checkOwner(dir, st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCA, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCA, dir, err)
	}
	defer unlock()
	_, certErr := os.Stat(filepath.Join(dir, CertFile))
	_, keyErr := os.Stat(filepath.Join(dir, keyFile))
	if errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist) {
		if err := create(dir); err != nil {
			return nil, fmt.Errorf("%w: create in %s: %v", ErrCA, dir, err)
		}
	}
	ca, err := load(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (listeners may trust this CA: ipnlab does not replace it; to make a new one, remove %s, then trust the new %s)", ErrCA, dir, err, dir, CertFile)
	}
	if err := writeStackFiles(dir); err != nil {
		return nil, fmt.Errorf("%w: %s: the files each stack reads: %v", ErrCA, dir, err)
	}
	return ca, nil
}

func load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, keyFile)
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(keyPath, st); err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s can be read by others (mode %04o): chmod 600 it", keyPath, st.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s do not make a key pair: %v", CertFile, keyFile, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate with its signing key", CertFile)
	}
	return &CA{dir: dir, cert: cert, key: key, leaves: map[string]*tls.Certificate{}}, nil
}

// create makes the CA's key and certificate and the bundle, under dir's
// lock. The files are written under temporary names and renamed, the
// certificate last, so that a crash leaves no half file.
func create(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ipnlab local CA (stands in for PayPal's hosts)", Organization: []string{"ipnlab"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Life),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// It signs for PayPal's hosts and loopback only: a client that
		// trusts it trusts it for nothing else.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         append([]string{"localhost"}, Domains...),
		PermittedIPRanges:           []*net.IPNet{{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}, {IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeAtomic(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, BundleFile), append(systemRoots(), certPEM...), 0o644); err != nil {
		return err
	}
	// The certificate last: load takes a CA whose certificate exists as whole.
	return writeAtomic(filepath.Join(dir, CertFile), certPEM, 0o644)
}

func writeAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// systemRoots is the system's CA bundle (empty when none is found), so
// that a listener whose SSL_CERT_FILE points at the bundle still trusts
// every other server it talks to.
func systemRoots() []byte {
	for _, path := range []string{
		"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem",
	} {
		if raw, err := os.ReadFile(path); err == nil && bytes.Contains(raw, []byte("BEGIN CERTIFICATE")) {
			return append(bytes.TrimRight(raw, "\n"), '\n')
		}
	}
	return nil
}

// Dir is where the CA is kept.
func (ca *CA) Dir() string { return ca.dir }

// CertPath is the CA certificate's file: what a client must trust.
func (ca *CA) CertPath() string { return filepath.Join(ca.dir, CertFile) }

// BundlePath is the system's roots plus the CA, for variables that
// replace the trusted roots rather than add to them.
func (ca *CA) BundlePath() string { return filepath.Join(ca.dir, BundleFile) }

// Pool is a certificate pool holding the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Permits reports whether the CA may sign for host (its name
// constraints): a CA made before the emulator stood in for a host does
// not cover it.
func (ca *CA) Permits(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range ca.cert.PermittedDNSDomains {
		d = strings.ToLower(strings.TrimPrefix(d, "."))
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return len(ca.cert.PermittedDNSDomains) == 0
}

// leafFor returns a certificate for host signed by the CA, made once.
func (ca *CA) leafFor(hosts ...string) (*tls.Certificate, error) {
	key := strings.Join(hosts, ",")
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.leaves[key]; ok {
		return c, nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"ipnlab"}},
		NotBefore:    now.Add(-time.Hour),
		// Short-lived: clients refuse leaves valid for more than about a year.
		NotAfter:    now.AddDate(0, 0, 90),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &priv.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: priv}
	ca.leaves[key] = c
	return c, nil
}

// ErrNotCovered: the CA may not sign for the name asked (its name
// constraints; an older CA covers fewer of PayPal's names).
var ErrNotCovered = errors.New("not covered by the CA")

// Sign issues a certificate for key's public half, for name, with the
// key usages given (a message-signing certificate, say), valid from
// notBefore for life. It returns the certificate, then the CA's: the
// chain a verifier that trusts the CA checks.
func (ca *CA) Sign(name string, pub crypto.PublicKey, usage x509.KeyUsage, notBefore time.Time, life time.Duration) ([][]byte, error) {
	if !ca.Permits(name) {
		return nil, fmt.Errorf("%w: %s (the CA in %s was made before ipnlab signed for it: to make a new one, remove %s, then trust the new %s)", ErrNotCovered, name, ca.dir, ca.dir, CertFile)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"ipnlab (stands in for PayPal, Inc.)"}},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(life),
		KeyUsage:     usage,
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return [][]byte{der, ca.cert.Raw}, nil
}

// ServerConfig is a TLS configuration presenting a certificate for each
// host a client names (SNI) among hosts, and for fallback when the client
// names none (a client dialling an IP address). HTTP/1.1 only, as
// PayPal's verifier.
func (ca *CA) ServerConfig(fallback string, hosts ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
			if name == "" {
				return ca.leafFor(fallback)
			}
			if !slices.Contains(hosts, name) {
				return nil, fmt.Errorf("ipnlab intercepts %s only, not %q", strings.Join(hosts, ", "), name)
			}
			return ca.leafFor(name)
		},
	}
}

// Client is an HTTP client set up as HTTPS_PROXY=proxyURL and the CA's
// variables set up a listener's: HTTPS goes through the proxy and trusts
// the system's roots and the CA; plain HTTP goes direct. It follows no
// redirects, as a listener posting back must not.
func (ca *CA) Client(proxyURL *url.URL) *http.Client {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AddCert(ca.cert)
	return &http.Client{
		Transport: &http.Transport{
			Proxy: func(r *http.Request) (*url.URL, error) {
				if r.URL.Scheme == "https" {
					return proxyURL, nil
				}
				return nil, nil
			},
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
