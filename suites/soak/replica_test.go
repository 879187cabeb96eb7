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
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/listener"
	"github.com/ipnlab/ipnlab/listener/store/sqlite"
)

// failFirst answers 500 to the first delivery of each message (by its
// txn_id) and passes the others to next.
type failFirst struct {
	next http.Handler
	mu   sync.Mutex
	seen map[string]bool
	got  map[string]int // deliveries received, by txn_id
}

// received is how many deliveries of txn reached the listener.
func (f *failFirst) received(txn string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[txn]
}

func (f *failFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q, _ := url.ParseQuery(string(body))
	txn := q.Get("txn_id")
	f.mu.Lock()
	first := !f.seen[txn]
	f.seen[txn] = true
	if f.got == nil {
		f.got = map[string]int{}
	}
	f.got[txn]++
	f.mu.Unlock()
	if first {
		http.Error(w, "first delivery refused", http.StatusInternalServerError)
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	f.next.ServeHTTP(w, r)
}

// wentNowhere reports a send that surely reached no leader: refused by a
// standby that knows of none, by a leader that lost its lock, or a
// replica that was down.
func wentNowhere(err error) bool {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		// A leader that lost its store (its lock, or the server) journals
		// nothing, and sends only what it journaled.
		return apiErr.Status == http.StatusServiceUnavailable && strings.Contains(apiErr.Message, "no replica leads yet") ||
			apiErr.Status == http.StatusInternalServerError && strings.Contains(apiErr.Message, "journal")
	}
	return errors.Is(err, client.ErrUnreachable) && strings.Contains(err.Error(), "connection refused")
}

// fullHistory is a replica's History, every page.
func fullHistory(ctx context.Context, c *client.Client) ([]api.Summary, error) {
	var all []api.Summary
	for {
		page, total, err := c.History(ctx, url.Values{"limit": {"10000"}, "offset": {fmt.Sprint(len(all))}})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(all) >= total || len(page) == 0 {
			return all, nil
		}
	}
}

// leaderOf is the replica leading now (nil: none): a standby's /healthz
// says so, the leader's is its emulator's.
func leaderOf(replicas []*child) *child {
	c := &http.Client{Timeout: 500 * time.Millisecond}
	for _, r := range replicas {
		resp, err := c.Get("http://" + r.addr + "/healthz")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), `"role": "standby"`) && !strings.Contains(string(body), `"role":"standby"`) {
			return r
		}
	}
	return nil
}

// replicaSoakSize is how many messages go through the replicas:
// IPNLAB_SOAK_REPLICA_MESSAGES (make soak: 5,000), else 500.
func replicaSoakSize() int {
	n, err := strconv.Atoi(os.Getenv("IPNLAB_SOAK_REPLICA_MESSAGES"))
	if err != nil || n <= 0 {
		return 500
	}
	return n
}

