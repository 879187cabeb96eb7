package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/intercept"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/scenarios"
)

// The stacks a listener is written in, each reaching the emulator under
// --intercept with only what `ipnlab ca env` prints. A case names the
// client (testdata/stacks), where it reads its proxy and its CA (the rows
// of docs/ci.md's table, kept equal to these by a spec), and how to take
// each away, for the report to name the cause.
type stackCase struct {
	name              string
	proxyFrom, caFrom string
	needs             []string // commands it runs (.ci/run installs them)
	command           func(dir string) []string
	// noProxy clients read no proxy variable: the route without a proxy
	// is theirs.
	noProxy bool
	// nodeModule is a package the client requires (Debian's node-NAME,
	// found through NODE_PATH as Debian sets it up).
	nodeModule string
	// plainToProxy clients send the whole https:// request to the proxy
	// in the clear (absolute form): they need no CA.
	plainToProxy bool
}

// caVars and proxyVars are what taking a client's CA or its proxy away
// unsets (Java's JAVA_TOOL_OPTIONS loses the matching properties:
// withoutJava).
var caVars = []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PERL_LWP_SSL_CA_FILE", "HTTPS_CA_FILE", "PHP_INI_SCAN_DIR"}

var proxyVars = []string{"HTTPS_PROXY", "https_proxy", "http_proxy", "NODE_OPTIONS", "NODE_USE_ENV_PROXY", "PERL_LWP_ENV_PROXY"}

var stackCases = []stackCase{
	{name: "Go `net/http`", proxyFrom: "`HTTPS_PROXY`", caFrom: "`SSL_CERT_FILE`", needs: []string{"go"},
		command: func(dir string) []string { return []string{filepath.Join(dir, "goclient")} }},
	{name: "curl", proxyFrom: "`https_proxy`", caFrom: "`CURL_CA_BUNDLE`", needs: []string{"curl"},
		command: func(string) []string { return []string{"curl", "-sS", "--fail", "--data-binary", "@-"} }},
	{name: "Python `requests`", proxyFrom: "`HTTPS_PROXY`", caFrom: "`REQUESTS_CA_BUNDLE`", needs: []string{"python3"},
		command: func(dir string) []string { return []string{"python3", filepath.Join(dir, "requests_client.py")} }},
	{name: "Python `urllib`", proxyFrom: "`HTTPS_PROXY`", caFrom: "`SSL_CERT_FILE`", needs: []string{"python3"},
		command: func(dir string) []string { return []string{"python3", filepath.Join(dir, "urllib.py")} }},
	{name: "Node before 24 (`https`, and libraries on its global agent)", proxyFrom: "`NODE_OPTIONS=--require …/node/proxy.cjs`, which tunnels through `HTTPS_PROXY`", caFrom: "`NODE_EXTRA_CA_CERTS`", needs: []string{"node"},
		command: func(dir string) []string { return []string{"node", filepath.Join(dir, "https.js")} }},
	{name: "Node before 24: axios", proxyFrom: "`HTTPS_PROXY`, which axios reads itself", caFrom: "none: axios sends the https:// request to the proxy whole, which answers for PayPal's host", needs: []string{"node"}, nodeModule: "axios", plainToProxy: true,
		command: func(dir string) []string { return []string{"node", filepath.Join(dir, "axios.js")} }},
	{name: "Node before 24: got", proxyFrom: "the preload, as for `https`", caFrom: "`NODE_EXTRA_CA_CERTS`", needs: []string{"node"}, nodeModule: "got",
		command: func(dir string) []string { return []string{"node", filepath.Join(dir, "got.js")} }},
	{name: "PHP curl extension", proxyFrom: "`https_proxy`", caFrom: "`PHP_INI_SCAN_DIR` adds `…/php/ipnlab.ini` (`curl.cainfo` = `${SSL_CERT_FILE}`)", needs: []string{"php"},
		command: func(dir string) []string { return []string{"php", filepath.Join(dir, "curl_ext.php")} }},
	{name: "PHP streams", proxyFrom: "none: the route without a proxy", caFrom: "`PHP_INI_SCAN_DIR` adds `…/php/ipnlab.ini` (`openssl.cafile` = `${SSL_CERT_FILE}`)", needs: []string{"php"}, noProxy: true,
		command: func(dir string) []string { return []string{"php", filepath.Join(dir, "streams.php")} }},
	{name: "Ruby `Net::HTTP`", proxyFrom: "`http_proxy`, even for https", caFrom: "`SSL_CERT_FILE`", needs: []string{"ruby"},
		command: func(dir string) []string { return []string{"ruby", filepath.Join(dir, "net_http.rb")} }},
	{name: "Perl LWP", proxyFrom: "`https_proxy` with `PERL_LWP_ENV_PROXY=1`", caFrom: "`PERL_LWP_SSL_CA_FILE`, `HTTPS_CA_FILE`", needs: []string{"perl"},
		command: func(dir string) []string { return []string{"perl", filepath.Join(dir, "lwp.pl")} }},
	{name: "Java `HttpClient`", proxyFrom: "`JAVA_TOOL_OPTIONS`: `-Dhttps.proxyHost`, `-Dhttps.proxyPort`", caFrom: "`JAVA_TOOL_OPTIONS`: `-Djavax.net.ssl.trustStore=…/java/truststore.p12`", needs: []string{"java"},
		command: func(dir string) []string { return []string{"java", filepath.Join(dir, "Client.java")} }},
}

