package emulator_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/pgjournal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

// journalLab is a lab whose emulator keeps a journal and can be restarted.
type journalLab struct {
	*lab
	path string // the SQLite journal's file, when it is one
	open func() journal.Journal
	jnl  journal.Journal
}

// newJournalLab is a journal lab on a SQLite file.
func newJournalLab() *journalLab {
	path := filepath.Join(GinkgoT().TempDir(), "emulator.db")
	jl := newJournalLabOn(func() journal.Journal {
		j, err := sqlitejournal.Open(path)
		Expect(err).NotTo(HaveOccurred())
		return j
	})
	jl.path = path
	return jl
}

// newJournalLabOn is a journal lab on the journal open opens (again at
// each restart).
func newJournalLabOn(open func() journal.Journal) *journalLab {
	jl := &journalLab{lab: &lab{listener: &testListener{status: 200}}, open: open}
	jl.lsrv = httptest.NewServer(jl.listener)
	jl.start(clock.NewManual(t0))
	DeferCleanup(func() {
		jl.stop()
		jl.lsrv.Close()
	})
	return jl
}

// journalStores open each kind of journal the restart specs run on.
var journalStores = []struct {
	name string
	open func() func() journal.Journal // called inside a spec
}{
	{"SQLite", func() func() journal.Journal {
		path := filepath.Join(GinkgoT().TempDir(), "emulator.db")
		return func() journal.Journal {
			j, err := sqlitejournal.Open(path)
			Expect(err).NotTo(HaveOccurred())
			return j
		}
	}},
	{"PostgreSQL", func() func() journal.Journal {
		dsn := testenv.PostgresSchema("journal")
		return func() journal.Journal {
			j, err := pgjournal.Open(context.Background(), dsn)
			Expect(err).NotTo(HaveOccurred())
			return j
		}
	}},
}

func (jl *journalLab) start(clk *clock.Manual) {
	var err error
	jl.jnl = jl.open()
	jl.clk = clk
	jl.emu, err = emulator.New(emulator.Config{Clock: clk, Seed: 99, AckTimeout: 2 * time.Second, Journal: jl.jnl})
	Expect(err).NotTo(HaveOccurred())
	jl.api = httptest.NewServer(jl.emu)
	jl.listener.mu.Lock()
	jl.listener.verifyURL = jl.api.URL + "/cgi-bin/webscr"
	jl.listener.mu.Unlock()
}

func (jl *journalLab) stop() {
	if jl.jnl == nil {
		return
	}
	Expect(jl.emu.Shutdown(context.Background())).To(Succeed())
	jl.api.Close()
	Expect(jl.jnl.Close()).To(Succeed())
	jl.jnl = nil
}

// restart stops the emulator and starts a new one on the same journal,
// with a manual clock reading something else (the journal's must win).
func (jl *journalLab) restart() {
	jl.stop()
	jl.start(clock.NewManual(t0.Add(-365 * 24 * time.Hour)))
}

func attemptNumbers(msg map[string]any) []float64 {
	var out []float64
	for _, a := range msg["attempts"].([]any) {
		out = append(out, a.(map[string]any)["number"].(float64))
	}
	return out
}

