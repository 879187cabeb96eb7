package main_test

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/ipnlab/ipnlab/internal/testenv"
)

// startServe starts `ipnlab serve` with args and returns it with its base URL.
func startServe(args ...string) (*gexec.Session, string) {
	all := append([]string{"serve", "--emulator-addr", "127.0.0.1:0", "--clock", "manual", "--log-level", "info"}, args...)
	s, err := gexec.Start(exec.Command(binary, all...), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Eventually(s.Out).WithTimeout(readyWait).Should(gbytes.Say(`ipnlab emulator ready addr=(\S+)`))
	addr := regexp.MustCompile(`addr=(\S+)`).FindSubmatch(s.Out.Contents())[1]
	return s, "http://" + string(addr)
}

// onlyMessage returns the one message in an emulator's History, in full.
func onlyMessage(base string) map[string]any {
	var list struct {
		Messages []map[string]any `json:"messages"`
	}
	getJSON(base+"/api/v1/messages", &list)
	Expect(list.Messages).To(HaveLen(1))
	var m map[string]any
	getJSON(base+"/api/v1/messages/"+list.Messages[0]["id"].(string), &m)
	return m
}

func getJSON(url string, v any) {
	resp, err := http.Get(url)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(200))
	Expect(json.NewDecoder(resp.Body).Decode(v)).To(Succeed())
}

