package replica_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/replica"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
	"github.com/ipnlab/ipnlab/internal/testenv"
	"github.com/ipnlab/ipnlab/internal/webhooktest"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// startReplica joins a replica to the set on dsn.
func startReplica(dsn string) *replica.Replica {
	store, err := pgjournal.Connect(context.Background(), dsn)
	Expect(err).NotTo(HaveOccurred())
	r, err := replica.Start(replica.Config{Store: store, Poll: 50 * time.Millisecond,
		Emulator: emulator.Config{Clock: clock.NewManual(t0), Seed: 3, AckTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}, "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	return r
}

// history is a replica's History; a standby that does not know the
// leader yet answers 503, and is asked again, as a client should.
func history(base string) []string {
	var resp *http.Response
	Eventually(func() int {
		var err error
		resp, err = http.Get(base + "/api/v1/messages")
		Expect(err).NotTo(HaveOccurred())
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
		}
		return resp.StatusCode
	}).Should(Equal(http.StatusOK))
	defer resp.Body.Close()
	var out struct {
		Messages []map[string]any `json:"messages"`
	}
	Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	var lines []string
	for _, m := range out.Messages {
		raw, _ := json.Marshal(m)
		lines = append(lines, string(raw))
	}
	return lines
}

var _ = Describe("Replicas over one PostgreSQL store", func() {
	It("elect one leader; the others forward everything to it; when it goes, one takes over with the store and its retries", func() {
		dsn := testenv.PostgresSchema("replica")
		var replicas []*replica.Replica
		for range 3 {
			replicas = append(replicas, startReplica(dsn))
		}
		DeferCleanup(func() {
			for _, r := range replicas {
				_ = r.Shutdown(context.Background())
			}
		})
		leaderOf := func() *replica.Replica {
			var leading []*replica.Replica
			for _, r := range replicas {
				if r.Leading() {
					leading = append(leading, r)
				}
			}
			if len(leading) != 1 {
				return nil
			}
			return leading[0]
		}
		Eventually(leaderOf).WithTimeout(10 * time.Second).ShouldNot(BeNil())
		leader := leaderOf()
		var standby *replica.Replica
		for _, r := range replicas {
			if r != leader {
				standby = r
			}
		}

		// The listener fails every first delivery.
		var calls atomic.Int32
		lsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1)%2 == 1 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		DeferCleanup(lsrv.Close)

		// Sent through a standby: the leader makes it.
		cl, err := client.New(standby.URL())
		Expect(err).NotTo(HaveOccurred())
		ctx := context.Background()
		Eventually(func() error {
			_, err := cl.SendPayPal(ctx, api.SendRequest{Kind: "web_accept", NotifyURL: lsrv.URL})
			return err
		}).Should(Succeed())
		Expect(calls.Load()).To(BeEquivalentTo(1))
		emu, _ := leader.Emulator()
		Expect(emu.Engine().List(nil)).To(HaveLen(1))
		for _, r := range replicas {
			Expect(history(r.URL())).To(Equal(history(leader.URL())), "History is the same from every replica")
		}
		resp, err := http.Get(standby.URL() + "/healthz")
		Expect(err).NotTo(HaveOccurred())
		var health map[string]any
		Expect(json.NewDecoder(resp.Body).Decode(&health)).To(Succeed())
		resp.Body.Close()
		Expect(health).To(HaveKeyWithValue("role", "standby"))
		Expect(health).To(HaveKeyWithValue("leader", leader.URL()))

		// The leader leaves; another takes over, with the message and its
		// pending retry, on the clock the store kept.
		Expect(leader.Shutdown(ctx)).To(Succeed())
		replicas = slicesWithout(replicas, leader)
		Eventually(leaderOf).WithTimeout(10 * time.Second).ShouldNot(BeNil())
		next := leaderOf()
		emu, _ = next.Emulator()
		Expect(emu.Clock().Now()).To(Equal(t0))
		msgs := emu.Engine().List(nil)
		Expect(msgs).To(HaveLen(1))
		Expect(msgs[0].Status).To(BeEquivalentTo("Retrying"))

		cl, err = client.New(replicas[0].URL())
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() error { _, err := cl.Advance(ctx, "10s"); return err }).Should(Succeed())
		Expect(calls.Load()).To(BeEquivalentTo(2), "the retry went once, from the new leader")
		Expect(emu.Engine().List(nil)[0].Status).To(BeEquivalentTo("Sent"))
		Expect(history(replicas[0].URL())).To(Equal(history(replicas[1].URL())))
	})
})

// twoReplicas starts two replicas with start and returns them once one
// leads.
func twoReplicas(start func() *replica.Replica) (leader, standby *replica.Replica) {
	a, b := start(), start()
	DeferCleanup(func() { _ = a.Shutdown(context.Background()); _ = b.Shutdown(context.Background()) })
	Eventually(func() bool { return a.Leading() != b.Leading() }).WithTimeout(10 * time.Second).Should(BeTrue())
	if b.Leading() {
		return b, a
	}
	return a, b
}

func slicesWithout(rs []*replica.Replica, gone *replica.Replica) []*replica.Replica {
	var out []*replica.Replica
	for _, r := range rs {
		if r != gone {
			out = append(out, r)
		}
	}
	return out
}

