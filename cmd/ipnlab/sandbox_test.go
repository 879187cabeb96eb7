package main_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"
)

// runEnv runs ipnlab with env added to the environment.
func runEnv(env []string, args ...string) *gexec.Session {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	s, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Eventually(s).WithTimeout(20 * time.Second).Should(gexec.Exit())
	return s
}

var _ = Describe("serve --admin-token: a sandbox of accounts", func() {
	It("is managed with ipnlab accounts; each team sends and reads with its own token", func() {
		s, err := gexec.Start(exec.Command(binary, "serve", "--emulator-addr", "127.0.0.1:0", "--clock", "manual", "--admin-token", "adm"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { s.Terminate().Wait(10 * time.Second) })
		Eventually(s.Out).WithTimeout(readyWait).Should(gbytes.Say(`ipnlab sandbox ready addr=(\S+) clock=manual verify=paypal accounts=0`))
		base := "http://" + string(regexp.MustCompile(`addr=(\S+)`).FindSubmatch(s.Out.Contents())[1])

		var hits atomic.Int32
		ack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
		DeferCleanup(ack.Close)
		adminEnv := []string{"IPNLAB_ADMIN_TOKEN=adm", "IPNLAB_EMULATOR=" + base}

		Expect(runEnv([]string{"IPNLAB_EMULATOR=" + base}, "accounts", "list").Err).To(gbytes.Say("set IPNLAB_ADMIN_TOKEN"))
		created := runEnv(adminEnv, "accounts", "create", "team-a", "--listener", ack.URL+"/ipn")
		Expect(created).To(gexec.Exit(0))
		token := regexp.MustCompile(`token (\S+)`).FindSubmatch(created.Out.Contents())
		Expect(token).NotTo(BeNil())
		teamA := []string{"IPNLAB_API_TOKEN=" + string(token[1]), "IPNLAB_EMULATOR=" + base}

		Expect(runEnv(teamA, "send", "paypal", "--kind", "web_accept")).To(gexec.Exit(0))
		Expect(hits.Load()).To(BeEquivalentTo(1), "delivered to the account's IPN URL")
		Expect(runEnv(teamA, "history").Out).To(gbytes.Say(`web_accept`))
		Expect(runEnv([]string{"IPNLAB_API_TOKEN=adm", "IPNLAB_EMULATOR=" + base}, "history").Err).To(gbytes.Say("wrong API token"))

		list := runEnv(adminEnv, "accounts", "list")
		Expect(list).To(gexec.Exit(0))
		Expect(list.Out).To(gbytes.Say(`(A-\S+)\s+team-a\s+team-a@business.example.com`))
		id := regexp.MustCompile(`(A-\S+)\s+team-a`).FindSubmatch(list.Out.Contents())[1]

		Expect(runEnv(adminEnv, "accounts", "rotate-token", string(id))).To(gexec.Exit(0))
		Expect(runEnv(teamA, "history").Err).To(gbytes.Say("wrong API token"))
		Expect(runEnv(adminEnv, "accounts", "delete", string(id)).Out).To(gbytes.Say("deleted"))
		Expect(runEnv(adminEnv, "accounts", "delete", string(id)).Err).To(gbytes.Say("no such account"))
	})

	It("refuses the flags that belong to one account", func() {
		s := run("serve", "--admin-token", "adm", "--listener", "http://127.0.0.1:9/", "--api-token", "x")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`with --admin-token \(a sandbox of accounts\):`))
		Expect(s.Err).To(gbytes.Say(`--api-token: each account has its own token`))
		Expect(s.Err).To(gbytes.Say(`--listener: each account sets its IPN URL`))
	})
})