var _ = Describe("ipnlab serve --store", func() {
	var (
		store    string
		requests atomic.Int32
		hang     chan struct{}
		arrived  chan struct{}
		listener *httptest.Server
	)
	BeforeEach(func() {
		store = "sqlite:" + filepath.Join(GinkgoT().TempDir(), "emulator.db")
		requests.Store(0)
		hang, arrived = make(chan struct{}), make(chan struct{}, 4)
		// The first delivery hangs until the test lets it go; later ones ack.
		listener = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if requests.Add(1) == 1 {
				arrived <- struct{}{}
				select {
				case <-hang:
				case <-r.Context().Done():
				}
			}
			w.WriteHeader(200)
		}))
		DeferCleanup(func() {
			close(hang)
			listener.Close()
		})
	})

	// killAndResume kills serve on store with a delivery in flight,
	// restarts it and returns it once the retry went.
	killAndResume := func(store string) *gexec.Session {
		serve, base := startServe("--store", store, "--ack-timeout", "1m")
		send, err := gexec.Start(exec.Command(binary, "send", "paypal", "--emulator", base, "--listener", listener.URL, "--kind", "web_accept"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(arrived).WithTimeout(10 * time.Second).Should(Receive())
		serve.Kill()
		Eventually(serve).Should(gexec.Exit())
		Eventually(send).WithTimeout(10 * time.Second).Should(gexec.Exit())

		serve, base = startServe("--store", store)
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Eventually(serve.Err).Should(gbytes.Say(`resumed from the store" messages=1 queued_attempts=1`))
		m := onlyMessage(base)
		Expect(m["status"]).To(Equal("Retrying"))
		Expect(m["attempts"]).To(HaveLen(1))
		first := m["attempts"].([]any)[0].(map[string]any)
		Expect(first["error"]).To(ContainSubstring("interrupted"))
		created, _ := time.Parse(time.RFC3339, m["created"].(string))
		Expect(m["next_attempt"]).To(Equal(created.Add(10 * time.Second).Format(time.RFC3339)))
		Expect(requests.Load()).To(BeEquivalentTo(1), "nothing is re-sent on start")

		Expect(run("clock", "advance", "10s", "--emulator", base)).To(gexec.Exit(0))
		m = onlyMessage(base)
		Expect(m["status"]).To(Equal("Sent"))
		Expect(m["attempts"]).To(HaveLen(2))
		Expect(requests.Load()).To(BeEquivalentTo(2), "one retry, not two")
		return serve
	}

	It("after kill -9 with a delivery in flight, records it as interrupted and resumes its retry at the scheduled clock time", func() {
		killAndResume(store)
	})

	It("keeps that promise on PostgreSQL, logs the URL without its password, and refuses a second emulator on the same store", func() {
		dsn := testenv.PostgresSchema("serve")
		serve := killAndResume(dsn)
		Expect(string(serve.Err.Contents())).To(ContainSubstring("[redacted]@127.0.0.1"))
		password := regexp.MustCompile(`://[^:]+:([^@]+)@`).FindStringSubmatch(dsn)[1]
		Expect(string(serve.Err.Contents())).NotTo(ContainSubstring(":" + password + "@"))
		second := run("serve", "--store", dsn, "--emulator-addr", "127.0.0.1:0")
		Expect(second).To(gexec.Exit(2))
		Expect(second.Err).To(gbytes.Say("journal is in use by another emulator"))
		Expect(run("backup", "--store", dsn, filepath.Join(GinkgoT().TempDir(), "copy.db")).Err).To(gbytes.Say("back a PostgreSQL store up with pg_dump"))
	})

	It("stops, exiting 2, when its PostgreSQL lock connection dies (a restart, a failover), and sends nothing the store did not record", func() {
		dsn := testenv.PostgresSchema("lostlock")
		u, err := url.Parse(dsn)
		Expect(err).NotTo(HaveOccurred())
		serve, base := startServe("--store", dsn, "--ack-timeout", "1m")
		send, err := gexec.Start(exec.Command(binary, "send", "paypal", "--emulator", base, "--listener", listener.URL, "--kind", "web_accept"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { send.Kill(); Eventually(send).Should(gexec.Exit()) })
		Eventually(arrived).WithTimeout(10 * time.Second).Should(Receive())
		admin, err := sql.Open("pgx", dsn)
		Expect(err).NotTo(HaveOccurred())
		defer admin.Close()
		var killed int
		Expect(admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks
			WHERE locktype = 'advisory' AND objid = hashtext($1)::oid AND objsubid = 2 AND granted AND pid <> pg_backend_pid()`,
			u.Query().Get("search_path")).Scan(&killed)).To(Succeed())
		Expect(killed).To(Equal(1), "the emulator's lock connection")
		Eventually(serve).WithTimeout(30 * time.Second).Should(gexec.Exit(2))
		Expect(serve.Err).To(gbytes.Say("lost the store's writer lock"))
		// Its retry of the hanging delivery never left: one request only.
		Consistently(requests.Load).Should(BeEquivalentTo(1))

		// The store is free: the next emulator takes it and resumes.
		next, base := startServe("--store", dsn)
		DeferCleanup(func() {
			next.Signal(syscall.SIGTERM)
			Eventually(next).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Eventually(next.Err).Should(gbytes.Say(`resumed from the store" messages=1`))
		Expect(onlyMessage(base)["status"]).NotTo(BeEmpty())
	})

	It("on SIGTERM lets the running delivery finish within --shutdown-timeout, keeps it, and exits 0", func() {
		serve, base := startServe("--store", store, "--shutdown-timeout", "20s")
		send, err := gexec.Start(exec.Command(binary, "send", "paypal", "--emulator", base, "--listener", listener.URL, "--kind", "web_accept"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(arrived).WithTimeout(10 * time.Second).Should(Receive())
		serve.Signal(syscall.SIGTERM)
		Consistently(serve).WithTimeout(300*time.Millisecond).ShouldNot(gexec.Exit(), "waits for the delivery")
		hang <- struct{}{}
		Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		Eventually(send).WithTimeout(10 * time.Second).Should(gexec.Exit())

		serve, base = startServe("--store", store)
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		m := onlyMessage(base)
		Expect(m["status"]).To(Equal("Sent"))
		Expect(m["attempts"]).To(HaveLen(1))
	})

	It("keeps both lifecycles planned on either side of a restart at the same clock times (a second overwrote the first)", func() {
		var got atomic.Int32
		acks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
		DeferCleanup(acks.Close)
		lifecycle := func(base string) {
			GinkgoHelper()
			Expect(run("send", "paypal", "--emulator", base, "--listener", acks.URL, "--lifecycle", "echeck_cleared", "--seed", "7")).To(gexec.Exit(0))
		}
		serve, base := startServe("--store", store)
		lifecycle(base)
		serve.Signal(syscall.SIGTERM)
		Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))

		// The manual clock resumes where it was: the second lifecycle's
		// later step falls at the same clock time as the first's.
		serve, base = startServe("--store", store)
		lifecycle(base)
		Expect(got.Load()).To(BeEquivalentTo(2), "each lifecycle's first step (pending)")
		serve.Signal(syscall.SIGTERM)
		Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))

		serve, base = startServe("--store", store)
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Eventually(serve.Err).Should(gbytes.Say(`resumed from the store.* scheduled=2`))
		Expect(run("clock", "advance", "2000h", "--emulator", base)).To(gexec.Exit(0))
		Eventually(got.Load).Should(BeEquivalentTo(4), "each lifecycle's later step (completed)")
	})

	It("refuses a bad --store, and a journal another emulator holds", func() {
		s := run("serve", "--store", "mysql://x")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--store "mysql://x": want memory, sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB`))

		serve, _ := startServe("--store", store)
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		s = run("serve", "--emulator-addr", "127.0.0.1:0", "--store", store)
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`journal is in use by another process`))
	})
})

var _ = Describe("ipnlab backup", func() {
	It("copies a running emulator's store, and serve restores from the copy; a name with ? and # stays a name", func() {
		dir := GinkgoT().TempDir()
		path := filepath.Join(dir, "we?ird#.db")
		listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
		DeferCleanup(listener.Close)
		serve, base := startServe("--store", "sqlite:"+path)
		DeferCleanup(func() { serve.Kill().Wait() })
		send := run("send", "paypal", "--emulator", base, "--listener", listener.URL)
		Expect(send).To(gexec.Exit(0))
		Expect(path).To(BeAnExistingFile())

		out := filepath.Join(dir, "copy.db")
		s := run("backup", "--store", "sqlite:"+path, out)
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say("backed up"))
		again := run("backup", "--store", "sqlite:"+path, out)
		Expect(again).To(gexec.Exit(2))
		Expect(again.Err).To(gbytes.Say("exists"))
		Expect(run("backup", "--store", "memory", out)).To(gexec.Exit(2))

		restored, rbase := startServe("--store", "sqlite:"+out)
		DeferCleanup(func() { restored.Kill().Wait() })
		Expect(onlyMessage(rbase)["status"]).To(Equal("Retrying"))
	})
})

var _ = Describe("ipnlab serve on a shared network", func() {
	It("refuses a non-loopback address without an API token", func() {
		s := run("serve", "--emulator-addr", "0.0.0.0:0")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(regexp.QuoteMeta(`--emulator-addr 0.0.0.0:0: not a loopback address: set an API token (--api-token or IPNLAB_API_TOKEN)`)))
	})

	It("requires the token on the control API (never logging it), and the CLI sends it from IPNLAB_API_TOKEN", func() {
		const token = "s3cret-token-for-the-spec"
		cmd := exec.Command(binary, "serve", "--emulator-addr", "127.0.0.1:0", "--clock", "manual", "--log-level", "debug")
		cmd.Env = append(cmd.Environ(), "IPNLAB_API_TOKEN="+token)
		serve, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(serve.Out).WithTimeout(readyWait).Should(gbytes.Say(`ready addr=(\S+)`))
		base := "http://" + string(regexp.MustCompile(`addr=(\S+)`).FindSubmatch(serve.Out.Contents())[1])

		resp, err := http.Get(base + "/api/v1/messages")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(401))
		resp, err = http.Get(base + "/healthz")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(200), "health stays open for probes")

		without := run("history", "--emulator", base)
		Expect(without).To(gexec.Exit(2))
		Expect(without.Err).To(gbytes.Say(`needs its API token`))
		withToken := exec.Command(binary, "history", "--emulator", base)
		withToken.Env = append(withToken.Environ(), "IPNLAB_API_TOKEN="+token)
		h, err := gexec.Start(withToken, GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(h).WithTimeout(10 * time.Second).Should(gexec.Exit(0))

		serve.Signal(syscall.SIGTERM)
		Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		Expect(string(serve.Err.Contents()) + string(serve.Out.Contents())).NotTo(ContainSubstring(token))
	})
})

var _ = Describe("ipnlab healthz (the image's readiness check)", func() {
	It("exits 0 on a ready emulator, 1 when nothing answers, 2 on a bad URL", func() {
		serve, base := startServe()
		DeferCleanup(func() {
			serve.Signal(syscall.SIGTERM)
			Eventually(serve).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
		})
		Expect(run("healthz", base+"/healthz")).To(gexec.Exit(0))
		closed := httptest.NewServer(http.NotFoundHandler())
		closedURL := closed.URL
		closed.Close()
		s := run("healthz", closedURL+"/healthz")
		Expect(s).To(gexec.Exit(1))
		Expect(s.Err).To(gbytes.Say("connection refused"))
		Expect(run("healthz", "ftp://x")).To(gexec.Exit(2))
	})
})

var _ = Describe("ipnlab send on a bare serve", func() {
	It("says the message waits because no IPN URL is set, and which flag or command sets one", func() {
		s, base := startServe()
		DeferCleanup(func() { s.Terminate().Wait(10 * time.Second) })
		out := run("send", "paypal", "--emulator", base, "--kind", "web_accept", "--wait=2s")
		Expect(out).To(gexec.Exit(1))
		Expect(out.Out).To(gbytes.Say(`not sent: no IPN URL was set when it was created \(Held until resent\): set one with serve --listener URL or ipnlab profile --listener URL --on, or send with --listener URL`))
	})
})

var _ = Describe("A flag whose value is optional", func() {
	It("given its value after a space, is told to write it after \"=\"", func() {
		s := run("send", "paypal", "--wait", "2s", "--emulator", "http://127.0.0.1:9")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`unexpected argument "2s" \(if it is --wait's value, write --wait=2s: its value is optional, so it comes after "="\)`))
	})
})

var _ = Describe("Replay lines", func() {
	It("name the binary as the PATH finds it, or by the path it was run as, so that they run as printed", func() {
		idle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		DeferCleanup(idle.Close)
		args := []string{"conform", "--listener", idle.URL, "--emulator-addr", "127.0.0.1:0", "--focus", "PP-POSTBACK-SENT", "--postback-wait", "300ms"}
		for _, tc := range []struct{ path, want string }{
			{filepath.Dir(binary) + ":" + os.Getenv("PATH"), "replay: ipnlab conform --focus PP-POSTBACK-SENT"},
			{os.Getenv("PATH"), "replay: " + binary + " conform --focus PP-POSTBACK-SENT"},
		} {
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), "PATH="+tc.path)
			s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
			Expect(err).NotTo(HaveOccurred())
			Eventually(s).WithTimeout(20 * time.Second).Should(gexec.Exit(1))
			Expect(string(s.Out.Contents())).To(ContainSubstring(tc.want))
		}
	})
})