// The restart specs, on every kind of journal.
var _ = Describe("Emulator with a journal", func() {
	for _, store := range journalStores {
		Context("in "+store.name, func() {
			It("keeps history, postbacks and the retry queue across a restart; retries resume at their clock times, none lost or repeated", func() {
				jl := newJournalLabOn(store.open())
				jl.listener.set(500, nil)
				id := jl.send(map[string]any{"kind": "web_accept"})["id"].(string)
				Expect(jl.emu.Advance(time.Minute)).To(Succeed()) // retries at +10 s and +30 s
				before := jl.message(id)
				Expect(before["status"]).To(Equal("Retrying"))
				Expect(before["attempts"]).To(HaveLen(3))
				Expect(before["next_attempt"]).To(Equal(t0.Add(70 * time.Second).Format(time.RFC3339)))

				jl.restart()
				Expect(jl.emu.Restored()).To(MatchFields(IgnoreExtras, Fields{"Messages": Equal(1), "Queued": Equal(1)}))
				Expect(jl.emu.Restored().Providers).To(HaveKeyWithValue("paypal", emulator.RestoredCounts{"messages": 1, "postbacks": 3}))
				Expect(jl.clk.Now()).To(Equal(t0.Add(time.Minute)))
				after := jl.message(id)
				Expect(after["status"]).To(Equal("Retrying"))
				Expect(after["attempts"]).To(Equal(before["attempts"]))
				Expect(after["next_attempt"]).To(Equal(before["next_attempt"]))
				Expect(verdicts(after)).To(Equal([]string{"VERIFIED", "VERIFIED", "VERIFIED"}))

				jl.listener.set(200, nil)
				Expect(jl.emu.Advance(9 * time.Second)).To(Succeed())
				Expect(jl.listener.received()).To(HaveLen(3), "the retry waits for its clock time")
				Expect(jl.emu.Advance(time.Second)).To(Succeed())
				done := jl.message(id)
				Expect(done["status"]).To(Equal("Sent"))
				Expect(attemptNumbers(done)).To(Equal([]float64{1, 2, 3, 4}))
				Expect(jl.listener.received()).To(HaveLen(4))
				Expect(verdicts(done)).To(Equal([]string{"VERIFIED", "VERIFIED", "VERIFIED", "VERIFIED"}), "the verifier still knows the message")

				Expect(jl.emu.Advance(4 * 24 * time.Hour)).To(Succeed())
				Expect(jl.listener.received()).To(HaveLen(4), "an acknowledged message is not sent again")
			})

			It("never keeps a refused clock advance: after a restart the clock reads what it read before", func() {
				jl := newJournalLabOn(store.open())
				jl.listener.set(500, nil)
				jl.send(map[string]any{"kind": "web_accept"})
				for _, by := range []string{"Infd", "NaNd", "1e300d", "106751d1000h", "-1d"} {
					code, out := jl.call("POST", "/api/v1/clock/advance", map[string]any{"duration": by})
					Expect(code).To(Equal(400), "%s: %v", by, out)
				}
				Expect(jl.emu.Advance(clock.MaxDuration + time.Second)).To(MatchError(clock.ErrTooLong))
				Expect(jl.clk.Now()).To(Equal(t0))
				jl.restart()
				Expect(jl.clk.Now()).To(Equal(t0), "a refused target was kept")
				Expect(jl.emu.Advance(10 * time.Second)).To(Succeed())
				Expect(jl.listener.received()).To(HaveLen(2), "the pending retry still fires at its time")
			})

			It("keeps held messages, the profile, faults with their counts and PayDo's registrations and transactions", func() {
				jl := newJournalLabOn(store.open())
				code, _ := jl.call("PUT", "/api/v1/paypal/profile", map[string]any{"notify_url": jl.lsrv.URL + "/ipn", "enabled": false})
				Expect(code).To(Equal(200))
				held := jl.send(map[string]any{"kind": "web_accept", "notify_url": ""})
				Expect(held["status"]).To(Equal("Held"))
				code, _ = jl.call("PUT", "/api/v1/paydo/projects/shop/ipn-url", map[string]any{"url": jl.lsrv.URL + "/paydo"})
				Expect(code).To(Equal(200), "register")
				code, pd := jl.call("POST", "/api/v1/paydo/notifications", map[string]any{"kind": "checkout", "project": "shop"})
				Expect(code).To(Equal(201), "%v", pd)
				code, _ = jl.call("PUT", "/api/v1/paypal/fault", map[string]any{"kind": "invalid", "count": 2})
				Expect(code).To(Equal(200))

				jl.restart()
				Expect(jl.message(held["id"].(string))["status"]).To(Equal("Held"))
				_, fault := jl.call("GET", "/api/v1/paypal/fault", nil)
				Expect(fault["fault"]).To(HaveKeyWithValue("kind", "invalid"))
				Expect(fault["fault"]).To(HaveKeyWithValue("count", BeNumerically("==", 2)))
				_, regs := jl.call("GET", "/api/v1/paydo/registrations", nil)
				Expect(regs["checkout_ipn_urls"]).To(HaveKeyWithValue("shop", jl.lsrv.URL+"/paydo"))
				_, txs := jl.call("GET", "/api/v1/paydo/transactions", nil)
				Expect(txs["transactions"]).To(HaveLen(1))

				// Switching notifications on with the opt-in releases the held message to the profile's URL.
				code, _ = jl.call("PUT", "/api/v1/paypal/profile", map[string]any{"notify_url": jl.lsrv.URL + "/ipn", "enabled": true, "release_held": true})
				Expect(code).To(Equal(200))
				jl.emu.WaitIdle()
				m := jl.message(held["id"].(string))
				Expect(m["status"]).To(Equal("Sent"))
				Expect(m["postbacks"]).To(ConsistOf(HaveKeyWithValue("fault", "invalid")), "the fault carried over")
				_, fault = jl.call("GET", "/api/v1/paypal/fault", nil)
				Expect(fault["fault"]).To(HaveKeyWithValue("count", BeNumerically("==", 1)))
			})

			It("records an attempt cut short by a bounded shutdown and keeps its retry queued", func() {
				jl := newJournalLabOn(store.open())
				release, arrived := make(chan struct{}), make(chan struct{}, 1)
				DeferCleanup(func() { close(release) })
				jl.lsrv.Config.Handler = hangingHandler(release, arrived)
				sent := make(chan string, 1)
				go func() {
					defer GinkgoRecover()
					_, msg := jl.call("POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "notify_url": jl.lsrv.URL})
					sent <- msg["id"].(string)
				}()
				Eventually(arrived).Should(Receive())

				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				Expect(jl.emu.Shutdown(ctx)).To(MatchError(ContainSubstring("cut short")))
				id := <-sent
				jl.api.Close()
				Expect(jl.jnl.Close()).To(Succeed())
				jl.jnl = nil

				jl.lsrv.Config.Handler = jl.listener
				jl.start(clock.NewManual(t0))
				m := jl.message(id)
				Expect(m["attempts"]).To(HaveLen(1))
				Expect(m["attempts"].([]any)[0]).To(HaveKeyWithValue("error", "emulator shutting down"))
				Expect(m["status"]).To(Equal("Retrying"))
				Expect(jl.emu.Advance(10 * time.Second)).To(Succeed())
				Expect(jl.message(id)["status"]).To(Equal("Sent"))
				Expect(attemptNumbers(jl.message(id))).To(Equal([]float64{1, 2}))
			})

			It("sends every later step it planned even across restarts (a chargeback planned 5 messages; after a restart only 1 went)", func() {
				jl := newJournalLabOn(store.open())
				plan, err := jl.emu.SendLifecycle(emulator.LifecycleRequest{Name: "chargeback", NotifyURL: jl.lsrv.URL + "/ipn"})
				Expect(err).NotTo(HaveOccurred())
				Expect(plan.Steps).To(HaveLen(5))
				views, err := jl.emu.SendPayDo(emulator.PayDoRequest{Kind: "checkout", Then: []int{4, 2}, Interval: "10m", NotifyURL: jl.lsrv.URL + "/paydo"})
				Expect(err).NotTo(HaveOccurred())
				Expect(views).To(HaveLen(1))
				Expect(jl.listener.received()).To(HaveLen(2))

				jl.restart()
				Expect(jl.emu.Restored().Scheduled).To(Equal(4 + 2))
				Expect(jl.emu.Advance(15 * time.Minute)).To(Succeed())
				Expect(jl.listener.received()).To(HaveLen(3), "the first PayDo follow-up at +10m")
				// Past the lifecycle's last step (weeks for a chargeback), with a
				// second restart on the way.
				jl.restart()
				Expect(jl.emu.Restored().Scheduled).To(Equal(4 + 1))
				last := plan.Steps[len(plan.Steps)-1].At
				Expect(jl.emu.Advance(last.Sub(jl.clk.Now()) + time.Minute)).To(Succeed())
				Expect(jl.listener.received()).To(HaveLen(2 + 4 + 2))
				jl.restart()
				Expect(jl.emu.Restored().Scheduled).To(BeZero(), "sent ones are forgotten")
				Expect(jl.emu.Advance(60 * 24 * time.Hour)).To(Succeed())
				Expect(jl.listener.received()).To(HaveLen(8), "none sent twice")
			})
		})
	}
})

var _ = Describe("Emulator with a SQLite journal", func() {
	It("sends the planned sends a journal of an earlier version kept, in the shape it kept them (PayPal's bytes at the top level, PayDo's message under paydo)", func() {
		j, err := sqlitejournal.Open(filepath.Join(GinkgoT().TempDir(), "earlier.db"))
		Expect(err).NotTo(HaveOccurred())
		lst := &testListener{status: 200}
		srv := httptest.NewServer(lst)
		DeferCleanup(srv.Close)
		at := t0.Add(time.Hour).Format(time.RFC3339Nano)
		ipn := "txn_type=web_accept&payment_status=Refunded&txn_id=OLDSTEP0000000001&mc_gross=-5.00&mc_currency=USD"
		earlier := []journal.Entry{
			{Kind: "emulator.scheduled", Key: "1-earlier-1", Value: []byte(`{"at":"` + at + `","label":"lifecycle refund step refunded","body":"` +
				base64.StdEncoding.EncodeToString([]byte(ipn)) + `","kind":"web_accept","notify_url":"` + srv.URL + `/ipn","seed":7}`)},
			{Kind: "emulator.scheduled", Key: "1-earlier-2", Value: []byte(`{"at":"` + at + `","label":"paydo transfer follow-up 1","paydo":` +
				`{"kind":"transfer","body":{"transaction":{"id":"T-EARLIER","status":2}},"amount":1200,"currency":"EUR","url":"` + srv.URL + `/paydo"}}`)},
		}
		Expect(j.Write(earlier...)).To(Succeed())
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 5, AckTimeout: 2 * time.Second, Journal: j})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = emu.Shutdown(context.Background()); _ = j.Close() })
		Expect(emu.Restored().Scheduled).To(Equal(2))
		Expect(lst.received()).To(BeEmpty(), "not before their time")

		Expect(emu.Advance(time.Hour)).To(Succeed())
		Expect(lst.received()).To(ConsistOf([]byte(ipn), MatchJSON(`{"transaction":{"id":"T-EARLIER","status":2}}`)))
		providers := map[string]int{}
		for _, m := range emu.Engine().List(nil) {
			providers[m.Provider]++
		}
		Expect(providers).To(Equal(map[string]int{"paypal": 1, "paydo": 1}))
	})

	It("refuses a journal another emulator has open, and a file that is not a journal", func() {
		jl := newJournalLab()
		_, err := sqlitejournal.Open(jl.path)
		Expect(err).To(MatchError(sqlitejournal.ErrInUse))

		bogus := filepath.Join(GinkgoT().TempDir(), "notes.txt")
		Expect(writeFile(bogus, "these are not the rows you are looking for, padded to more than a header's length ...")).To(Succeed())
		_, err = sqlitejournal.Open(bogus)
		Expect(err).To(MatchError(ContainSubstring("not an ipnlab journal")))
	})

	It("reads a journal an older ipnlab wrote (bodies inside the message records, seeds in records of their own) and moves it to today's records", func() {
		jl := newJournalLab()
		jl.listener.set(500, nil)
		sent := jl.send(map[string]any{"kind": "web_accept", "seed": 4242})
		id := sent["id"].(string)
		jl.stop()

		// Rewrite the records the way the older version kept them.
		db, err := sql.Open("sqlite", "file:"+jl.path)
		Expect(err).NotTo(HaveOccurred())
		defer db.Close()
		record := func(kind string) map[string]any {
			var v []byte
			Expect(db.QueryRow(`SELECT value FROM records WHERE kind = ? AND key = ?`, kind, id).Scan(&v)).To(Succeed())
			out := map[string]any{}
			if kind != "delivery.content" {
				Expect(json.Unmarshal(v, &out)).To(Succeed())
				return out
			}
			head, body, ok := bytes.Cut(v, []byte("\n"))
			Expect(ok).To(BeTrue())
			Expect(json.Unmarshal(head, &out)).To(Succeed())
			out["body"] = body
			return out
		}
		put := func(kind string, v any) {
			b, err := json.Marshal(v)
			Expect(err).NotTo(HaveOccurred())
			_, err = db.Exec(`UPDATE records SET value = ? WHERE kind = ? AND key = ?`, b, kind, id)
			Expect(err).NotTo(HaveOccurred())
		}
		content := record("delivery.content")
		body := content["body"].([]byte)
		msg := record("delivery.message")
		msg["body"], msg["header"] = body, content["header"]
		suffix, err := base64.StdEncoding.DecodeString(content["resend_suffix"].(string))
		Expect(err).NotTo(HaveOccurred())
		msg["resend_body"] = append(append([]byte(nil), body...), suffix...)
		put("delivery.message", msg)
		pp := record("paypal.message")
		Expect(pp["seed"]).To(BeEquivalentTo(4242))
		delete(pp, "seed")
		pp["body"] = body
		put("paypal.message", pp)
		_, err = db.Exec(`DELETE FROM records WHERE kind = 'delivery.content'`)
		Expect(err).NotTo(HaveOccurred())
		_, err = db.Exec(`INSERT INTO records(kind, key, value) VALUES('emulator.seed', ?, '4242')`, id)
		Expect(err).NotTo(HaveOccurred())

		jl.start(clock.NewManual(t0))
		v := jl.message(id)
		Expect(v["seed"]).To(Equal("4242"), "a string: JavaScript numbers lose a 64-bit seed's digits")
		Expect(v["body"]).To(Equal(string(body)))
		jl.listener.set(200, nil)
		Expect(jl.emu.Advance(time.Minute)).To(Succeed())
		Expect(verdicts(jl.message(id))).To(HaveEach("VERIFIED"), "the verifier knows the old message's bytes")
		var seeds int
		Expect(db.QueryRow(`SELECT count(*) FROM records WHERE kind = 'emulator.seed'`).Scan(&seeds)).To(Succeed())
		Expect(seeds).To(BeZero(), "the seed moved onto PayPal's record")
		jl.restart()
		Expect(jl.message(id)["seed"]).To(Equal("4242"))
		Expect(jl.message(id)["body"]).To(Equal(string(body)), "the body moved to its own record, and stayed")
		var contents int
		Expect(db.QueryRow(`SELECT count(*) FROM records WHERE kind = 'delivery.content'`).Scan(&contents)).To(Succeed())
		Expect(contents).To(Equal(1))
	})

	It("backs up a live journal (readers are not locked out) and restores from the copy", func() {
		jl := newJournalLab()
		jl.listener.set(500, nil)
		ids := []string{}
		for range 3 {
			ids = append(ids, jl.send(map[string]any{"kind": "web_accept"})["id"].(string))
		}
		Expect(jl.emu.Advance(time.Minute)).To(Succeed())
		// Another reader of the live file, as sqlite3's .backup is.
		db, err := sql.Open("sqlite", "file:"+jl.path+"?mode=ro")
		Expect(err).NotTo(HaveOccurred())
		var n int
		Expect(db.QueryRow(`SELECT count(*) FROM records`).Scan(&n)).To(Succeed())
		Expect(n).To(BeNumerically(">", 3))
		Expect(db.Close()).To(Succeed())

		out := filepath.Join(GinkgoT().TempDir(), "backup.db")
		Expect(sqlitejournal.Backup(jl.path, out)).To(Succeed())
		Expect(sqlitejournal.Backup(jl.path, out)).To(MatchError(ContainSubstring("exists")))

		// Restore: a new emulator on the copy, while the original still runs.
		copyJnl, err := sqlitejournal.Open(out)
		Expect(err).NotTo(HaveOccurred())
		restored, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Journal: copyJnl})
		Expect(err).NotTo(HaveOccurred())
		Expect(restored.Restored()).To(MatchFields(IgnoreExtras, Fields{"Messages": Equal(3), "Queued": Equal(3)}))
		Expect(restored.Restored().Providers).To(HaveKeyWithValue("paypal", emulator.RestoredCounts{"messages": 3, "postbacks": 9}))
		for _, id := range ids {
			v, ok := restored.View(id)
			Expect(ok).To(BeTrue(), id)
			Expect(v.Attempts).To(HaveLen(3))
		}
		Expect(restored.Clock().Now()).To(Equal(t0.Add(time.Minute)))
		restored.Close()
		Expect(copyJnl.Close()).To(Succeed())
	})

	It("starts with no journal by default (memory), as CI wants", func() {
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), PayPal: paypal.Settings{Verify: paypal.ModePayPal}})
		Expect(err).NotTo(HaveOccurred())
		defer emu.Close()
		Expect(emu.Restored()).To(BeZero())
	})
})

