package soak_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
)

// child is an `ipnlab serve` process on a store (with args besides),
// always on the same address, so the listener's verify URL survives its
// restarts.
type child struct {
	binary, addr, store string
	args                []string
	s                   *gexec.Session
}

func (c *child) start() {
	args := append([]string{"serve", "--emulator-addr", c.addr, "--clock", "manual", "--store", c.store,
		"--ack-timeout", "10s", "--log-level", "warn"}, c.args...)
	s, err := gexec.Start(exec.Command(c.binary, args...), GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Eventually(s.Out).WithTimeout(20 * time.Second).Should(gbytes.Say(`ready addr=`))
	c.s = s
}

// kill ends it with SIGKILL: nothing flushed, no shutdown.
func (c *child) kill() {
	c.s.Kill()
	Eventually(c.s).WithTimeout(10 * time.Second).Should(gexec.Exit())
}

// loseLock ends it the way an emulator that lost its PostgreSQL lock ends
// itself: its lock connection is terminated, and it must exit 2 on its
// own (nothing unrecorded sent meanwhile).
func (c *child) loseLock(admin *sql.DB, schema string) {
	var ended int
	Expect(admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
		AND objid = hashtext($1)::oid AND objsubid = 2 AND granted`, schema).Scan(&ended)).To(Succeed())
	Expect(ended).To(Equal(1), "the emulator's lock connection")
	Eventually(c.s).WithTimeout(30 * time.Second).Should(gexec.Exit(2))
}

// notYet reports a send that surely went nowhere and may be sent again:
// the emulator was down, or had lost its store (its message never
// committed, so it never left).
func notYet(err error) bool {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		// The store refused the message's commit (no lock, no server).
		return apiErr.Status == http.StatusInternalServerError && strings.Contains(apiErr.Message, "journal")
	}
	return errors.Is(err, client.ErrUnreachable) && strings.Contains(err.Error(), "connection refused")
}

var _ = Describe("Soak with kill -9", Label("soak"), func() {
	DescribeTable("loses and repeats nothing, planned lifecycle steps included, while the emulator is killed at random moments", func(store string) {
		postgres := store != "sqlite"
		binary, err := gexec.Build("github.com/ipnlab/ipnlab/cmd/ipnlab")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gexec.CleanupBuildArtifacts)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())
		dir := GinkgoT().TempDir()
		emu := &child{binary: binary, addr: addr, store: "sqlite:" + filepath.Join(dir, "emulator.db")}
		var (
			admin  *sql.DB
			schema string
		)
		var cluster *testenv.PostgresCluster
		if postgres {
			if store == "restarts" {
				cluster = testenv.NewPostgresCluster()
				emu.store = cluster.DSN
			} else {
				emu.store = testenv.PostgresSchema("soak_plain")
			}
			admin, err = sql.Open("pgx", emu.store)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(admin.Close)
			u, err := url.Parse(emu.store)
			Expect(err).NotTo(HaveOccurred())
			schema = u.Query().Get("search_path")
		}
		emu.start()
		DeferCleanup(func() { emu.kill() })
		api, err := client.New("http://" + addr)
		Expect(err).NotTo(HaveOccurred())

		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, err := sqlite.Open(filepath.Join(dir, "listener.db"))
		Expect(err).NotTo(HaveOccurred())
		lst, err := listener.NewWithStore(listener.Config{
			VerifyURL: api.VerifyURL(), ReceiverEmails: []string{emulator.DefaultReceiverEmail},
			Customers: []listener.Customer{{ID: "C1", Email: customer}}, Workers: 4, Logger: quiet,
			// Retries outlast a restart of the emulator.
			Verify: listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Attempts: 100, Timeout: 10 * time.Second},
		}, st)
		Expect(err).NotTo(HaveOccurred())
		Expect(lst.Start(context.Background())).To(Succeed())
		g := &gate{next: lst.Handler(), seen: map[uint64]bool{}}
		lsrv := httptest.NewServer(g)
		DeferCleanup(func() { lsrv.Close(); Expect(lst.Close()).To(Succeed()) })
		notify := lsrv.URL + "/ipn/paypal"

		total := soakSize()
		const rounds, workers = 8, 4
		rng := rand.New(rand.NewPCG(7, 11))
		ctx := context.Background()
		var (
			mu        sync.Mutex
			confirmed []string // sends the emulator answered: each must be credited once
			uncertain []string // sends cut by a kill: credited at most once
			plans     []emulator.LifecyclePlan
			kills     int
			lostStore int // lock connection ended, or the database restarted
		)
		perRound := total / rounds
		for round := range rounds {
			// A chargeback lifecycle: five messages over weeks, four of
			// them planned for later clock times.
			plan, err := api.SendLifecycle(ctx, emulator.LifecycleRequest{Name: "chargeback", NotifyURL: notify,
				Params: emulator.Params{PayerEmail: customer, Gross: "60.00"}})
			Expect(err).NotTo(HaveOccurred())
			plans = append(plans, plan)

			killAt := rng.IntN(perRound) // the kill comes after this many sends of the round
			feed := func(k int) {
				switch {
				case k != killAt:
				case cluster != nil && round%2 == 1:
					// The database restarts under load: every connection
					// is cut; the emulator stops on its own, and a new one
					// resumes the store.
					Expect(cluster.Restart()).To(Succeed())
					Eventually(emu.s).WithTimeout(30 * time.Second).Should(gexec.Exit(2))
					lostStore++
					emu.start()
				case postgres && round%2 == 1:
					// Its lock connection dies under load: it stops on its
					// own, and a new one resumes the store.
					emu.loseLock(admin, schema)
					lostStore++
					emu.start()
				default:
					// While other sends are in flight: some are cut.
					emu.kill()
					kills++
					emu.start()
				}
			}
			pool(workers, round*perRound, perRound, feed, func(i int) {
				// Our own txn ids, so that a send cut by a kill can be
				// looked up too.
				txn := fmt.Sprintf("K%016d", i)
				req := emulator.SendRequest{Kind: "web_accept", NotifyURL: notify, Params: emulator.Params{PayerEmail: customer, TxnID: txn}}
				if i%20 == 7 {
					req.Fault = &emulator.FaultRequest{Kind: "status500", Count: 1}
				}
				var err error
				for range 600 { // as a client should: again, if it surely went nowhere
					if _, err = api.SendPayPal(ctx, req); !notYet(err) {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				if err != nil {
					uncertain = append(uncertain, txn)
				} else {
					confirmed = append(confirmed, txn)
				}
				mu.Unlock()
			})
			_, err = api.Advance(ctx, "1m")
			Expect(err).NotTo(HaveOccurred())
		}
		// One more kill, then past every planned step (a chargeback's last
		// comes weeks after the payment) and every retry.
		emu.kill()
		kills++
		emu.start()
		_, err = api.Advance(ctx, "60d")
		Expect(err).NotTo(HaveOccurred())
		idle, cancel := context.WithTimeout(ctx, 2*time.Minute)
		Expect(lst.WaitIdle(idle)).To(Succeed())
		cancel()

		for _, txn := range confirmed {
			p, err := lst.Transaction(ctx, listener.PayPal, txn)
			Expect(err).NotTo(HaveOccurred(), txn)
			Expect(p.Effects).To(HaveLen(1), "txn %s", txn)
		}
		for _, txn := range uncertain {
			p, err := lst.Transaction(ctx, listener.PayPal, txn)
			if err == nil {
				Expect(len(p.Effects)).To(BeNumerically("<=", 1), "txn %s, cut by a kill, credited twice", txn)
			}
		}
		for _, plan := range plans {
			pay := plan.Steps[0].TxnID
			p, err := lst.Transaction(ctx, listener.PayPal, pay)
			Expect(err).NotTo(HaveOccurred(), pay)
			// Credited, reversed, the reversal canceled: every step arrived once.
			Expect(p.Effects).To(HaveLen(3), "chargeback of %s: %+v", pay, p.Effects)
			Expect(p.Net["USD"]).To(Equal("60.00"))
		}
		Expect(len(uncertain)).To(BeNumerically("<", len(confirmed)/10), "most sends went through")
		AddReportEntry("soak with kill -9", fmt.Sprintf("%s: %d messages confirmed, %d cut by %d kills and %d losses of the store (%s), %d chargeback lifecycles (%d planned steps) all delivered once",
			store, len(confirmed), len(uncertain), kills, lostStore, map[string]string{"sqlite": "none", "postgres": "lock connection ended", "restarts": "database restarted"}[store], len(plans), 4*len(plans)))
	},
		Entry("on SQLite", "sqlite"),
		Entry("on PostgreSQL, its lock connection also ended", "postgres"),
		Entry("on a PostgreSQL server that also restarts", "restarts"),
	)
})