// debianNodePath is where Debian's node-* packages put their modules.
const debianNodePath = "/usr/share/nodejs"

// stacksTable is docs/ci.md's table of the stacks, from the cases.
func stacksTable() string {
	var b strings.Builder
	b.WriteString("| stack | the proxy from | the CA from |\n|---|---|---|\n")
	for _, c := range stackCases {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.name, c.proxyFrom, c.caFrom)
	}
	return b.String()
}

// stackLab is an intercepting emulator, its CA, a PayPal message's
// postback, and the private name files every client runs with: a
// resolver on loopback where none listens, so that a client that goes
// around the proxy reaches nothing off this machine (its lookup fails at
// once), and, on the route without a proxy, /etc/hosts with PayPal's
// hosts on loopback.
type stackLab struct {
	caDir, clients        string
	resolv, hosts, mapped string
	emu                   *emulator.Server
	ca                    *intercept.CA
	postback              []byte
	vars                  []string // what ca env --dotenv printed
}

func newStackLab() *stackLab {
	if _, err := exec.Command("unshare", "--mount", "true").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			Fail("the stacks spec runs each client with a private /etc/hosts (unshare --mount, as root): " + err.Error())
		}
		Skip("the stacks spec needs root for a private /etc/hosts (unshare --mount): a client going around the proxy must not reach DNS")
	}
	l := &stackLab{caDir: filepath.Join(GinkgoT().TempDir(), "ca"), clients: GinkgoT().TempDir()}
	var err error
	l.ca, err = intercept.LoadOrCreate(l.caDir)
	Expect(err).NotTo(HaveOccurred())
	l.emu, err = emulator.Start(emulator.Config{Clock: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		Intercept: l.ca, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		Expect(l.emu.Shutdown(ctx)).To(Succeed())
	})
	files := GinkgoT().TempDir()
	l.resolv, l.hosts, l.mapped = filepath.Join(files, "resolv.conf"), filepath.Join(files, "hosts"), filepath.Join(files, "hosts-mapped")
	Expect(os.WriteFile(l.resolv, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644)).To(Succeed())
	Expect(os.WriteFile(l.hosts, []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644)).To(Succeed())
	mapped := "127.0.0.1 localhost\n"
	for _, h := range intercept.Hosts {
		mapped += fmt.Sprintf("127.0.0.1 %s\n", h)
	}
	Expect(os.WriteFile(l.mapped, []byte(mapped), 0o644)).To(Succeed())

	// A real message, as a listener would post it back.
	var mu sync.Mutex
	var got []byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = b
		mu.Unlock()
	}))
	DeferCleanup(recv.Close)
	_, err = l.emu.SendPayPal(emulator.SendRequest{NotifyURL: recv.URL, Kind: "web_accept"})
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() []byte { mu.Lock(); defer mu.Unlock(); return got }).WithTimeout(5 * time.Second).ShouldNot(BeNil())
	l.postback = append([]byte("cmd=_notify-validate&"), got...)

	cmd := exec.Command(binary, "ca", "env", "--dotenv", "--emulator-addr", strings.TrimPrefix(l.emu.URL(), "http://"))
	cmd.Env = append(os.Environ(), "IPNLAB_CA_DIR="+l.caDir)
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred())
	l.vars = strings.Split(strings.TrimSpace(string(out)), "\n")
	return l
}

