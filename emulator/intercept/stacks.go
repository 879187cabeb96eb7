package intercept

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// What each client stack reads. HTTPS_PROXY and SSL_CERT_FILE reach Go,
// curl, Python and OpenSSL-based clients; the rest read other variables,
// or none at all: Perl's LWP takes a proxy from the environment only
// when asked (PERL_LWP_ENV_PROXY) and its CA from its own variables;
// Ruby's Net::HTTP looks its proxy up under http_proxy, even for https;
// PHP's curl and streams read their CA from php.ini (curl.cainfo,
// openssl.cafile), which an ini file in PHP_INI_SCAN_DIR sets; Java reads
// a trust store and proxy properties (JAVA_TOOL_OPTIONS); Node before 24
// ignores HTTPS_PROXY, and a preload (NODE_OPTIONS=--require) tunnels
// its https requests. The CA's directory holds those files, written
// with the CA and remade when missing.

// Stack files beside the CA, by path under its directory.
const (
	PHPIniDir      = "php"                 // ipnlab.ini: curl.cainfo and openssl.cafile
	NodePreload    = "node/proxy.cjs"      // the tunnelling preload for Node before 24
	JavaTrustStore = "java/truststore.p12" // the bundle as a PKCS#12 trust store
)

// JavaTrustStorePassword opens the Java trust store: it holds no secret,
// and Java wants one.
const JavaTrustStorePassword = "changeit"

//go:embed stackfiles/proxy.cjs
var nodePreload []byte

// phpIni sets PHP's CA from SSL_CERT_FILE, which PHP expands when it
// reads the file: one file serves every path the bundle is mounted at.
var phpIni = []byte(`; ipnlab: PHP's curl and streams trust the bundle SSL_CERT_FILE names
curl.cainfo = "${SSL_CERT_FILE}"
openssl.cafile = "${SSL_CERT_FILE}"
`)

// Layout is where a listener's process sees the CA's files: on this
// machine (CA.Layout) or in a container (ContainerLayout).
type Layout struct {
	Cert, Bundle, PHPIniDir, NodePreload, JavaTrustStore string
}

// Layout is the CA's files where they are on this machine.
func (ca *CA) Layout() Layout {
	return Layout{
		Cert: ca.CertPath(), Bundle: ca.BundlePath(), PHPIniDir: filepath.Join(ca.dir, PHPIniDir),
		NodePreload: filepath.Join(ca.dir, NodePreload), JavaTrustStore: filepath.Join(ca.dir, JavaTrustStore),
	}
}

// ContainerDir is where a container sees the CA's files.
const ContainerDir = "/etc/ipnlab"

// ContainerLayout is the CA's files as a container sees them, mounted
// by Mounts.
func ContainerLayout() Layout {
	return Layout{
		Cert: ContainerDir + "/" + CertFile, Bundle: ContainerDir + "/" + BundleFile, PHPIniDir: ContainerDir + "/" + PHPIniDir,
		NodePreload: ContainerDir + "/" + NodePreload, JavaTrustStore: ContainerDir + "/" + JavaTrustStore,
	}
}

// Mounts maps each file of ContainerLayout to the file on this machine.
func (ca *CA) Mounts() map[string]string {
	c, h := ContainerLayout(), ca.Layout()
	return map[string]string{c.Cert: h.Cert, c.Bundle: h.Bundle, c.PHPIniDir: h.PHPIniDir, c.NodePreload: h.NodePreload, c.JavaTrustStore: h.JavaTrustStore}
}

// Var is one environment variable a stack reads, and who reads it.
type Var struct {
	Name, Value string
	For         string // the clients that read it
	// Trust is set on the variables that make a client trust the CA
	// (all the route without a proxy needs).
	Trust bool
}

