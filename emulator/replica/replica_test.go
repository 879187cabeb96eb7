package replica_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/client"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/replica"
	"github.com/ipnlab/ipnlab/internal/testenv"
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

func history(base string) []string {
	resp, err := http.Get(base + "/api/v1/messages")
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
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

func slicesWithout(rs []*replica.Replica, gone *replica.Replica) []*replica.Replica {
	var out []*replica.Replica
	for _, r := range rs {
		if r != gone {
			out = append(out, r)
		}
	}
	return out
}