// env is a bare environment (no variable of this machine's that could
// help a client) with vars, less those named in unset.
func (l *stackLab) env(unset []string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + GinkgoT().TempDir(), "LANG=C.UTF-8"}
	for _, kv := range l.vars {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(unset, name) {
			env = append(env, kv)
		}
	}
	return env
}

// post runs c's client with env, posting the postback to PayPal's
// sandbox host, with the private name files (PayPal's hosts on loopback
// when mapped); it returns what the client printed and its error output.
func (l *stackLab) post(c stackCase, env []string, mapped bool) (string, string) {
	for _, n := range c.needs {
		requireCommand(n)
	}
	dir, err := filepath.Abs("testdata/stacks")
	Expect(err).NotTo(HaveOccurred())
	if c.needs[0] == "go" {
		l.buildGoClient(dir)
		dir = l.clients
	}
	if c.nodeModule != "" {
		if _, err := os.Stat(filepath.Join(debianNodePath, c.nodeModule)); err != nil {
			testenv.Missing("CI needs Debian's node-"+c.nodeModule+" (.ci/run installs it)", "no Debian node-"+c.nodeModule+" on this machine")
		}
		env = append(env, "NODE_PATH="+debianNodePath)
	}
	argv := append(c.command(dir), "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr")
	hosts := l.hosts
	if mapped {
		hosts = l.mapped
	}
	wrapped := append([]string{"--mount", "sh", "-c", `mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`, hosts, l.resolv}, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", wrapped...)
	cmd.Env, cmd.Stdin = env, bytes.NewReader(l.postback)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	return stdout.String(), stderr.String()
}

func (l *stackLab) buildGoClient(dir string) {
	if _, err := os.Stat(filepath.Join(l.clients, "goclient")); err == nil {
		return
	}
	path, err := gexec.Build(filepath.Join(dir, "goclient"))
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Rename(path, filepath.Join(l.clients, "goclient"))).To(Succeed())
}

// story is what the report says of a message never posted back, from
// what the proxy saw since start.
func (l *stackLab) story(start time.Time) string {
	traffic, ok := l.emu.ProxyTraffic(start)
	Expect(ok).To(BeTrue())
	in := &scenarios.Intercept{ProxyURL: l.emu.URL(), CA: l.ca.CertPath()}
	return in.Story(traffic, 0, "since it was delivered")
}

// Java reads its trust store and its proxy from JAVA_TOOL_OPTIONS: taking
// one away drops those properties alone.
var (
	javaTrust = regexp.MustCompile(` ?-Djavax\.net\.ssl\.[A-Za-z]+=\S+`)
	javaProxy = regexp.MustCompile(` ?-Dhttps?\.(proxyHost|proxyPort|nonProxyHosts)=\S+`)
)