var _ = Describe("A slip on the command line", func() {
	It("is named, with what was likely meant: a provider, a parameter, a kind, a charset", func() {
		s := run("send", "paypl", "--kind", "web_accept")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`ipnlab send: unknown provider "paypl" \(did you mean "paypal"\?\): want paydo or paypal`))
		s = run("send", "paypl")
		Expect(s).To(gexec.Exit(2), "an unknown word is no request for help")

		s = run("send", "paypal", "--kind", "web_accept", "--param", "first_name=José", "--emulator", "http://127.0.0.1:9")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`--param first_name: not a parameter \(they are gross, .*\); to set a message field such as first_name, use --set first_name=José`))
		s = run("send", "paypal", "--kind", "web_accept", "--param", "gros=5", "--emulator", "http://127.0.0.1:9")
		Expect(s.Err).To(gbytes.Say(`--param gros: not a parameter \(did you mean "gross"\?\)`))

		serve, base := startServe()
		DeferCleanup(func() { serve.Terminate().Wait(10 * time.Second) })
		s = run("send", "paypal", "--emulator", base, "--kind", "web_acept")
		Expect(s.Err).To(gbytes.Say(`unknown kind "web_acept" \(did you mean "web_accept"\?\)`))
		s = run("send", "paypal", "--emulator", base, "--kind", "web_accept", "--charset", "latin9")
		Expect(s.Err).To(gbytes.Say(`charset "latin9": unknown charset \(did you mean "Latin-9"\?\)`))
	})
})