var _ = Describe("Credentials a listener sends to the verifier", func() {
	It("are never kept: not in History, not in the journal (a Bearer token sent to /cgi-bin/webscr was stored verbatim)", func() {
		const token = "s3cret-api-token-4242"
		path := filepath.Join(GinkgoT().TempDir(), "emulator.db")
		jnl, err := sqlitejournal.Open(path)
		Expect(err).NotTo(HaveOccurred())
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), Seed: 5, APIToken: token, Journal: jnl})
		Expect(err).NotTo(HaveOccurred())
		api := httptest.NewServer(emu)
		leaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			req, _ := http.NewRequest("POST", api.URL+"/cgi-bin/webscr?key="+token, bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Cookie", "session=abc123")
			req.Header.Set("Proxy-Authorization", "Basic dXNlcjpwYXNz")
			req.Header.Set("X-Trace", "token="+token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}))
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: leaky.URL})
		Expect(err).NotTo(HaveOccurred())
		leaky.Close()
		view, _ := emu.View(v.ID)
		Expect(view.Postbacks).To(HaveLen(1))
		pb := view.Postbacks[0]
		Expect(pb.Header.Get("Authorization")).To(Equal(paypal.Redacted))
		Expect(pb.Header.Get("Cookie")).To(Equal(paypal.Redacted))
		Expect(pb.Header.Get("Proxy-Authorization")).To(Equal(paypal.Redacted))
		Expect(pb.Header.Get("X-Trace")).To(Equal("token=" + paypal.Redacted))
		Expect(pb.URI).To(Equal("/cgi-bin/webscr?key=" + paypal.Redacted))
		raw, err := json.Marshal(view)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(raw)).NotTo(ContainSubstring(token))
		Expect(string(raw)).NotTo(ContainSubstring("abc123"))

		Expect(emu.Shutdown(context.Background())).To(Succeed())
		api.Close()
		Expect(jnl.Close()).To(Succeed())
		for _, f := range []string{path, path + "-wal"} {
			if b, err := os.ReadFile(f); err == nil {
				Expect(string(b)).NotTo(ContainSubstring(token), f)
				Expect(string(b)).NotTo(ContainSubstring("dXNlcjpwYXNz"), f)
			}
		}
	})
})