// Vars is what a listener's process needs to post back through the
// proxy at proxyURL and trust the CA, with its files where l says, for
// every common stack. Loopback stays direct (NO_PROXY). With no
// proxyURL, the CA's alone (Trust): the route without a proxy.
func Vars(proxyURL string, l Layout) []Var {
	noProxy := "127.0.0.1,localhost,::1"
	javaTrust := []string{"-Djavax.net.ssl.trustStore=" + l.JavaTrustStore, "-Djavax.net.ssl.trustStoreType=PKCS12",
		"-Djavax.net.ssl.trustStorePassword=" + JavaTrustStorePassword}
	trust := []Var{
		{"SSL_CERT_FILE", l.Bundle, "Go, OpenSSL (Ruby, Python's urllib, PHP through ipnlab.ini)", true},
		{"REQUESTS_CA_BUNDLE", l.Bundle, "Python requests", true},
		{"CURL_CA_BUNDLE", l.Bundle, "curl", true},
		{"NODE_EXTRA_CA_CERTS", l.Cert, "Node", true},
		{"PERL_LWP_SSL_CA_FILE", l.Bundle, "Perl LWP", true},
		{"HTTPS_CA_FILE", l.Bundle, "Perl's older Crypt::SSLeay and Net::SSL", true},
		{"PHP_INI_SCAN_DIR", ":" + l.PHPIniDir, "PHP: the default ini directory, then ipnlab.ini (curl.cainfo, openssl.cafile)", true},
	}
	if proxyURL == "" {
		return append(trust, Var{"JAVA_TOOL_OPTIONS", strings.Join(javaTrust, " "), "Java: the trust store", true})
	}
	host, port := proxyHostPort(proxyURL)
	java := slices.Concat(javaTrust, []string{"-Dhttps.proxyHost=" + host, "-Dhttps.proxyPort=" + port, "-Dhttp.nonProxyHosts=localhost|127.*|[::1]"})
	return append([]Var{
		{"HTTPS_PROXY", proxyURL, "Go, Python, Node 24 (with NODE_USE_ENV_PROXY), and the preload for earlier Node", false},
		{"https_proxy", proxyURL, "curl, Perl LWP (with PERL_LWP_ENV_PROXY), and most others", false},
		{"http_proxy", proxyURL, "Ruby's Net::HTTP, which looks its proxy up there even for https", false},
		{"NO_PROXY", noProxy, "loopback stays direct", false},
		{"no_proxy", noProxy, "loopback stays direct", false},
	}, append(trust,
		Var{"NODE_USE_ENV_PROXY", "1", "Node 24 and later", false},
		Var{"NODE_OPTIONS", "--require " + l.NodePreload, "Node before 24: a preload that tunnels https through HTTPS_PROXY", false},
		Var{"PERL_LWP_ENV_PROXY", "1", "Perl LWP: take the proxy from https_proxy", false},
		Var{"JAVA_TOOL_OPTIONS", strings.Join(java, " "), "Java: the trust store and the proxy", true},
	)...)
}

// Env is Vars as NAME=VALUE, for a process's environment.
func (ca *CA) Env(proxyURL string, l Layout) []string {
	var out []string
	for _, v := range Vars(proxyURL, l) {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}

// proxyHostPort is the host and port of proxyURL, an http:// URL its
// callers have checked (80 when it names none).
func proxyHostPort(proxyURL string) (string, string) {
	u, err := url.Parse(proxyURL)
	if err != nil {
		return proxyURL, "80" // not a URL: Java names it as it is, and fails saying so
	}
	if u.Port() == "" {
		return u.Hostname(), "80"
	}
	return u.Hostname(), u.Port()
}

// writeStackFiles writes what is missing of the stack files, under the
// CA directory's lock.
func writeStackFiles(dir string) error {
	files := map[string]func() ([]byte, error){
		filepath.Join(PHPIniDir, "ipnlab.ini"): func() ([]byte, error) { return phpIni, nil },
		NodePreload:                            func() ([]byte, error) { return nodePreload, nil },
		JavaTrustStore:                         func() ([]byte, error) { return javaTrustStore(filepath.Join(dir, BundleFile)) },
	}
	for name, make := range files {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		data, err := make()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := writeAtomic(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// javaTrustStore is the bundle (the system's roots and the CA) as a
// PKCS#12 trust store: Java replaces its own roots with the store it is
// given.
func javaTrustStore(bundlePath string) ([]byte, error) {
	raw, err := os.ReadFile(bundlePath)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", bundlePath)
	}
	return pkcs12.Modern.EncodeTrustStore(certs, JavaTrustStorePassword)
}