// withoutJava is env with the properties that match dropped from
// JAVA_TOOL_OPTIONS.
func withoutJava(env []string, properties *regexp.Regexp) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "JAVA_TOOL_OPTIONS=") {
			kv = properties.ReplaceAllString(kv, "")
		}
		out = append(out, kv)
	}
	return out
}

var _ = Describe("Every client stack reaches the emulator under --intercept with only what ipnlab ca env prints", Ordered, ContinueOnFailure, func() {
	var l *stackLab
	BeforeAll(func() { l = newStackLab() })

	for _, c := range stackCases {
		if c.noProxy {
			continue
		}
		It(c.name+" gets VERIFIED through the proxy", func() {
			out, errOut := l.post(c, l.env(nil), false)
			Expect(out).To(Equal("VERIFIED"), "stderr: %s", errOut)
		})

		It(c.name+" without its CA: the report says TLS failed and which CA to trust", func() {
			start := time.Now()
			env := l.env(caVars)
			if c.needs[0] == "java" {
				env = withoutJava(env, javaTrust)
			}
			out, errOut := l.post(c, env, false)
			if c.plainToProxy {
				Expect(out).To(Equal("VERIFIED"), "no TLS on its road: stderr %s", errOut)
				return
			}
			Expect(out).NotTo(Equal("VERIFIED"))
			Eventually(func() string { return l.story(start) }).WithTimeout(5 * time.Second).Should(
				MatchRegexp(`^\d+ connection\(s\) to ipnpb\.sandbox\.paypal\.com:443 reached ipnlab's proxy since it was delivered, but TLS failed \(the client .*\): ` +
					`the listener's HTTP client does not trust ipnlab's CA \(` + regexp.QuoteMeta(l.ca.CertPath()) + `\); give it what ` + "`ipnlab ca env`" + ` prints for its stack`))
		})

		It(c.name+" without its proxy variables: the report says no connection reached the proxy, and where the fix is", func() {
			start := time.Now()
			env := l.env(proxyVars)
			if c.needs[0] == "java" {
				env = withoutJava(env, javaProxy)
			}
			out, _ := l.post(c, env, false)
			Expect(out).NotTo(Equal("VERIFIED"), "PayPal's hosts do not resolve here")
			Expect(l.story(start)).To(
				HavePrefix("no connection reached ipnlab's proxy (" + l.emu.URL() + ") since it was delivered: the listener's HTTP client ignores its proxy variables"))
		})
	}

	It("PHP streams, which read no proxy variable, get VERIFIED on the route without a proxy: PayPal's host on loopback, the verifier on 443, the CA only", func() {
		ln, err := net.Listen("tcp", "127.0.0.1:443")
		Expect(err).NotTo(HaveOccurred(), "the route without a proxy serves port 443")
		tlsVerifier := intercept.ServeTLS(l.ca, ln, l.emu.PayPal())
		defer tlsVerifier.Close()
		for _, c := range stackCases {
			if !c.noProxy {
				continue
			}
			out, errOut := l.post(c, l.env(proxyVars), true)
			Expect(out).To(Equal("VERIFIED"), "%s: stderr: %s", c.name, errOut)
			out, _ = l.post(c, l.env(append(append([]string{}, proxyVars...), caVars...)), true)
			Expect(out).NotTo(Equal("VERIFIED"), "%s: without the CA", c.name)
		}
		// A client that honours the proxy goes the same way without it.
		curl := stackCases[1]
		Expect(curl.name).To(Equal("curl"))
		out, errOut := l.post(curl, l.env(proxyVars), true)
		Expect(out).To(Equal("VERIFIED"), "stderr: %s", errOut)
	})
})

var _ = Describe("docs/ci.md's table of stacks", func() {
	It("is made of the stacks spec's cases: each row is a stack that spec runs", func() {
		doc, err := os.ReadFile("../../docs/ci.md")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(doc)).To(ContainSubstring("<!-- stacks: made from cmd/ipnlab/stacks_test.go -->\n" + stacksTable() + "<!-- /stacks -->"))
	})
})