var _ = Describe("Three replicas over PostgreSQL with kill -9, a lost lock, a database restart and a frozen leader", Label("soak"), func() {
	It("give every message exactly the attempts its schedule gives, answer every postback against its message, and show the same History from each", func() {
		// A server of its own: the soak restarts it.
		cluster := testenv.NewPostgresCluster()
		dsn := cluster.DSN
		binary, err := gexec.Build("github.com/ipnlab/ipnlab/cmd/ipnlab")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gexec.CleanupBuildArtifacts)
		var replicas []*child
		var clients []*client.Client
		for range 3 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			addr := ln.Addr().String()
			Expect(ln.Close()).To(Succeed())
			c := &child{binary: binary, addr: addr, store: dsn, args: []string{"--replica"}}
			c.start()
			DeferCleanup(func() { c.kill() })
			replicas = append(replicas, c)
			cl, err := client.New("http://" + addr)
			Expect(err).NotTo(HaveOccurred())
			clients = append(clients, cl)
		}
		ctx := context.Background()
		Eventually(func() error { return clients[0].Health(ctx) }).Should(Succeed())

		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, err := sqlite.Open(filepath.Join(GinkgoT().TempDir(), "listener.db"))
		Expect(err).NotTo(HaveOccurred())
		// Postbacks go to the replicas in turn, any of which may be
		// killed: verification retries outlast a failover.
		var turn atomic.Int64
		spread := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			target, _ := url.Parse(clients[turn.Add(1)%int64(len(clients))].URL())
			httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
		}))
		DeferCleanup(spread.Close)
		lst, err := listener.NewWithStore(listener.Config{
			VerifyURL: spread.URL + "/cgi-bin/webscr", ReceiverEmails: []string{emulator.DefaultReceiverEmail},
			Customers: []listener.Customer{{ID: "C1", Email: customer}}, Workers: 4, Logger: quiet,
			Verify: listener.VerifyConfig{Backoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Attempts: 100, Timeout: 10 * time.Second},
		}, st)
		Expect(err).NotTo(HaveOccurred())
		Expect(lst.Start(context.Background())).To(Succeed())
		gate := &failFirst{next: lst.Handler(), seen: map[string]bool{}}
		lsrv := httptest.NewServer(gate)
		DeferCleanup(func() { lsrv.Close(); Expect(lst.Close()).To(Succeed()) })
		notify := lsrv.URL + "/ipn/paypal"

		total := replicaSoakSize()
		const rounds, workers = 6, 4
		perRound := total / rounds
		rng := rand.New(rand.NewPCG(3, 5))
		var (
			mu        sync.Mutex
			confirmed = map[string]string{} // txn -> message ID, sends a replica answered
			uncertain []string
			kills     int
			freezes   int
			lostLocks int
			restarts  int
		)
		admin, err := sql.Open("pgx", dsn)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(admin.Close)
		schema := "public"
		for round := range rounds {
			killAt := rng.IntN(perRound)
			victim := replicas[rng.IntN(len(replicas))]
			feed := func(k int) {
				switch {
				case k != killAt:
				case round == rounds-1:
					// The database restarts: every replica's connections
					// are cut; one leads again once it is back.
					Expect(cluster.Restart()).To(Succeed())
					restarts++
				case round == 1:
					// The leader's lock connection dies (a database
					// restart or a failover would do the same).
					var ended int
					Expect(admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
						AND objid = hashtext($1)::oid AND objsubid = 2 AND granted`, schema).Scan(&ended)).To(Succeed())
					lostLocks += ended
				case round == rounds/2:
					// SIGSTOP the leader: its connection and lock stay
					// alive; a standby takes over once its lease lapses,
					// and it wakes to find itself deposed.
					var frozen *child
					Eventually(func() *child { frozen = leaderOf(replicas); return frozen }).WithTimeout(30 * time.Second).ShouldNot(BeNil())
					Expect(frozen.s.Command.Process.Signal(syscall.SIGSTOP)).To(Succeed())
					Eventually(func() *child { return leaderOf(replicas) }).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).
						Should(SatisfyAll(Not(BeNil()), Not(BeIdenticalTo(frozen))), "a standby takes over from the frozen leader")
					Expect(frozen.s.Command.Process.Signal(syscall.SIGCONT)).To(Succeed())
					freezes++
				default:
					victim.kill()
					kills++
					victim.start()
				}
			}
			pool(workers, round*perRound, perRound, feed, func(i int) {
				txn := fmt.Sprintf("R%016d", i)
				req := api.SendRequest{Kind: "web_accept", NotifyURL: notify, Params: api.Params{PayerEmail: customer, TxnID: txn}}
				// As a client should: a send that surely went nowhere (a
				// standby with no leader yet, a replica that is down) is
				// sent again, to the next replica; one cut in flight is not.
				var v api.MessageView
				var err error
				for try := range 100 {
					if v, err = clients[(i+try)%len(clients)].SendPayPal(ctx, req); !wentNowhere(err) {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				if err != nil {
					uncertain = append(uncertain, txn)
				} else {
					confirmed[txn] = v.ID
				}
				mu.Unlock()
			})
			// The failed first deliveries' retries fall 10 s later; a
			// failover may be under way, so ask until a leader answers.
			Eventually(func() error { _, err := clients[round%len(clients)].Advance(ctx, "1m"); return err }).WithTimeout(30 * time.Second).Should(Succeed())
		}
		Eventually(func() error { _, err := clients[0].Advance(ctx, "5d"); return err }).WithTimeout(30 * time.Second).Should(Succeed())
		idle, cancel := context.WithTimeout(ctx, 3*time.Minute)
		Expect(lst.WaitIdle(idle)).To(Succeed())
		cancel()

		interrupted := 0
		for txn, id := range confirmed {
			var m api.MessageView
			Eventually(func() error { m, err = clients[0].Message(ctx, id); return err }).Should(Succeed())
			Expect(m.TxnID).To(Equal(txn))
			Expect(m.Status).To(BeEquivalentTo("Sent"), "message %s (%s)", id, txn)
			// The schedule: the listener refuses the first delivery that
			// reaches it, the retry is acked. An attempt cut by a kill is
			// recorded as interrupted and retried (the refused one may be
			// it, when the kill came before its answer was recorded).
			acked, refused, cut := 0, 0, 0
			for i, a := range m.Attempts {
				Expect(a.Number).To(Equal(i+1), "message %s: attempts numbered in order, none lost or repeated", id)
				switch {
				case a.Acked:
					acked++
					Expect(i).To(Equal(len(m.Attempts)-1), "message %s: nothing after the ack", id)
				case a.StatusCode == http.StatusInternalServerError:
					refused++
				case strings.Contains(a.Error, "interrupted"):
					cut++
				default:
					Fail(fmt.Sprintf("message %s: attempt %d is neither refused, interrupted nor acked: %+v", id, a.Number, a))
				}
			}
			interrupted += cut
			// Every delivery that reached the listener is in History: a
			// deposed or zombie leader sent none the store does not show.
			Expect(gate.received(txn)).To(BeNumerically("<=", acked+refused+cut), "message %s: the listener got deliveries History does not show", id)
			Expect(acked).To(Equal(1), "message %s acked once", id)
			Expect(refused).To(BeNumerically("<=", 1), "message %s: the listener refuses one delivery", id)
			Expect(refused+cut).To(BeNumerically(">=", 1), "message %s: its refused first delivery is recorded", id)
			Expect(m.Postbacks).NotTo(BeEmpty(), "message %s was verified", id)
			for _, pb := range m.Postbacks {
				Expect(pb.Verdict.MessageID).To(Equal(id))
				Expect(string(pb.Verdict.Result)).To(Equal("VERIFIED"))
			}
			p, err := lst.Transaction(ctx, listener.PayPal, txn)
			Expect(err).NotTo(HaveOccurred(), txn)
			Expect(p.Effects).To(HaveLen(1), "txn %s credited once", txn)
		}
		for _, txn := range uncertain {
			if p, err := lst.Transaction(ctx, listener.PayPal, txn); err == nil {
				Expect(len(p.Effects)).To(BeNumerically("<=", 1), "txn %s, cut by a kill, credited twice", txn)
			}
		}
		var histories [][]api.Summary
		for _, cl := range clients {
			var h []api.Summary
			Eventually(func() error { h, err = fullHistory(ctx, cl); return err }).Should(Succeed())
			histories = append(histories, h)
		}
		Expect(histories[1]).To(Equal(histories[0]), "History differs between replicas")
		Expect(histories[2]).To(Equal(histories[0]), "History differs between replicas")
		Expect(len(uncertain)).To(BeNumerically("<", len(confirmed)/5), "most sends went through: %d confirmed, %d cut by %d kills", len(confirmed), len(uncertain), kills)
		Expect(freezes).To(Equal(1), "the leader was frozen once")
		Expect(lostLocks).To(Equal(1), "the leader's lock connection was ended once")
		Expect(restarts).To(Equal(1), "the database restarted once")
		AddReportEntry("replicas with kill -9, a lost lock, a database restart and SIGSTOP", fmt.Sprintf("%d messages confirmed, %d cut by %d kills, %d lost lock, %d database restart and %d freeze of the leader, %d attempts interrupted and retried; History the same from 3 replicas",
			len(confirmed), len(uncertain), kills, lostLocks, restarts, freezes, interrupted))
	})
})