var _ = Describe("Replicas of a sandbox of accounts", func() {
	It("keep the accounts, their tokens and History through a failover", func() {
		dsn := testenv.PostgresSchema("replica_sb")
		start := func() *replica.Replica {
			store, err := pgjournal.Connect(context.Background(), dsn)
			Expect(err).NotTo(HaveOccurred())
			r, err := replica.Start(replica.Config{Store: store, Poll: 50 * time.Millisecond,
				Emulator: emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, // the replica's own log
				Serve: func(j journal.Journal) (replica.Service, error) {
					return sandbox.New(sandbox.Config{AdminToken: "adm", Journal: j,
						Base:     emulator.Config{AckTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
						NewClock: func() clock.Clock { return clock.NewManual(t0) }})
				}}, "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			return r
		}
		leader, standby := twoReplicas(start)
		var acked atomic.Int32
		lsrv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { acked.Add(1) }))
		DeferCleanup(lsrv.Close)

		ctx := context.Background()
		adminCl, err := client.New(standby.URL())
		Expect(err).NotTo(HaveOccurred())
		var created api.AccountToken
		Eventually(func() error {
			created, err = adminCl.WithToken("adm").CreateAccount(ctx, api.NewAccount{Name: "team-a", NotifyURL: lsrv.URL})
			return err
		}).Should(Succeed())
		team := adminCl.WithToken(created.Token)
		sent, err := team.SendPayPal(ctx, api.SendRequest{Kind: "web_accept"})
		Expect(err).NotTo(HaveOccurred())
		Expect(acked.Load()).To(BeEquivalentTo(1))

		Expect(leader.Shutdown(ctx)).To(Succeed())
		Eventually(standby.Leading).WithTimeout(10 * time.Second).Should(BeTrue())
		Eventually(func() error { _, err := team.Message(ctx, sent.ID); return err }).Should(Succeed())
		list, _, err := team.History(ctx, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(list).To(HaveLen(1))
		Expect(list[0].ID).To(Equal(sent.ID))
		_, _, err = adminCl.WithToken("wrong").History(ctx, nil)
		Expect(err).To(MatchError(ContainSubstring("wrong API token")))
	})
})

var _ = Describe("A plug-in provider across a failover", func() {
	It("is made anew by the replica that takes over, which knows its message again, retries it, shows it and resends it", func() {
		dsn := testenv.PostgresSchema("replica_plugin")
		bell := webhooktest.New("bell")
		start := func() *replica.Replica {
			store, err := pgjournal.Connect(context.Background(), dsn)
			Expect(err).NotTo(HaveOccurred())
			r, err := replica.Start(replica.Config{Store: store, Poll: 50 * time.Millisecond,
				Emulator: emulator.Config{Clock: clock.NewManual(t0), Seed: 3, AckTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
					Providers: []emulator.Factory{bell.Factory}}}, "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			return r
		}
		leader, standby := twoReplicas(start)
		Expect(bell.Made()).To(HaveLen(1), "only the leader runs an emulator")

		// The listener fails every first delivery.
		var calls atomic.Int32
		lsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1)%2 == 1 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		DeferCleanup(lsrv.Close)

		// Sent through the standby's copy of the plug-in's route: the
		// leader's provider makes it.
		var id string
		Eventually(func() int {
			resp, err := http.Post(standby.URL()+"/api/v1/bell/notifications", "application/json",
				strings.NewReader(`{"kind":"bell.rang","notify_url":"`+lsrv.URL+`"}`))
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			var out struct {
				Messages []api.MessageView `json:"messages"`
			}
			if resp.StatusCode == http.StatusCreated {
				Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
				id = out.Messages[0].ID
			}
			return resp.StatusCode
		}).Should(Equal(http.StatusCreated))
		Eventually(calls.Load).Should(BeEquivalentTo(1))
		ctx := context.Background()
		old, err := client.New(leader.URL())
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string {
			v, err := old.Message(ctx, id)
			Expect(err).NotTo(HaveOccurred())
			return v.Status
		}).Should(BeEquivalentTo("Retrying"), "the failed attempt is on record before the leader goes")

		Expect(leader.Shutdown(ctx)).To(Succeed())
		Eventually(standby.Leading).WithTimeout(10 * time.Second).Should(BeTrue())
		made := bell.Made()
		Expect(made).To(HaveLen(2), "the new leader made its own provider")
		Expect(made[1]).NotTo(BeIdenticalTo(made[0]))

		cl, err := client.New(standby.URL())
		Expect(err).NotTo(HaveOccurred())
		v, err := cl.Message(ctx, id)
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Provider).To(Equal("bell"))
		Expect(v.Status).To(Equal("Retrying"))
		Expect(v.Details).To(ContainElement(api.Detail{Label: "Event", Value: "bell.rang"}), "shown by a provider that did not send it")

		_, err = cl.Advance(ctx, "1m")
		Expect(err).NotTo(HaveOccurred())
		Expect(calls.Load()).To(BeEquivalentTo(2), "the retry went once, from the new leader")
		_, err = cl.Resend(ctx, id, api.ResendRequest{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(calls.Load).Should(BeEquivalentTo(3))

		views, err := made[1].Notify(emulator.Notify{Kind: "bell.rang", NotifyURL: lsrv.URL})
		Expect(err).NotTo(HaveOccurred())
		Expect(views[0].ID).NotTo(Equal(id), "the new provider's ids do not take up its predecessor's")
		list, _, err := cl.History(ctx, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(list).To(HaveLen(2))
	})
})
