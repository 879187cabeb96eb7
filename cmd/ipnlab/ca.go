package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/internal/shell"
	"github.com/ipnlab/ipnlab/suites/conformance"
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
	var out envOutput
	c := &cobra.Command{
		Use:   "ca",
		Short: "Print where ipnlab's local CA is (made the first time) and what a listener needs to trust it",
		Long: `ipnlab ca prints the paths of ipnlab's local CA, which signs the certificates
the emulator presents for PayPal's verify hosts under --intercept. It is made
once and kept in $IPNLAB_CA_DIR, else ipnlab/ca in your configuration
directory, with the files some stacks read (a PHP ini file, a preload for
Node before 24, a Java trust store). ipnlab ca env prints the variables your
listener's process needs, for every common stack: the proxy under each name
a client reads it (HTTPS_PROXY, https_proxy, http_proxy for Ruby,
PERL_LWP_ENV_PROXY, Java's properties, Node's preload) and the CA for each
(SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS,
PERL_LWP_SSL_CA_FILE, PHP's curl.cainfo, Java's trust store); docs/ci.md,
"Stacks", says which stack reads what. The proxy is the emulator's address,
read as conform and serve read it: --emulator-addr, else
$IPNLAB_EMULATOR_ADDR, else 127.0.0.1:8700.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := loadCA()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ca: %s\nbundle: %s\n\n", ca.CertPath(), ca.BundlePath())
			return out.print(cmd, ca)
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
			return out.print(cmd, ca)
		},
	}
	out.add(c.PersistentFlags())
	c.AddCommand(env)
	return c
}

// envOutput is what ca env prints, and in which form.
type envOutput struct {
	addr, proxy                       string
	dotenv, githubActions, dockerArgs bool
}

func (o *envOutput) add(fs *pflag.FlagSet) {
	addr := os.Getenv("IPNLAB_EMULATOR_ADDR")
	if addr == "" {
		addr = conformance.Defaults().EmulatorAddr
	}
	fs.StringVar(&o.addr, "emulator-addr", addr, "the emulator's address (conform's and serve's --emulator-addr, else $IPNLAB_EMULATOR_ADDR): the proxy every variable names")
	fs.StringVar(&o.proxy, "proxy", "", "the proxy's URL, when it is not http://EMULATOR-ADDR (a container reaching the host by another name)")
	fs.Bool("shell", true, "print shell exports, for eval \"$(ipnlab ca env)\" (the default)")
	fs.BoolVar(&o.dotenv, "dotenv", false, "print NAME=value lines, unquoted, for docker --env-file, compose's env_file or a .env file")
	fs.BoolVar(&o.githubActions, "github-actions", false, "print NAME=value lines for $GITHUB_ENV: ipnlab ca env --github-actions >> \"$GITHUB_ENV\"")
	fs.BoolVar(&o.dockerArgs, "docker-args", false, "print docker run arguments: host networking, each variable with the CA's files as the container sees them, and their mounts")
}

// print writes the variables in the form the flags ask for.
func (o *envOutput) print(cmd *cobra.Command, ca *intercept.CA) error {
	forms := 0
	for _, set := range []bool{o.dotenv, o.githubActions, o.dockerArgs} {
		if set {
			forms++
		}
	}
	if forms > 1 {
		return usageError{errors.New("--dotenv, --github-actions and --docker-args: choose one")}
	}
	proxy := o.proxy
	if proxy == "" {
		if _, _, err := net.SplitHostPort(o.addr); err != nil {
			return usageError{fmt.Errorf("--emulator-addr %q: want host:port", o.addr)}
		}
		proxy = "http://" + o.addr
	} else if u, err := url.Parse(proxy); err != nil || u.Scheme != "http" || u.Host == "" {
		return usageError{fmt.Errorf("--proxy %q: want http://HOST:PORT, the emulator's URL", proxy)}
	}
	w := cmd.OutOrStdout()
	switch {
	case o.dockerArgs:
		args := []string{"--network", "host"}
		for _, v := range intercept.Vars(proxy, intercept.ContainerLayout()) {
			args = append(args, "-e", shell.Quote(v.Name+"="+v.Value))
		}
		mounts := ca.Mounts()
		for _, in := range slices.Sorted(maps.Keys(mounts)) {
			args = append(args, "-v", shell.Quote(mounts[in]+":"+in+":ro"))
		}
		fmt.Fprintln(w, strings.Join(args, " "))
	case o.dotenv, o.githubActions:
		for _, v := range intercept.Vars(proxy, ca.Layout()) {
			fmt.Fprintf(w, "%s=%s\n", v.Name, v.Value)
		}
	default:
		for _, v := range intercept.Vars(proxy, ca.Layout()) {
			fmt.Fprintf(w, "export %s=%s # %s\n", v.Name, shell.Quote(v.Value), v.For)
		}
	}
	return nil
}
