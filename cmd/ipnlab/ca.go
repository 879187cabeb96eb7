package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/internal/shell"
)

// interceptHelp is --intercept's help, the same on every command.
const interceptHelp = "stand in for PayPal's verify hosts (https://ipnpb.paypal.com, ipnpb.sandbox, www.): the emulator becomes an HTTPS proxy for them; give your listener HTTPS_PROXY and trust ipnlab's CA (ipnlab ca env)"

// loadCA reads (or makes, the first time) ipnlab's CA, as a usage error.
func loadCA() (*intercept.CA, error) {
	dir, err := intercept.DefaultDir()
	if err != nil {
		return nil, usageError{err}
	}
	ca, err := intercept.LoadOrCreate(dir)
	if err != nil {
		return nil, usageError{err}
	}
	return ca, nil
}

// interceptFlags are --intercept and --tls-addr.
type interceptFlags struct {
	intercept bool
	tlsAddr   string
}

func (f *interceptFlags) add(fs *pflag.FlagSet, tls bool) {
	fs.BoolVar(&f.intercept, "intercept", false, interceptHelp)
	if tls {
		fs.StringVar(&f.tlsAddr, "tls-addr", "", "also serve the verifier over TLS here (https://ADDR/cgi-bin/webscr, a certificate from ipnlab's CA), for listeners that insist on an https verify URL")
	}
}

// ca is the CA the flags need, nil when they need none.
func (f *interceptFlags) ca() (*intercept.CA, error) {
	if !f.intercept && f.tlsAddr == "" {
		return nil, nil
	}
	return loadCA()
}

// serveTLS starts --tls-addr's verifier (nil when not asked for).
func (f *interceptFlags) serveTLS(ca *intercept.CA, token string, verifier http.Handler) (*intercept.TLSVerifier, error) {
	if f.tlsAddr == "" {
		return nil, nil
	}
	if err := checkExposure("tls-addr", f.tlsAddr, token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.tlsAddr)
	if err != nil {
		return nil, usageError{fmt.Errorf("--tls-addr: %w", err)}
	}
	return intercept.ServeTLS(ca, ln, verifier), nil
}

func newCA() *cobra.Command {
	var proxy string
	c := &cobra.Command{
		Use:   "ca",
		Short: "Print where ipnlab's local CA is (made the first time) and what a listener needs to trust it",
		Long: `ipnlab ca prints the paths of ipnlab's local CA, which signs the certificates
the emulator presents for PayPal's verify hosts under --intercept. It is made
once and kept in $IPNLAB_CA_DIR, else ipnlab/ca in your configuration
directory. ipnlab ca env prints the variables your listener's process needs:
HTTPS_PROXY and the CA for Go and OpenSSL (SSL_CERT_FILE, a bundle of the
system's roots plus the CA), Python requests (REQUESTS_CA_BUNDLE), curl
(CURL_CA_BUNDLE) and Node (NODE_EXTRA_CA_CERTS; Node's https module does not
read HTTPS_PROXY: see docs/ci.md).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := loadCA()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ca: %s\nbundle: %s\n\n", ca.CertPath(), ca.BundlePath())
			printEnv(cmd, ca, proxy)
			return nil
		},
	}
	env := &cobra.Command{
		Use:   "env",
		Short: "Print the variables a listener needs to post back through the emulator's proxy (eval \"$(ipnlab ca env)\")",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := loadCA()
			if err != nil {
				return err
			}
			printEnv(cmd, ca, proxy)
			return nil
		},
	}
	c.PersistentFlags().StringVar(&proxy, "proxy", "http://127.0.0.1:8700", "the emulator's URL (its --emulator-addr), which HTTPS_PROXY names")
	c.AddCommand(env)
	return c
}

func printEnv(cmd *cobra.Command, ca *intercept.CA, proxy string) {
	for _, kv := range ca.Env(proxy, "", "") {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(cmd.OutOrStdout(), "export %s=%s\n", k, shell.Quote(v))
	}
}
