package sandbox_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/journal/sqlitejournal"
	"github.com/ipnlab/ipnlab/emulator/metrics"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/emulator/sandbox"
)

const admin = "admin-secret"

// postingListener acks and posts every message back to verifyURL,
// keeping the verifier's answers.
type postingListener struct {
	verifyURL string
	mu        sync.Mutex
	answers   []string
}

func (l *postingListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	resp, err := http.Post(l.verifyURL, "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), body...)))
	if err == nil {
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		l.mu.Lock()
		l.answers = append(l.answers, string(answer))
		l.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

func (l *postingListener) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.answers...)
}

// call makes a request with token and decodes a JSON answer.
func call(base, token, method, path string, body any) (int, map[string]any) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		Expect(err).NotTo(HaveOccurred())
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(raw) > 0 {
		Expect(json.Unmarshal(raw, &out)).To(Succeed(), string(raw))
	}
	return resp.StatusCode, out
}

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// newSandbox serves a sandbox on manual clocks, over jnl (nil: memory).
func newSandbox(jnl journal.Journal) (*sandbox.Sandbox, *httptest.Server) {
	sb, err := sandbox.New(sandbox.Config{
		AdminToken: admin, MetricsToken: "scrape",
		Base:     emulator.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AckTimeout: 2 * time.Second},
		NewClock: func() clock.Clock { return clock.NewManual(t0) },
		Journal:  jnl,
	})
	Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(sb.Handler())
	DeferCleanup(func() { srv.Close(); sb.Close() })
	return sb, srv
}

// account creates an account whose IPN URL is a posting listener's.
func account(base, name string) (id, token string, l *postingListener) {
	l = &postingListener{verifyURL: base + "/cgi-bin/webscr"}
	ls := httptest.NewServer(l)
	DeferCleanup(ls.Close)
	code, out := call(base, admin, "POST", "/api/v1/accounts", map[string]any{"name": name, "notify_url": ls.URL + "/ipn"})
	Expect(code).To(Equal(http.StatusCreated), "%v", out)
	return out["account"].(map[string]any)["id"].(string), out["token"].(string), l
}

func send(base, token string) string {
	code, msg := call(base, token, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept"})
	Expect(code).To(Equal(http.StatusCreated), "%v", msg)
	return msg["id"].(string)
}

func messageIDs(base, token string) []string {
	code, out := call(base, token, "GET", "/api/v1/messages", nil)
	Expect(code).To(Equal(http.StatusOK))
	var ids []string
	for _, m := range out["messages"].([]any) {
		ids = append(ids, m.(map[string]any)["id"].(string))
	}
	return ids
}

// twoAccounts serves a sandbox in memory with accounts team-a and team-b.
func twoAccounts() (base, tokA string, lA *postingListener, tokB string, lB *postingListener) {
	_, srv := newSandbox(nil)
	base = srv.URL
	_, tokA, lA = account(base, "team-a")
	_, tokB, lB = account(base, "team-b")
	return base, tokA, lA, tokB, lB
}

var _ = Describe("A sandbox of two accounts", func() {
	It("keeps each token to its account: neither reads, resends nor faults the other's messages, and both listeners verify through the one verifier", func() {
		base, tokA, lA, tokB, lB := twoAccounts()

		a1 := send(base, tokA)
		b1 := send(base, tokB)
		Eventually(lA.got).Should(Equal([]string{"VERIFIED"}))
		Eventually(lB.got).Should(Equal([]string{"VERIFIED"}))
		Expect(messageIDs(base, tokA)).To(Equal([]string{a1}))
		Expect(messageIDs(base, tokB)).To(Equal([]string{b1}))

		// Message IDs may even coincide (each account numbers its own):
		// what decides is the token.
		code, msg := call(base, tokA, "GET", "/api/v1/messages/"+a1, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(msg["postbacks"]).To(HaveLen(1), "A's postback is A's")
		code, msg = call(base, tokB, "GET", "/api/v1/messages/"+b1, nil)
		Expect(code).To(Equal(http.StatusOK))
		Expect(msg["postbacks"]).To(HaveLen(1), "B's postback is B's")
		_, listA := call(base, tokA, "GET", "/api/v1/postbacks", nil)
		_, listB := call(base, tokB, "GET", "/api/v1/postbacks", nil)
		Expect(listA["postbacks"]).To(HaveLen(1))
		Expect(listB["postbacks"]).To(HaveLen(1))
		Expect(listA["postbacks"].([]any)[0].(map[string]any)["message_id"]).To(Equal(a1))

		// A's fault is A's verifier only; resending goes to A's own History.
		code, _ = call(base, tokA, "PUT", "/api/v1/paypal/fault", map[string]any{"kind": "invalid", "count": 5})
		Expect(code).To(Equal(http.StatusOK))
		code, _ = call(base, tokA, "POST", "/api/v1/messages/"+a1+"/resend", map[string]any{})
		Expect(code).To(Equal(http.StatusAccepted))
		code, _ = call(base, tokB, "POST", "/api/v1/messages/"+b1+"/resend", map[string]any{})
		Expect(code).To(Equal(http.StatusAccepted))
		Eventually(lA.got).Should(Equal([]string{"VERIFIED", "INVALID"}))
		Eventually(lB.got).Should(Equal([]string{"VERIFIED", "VERIFIED"}), "A's fault does not touch B")
		_, faultB := call(base, tokB, "GET", "/api/v1/paypal/fault", nil)
		Expect(faultB["fault"]).To(BeNil())

		// A message of B's is not there for A, whatever A tries: B's ID
		// names nothing of A's, or A's own message of that number.
		_, bMsg := call(base, tokB, "GET", "/api/v1/messages/"+b1, nil)
		code, asA := call(base, tokA, "GET", "/api/v1/messages/"+b1, nil)
		if code == http.StatusOK {
			Expect(asA["txn_id"]).NotTo(Equal(bMsg["txn_id"]), "A read B's message")
			Expect(asA["id"]).To(Equal(a1))
		} else {
			Expect(code).To(Equal(http.StatusNotFound))
		}
		Expect(messageIDs(base, tokB)).To(Equal([]string{b1}), "B's History saw nothing of A's")

		// No token, a wrong one, the admin's: no account's data.
		for _, tok := range []string{"", "nope", admin} {
			code, _ := call(base, tok, "GET", "/api/v1/messages", nil)
			Expect(code).To(Equal(http.StatusUnauthorized), "token %q", tok)
		}
		// An account's token does not manage accounts.
		code, _ = call(base, tokA, "GET", "/api/v1/accounts", nil)
		Expect(code).To(Equal(http.StatusUnauthorized))
		// A postback of nobody's message is INVALID, and nobody's.
		resp, err := http.Post(base+"/cgi-bin/webscr", "application/x-www-form-urlencoded", strings.NewReader("cmd=_notify-validate&txn_id=NOPE&verify_sign=x"))
		Expect(err).NotTo(HaveOccurred())
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(string(answer)).To(Equal("INVALID"))
		_, listB = call(base, tokB, "GET", "/api/v1/postbacks", nil)
		Expect(listB["postbacks"]).To(HaveLen(2))
	})

	It("hands each postback to the account whose message it is, though another account's message carries its txn_id", func() {
		base, tokA, lA, tokB, lB := twoAccounts()
		for i := range 20 {
			txn := fmt.Sprintf("SHARED%011d", i)
			code, b := call(base, tokB, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "params": map[string]any{"txn_id": txn}})
			Expect(code).To(Equal(http.StatusCreated), "%v", b)
			code, a := call(base, tokA, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "params": map[string]any{"txn_id": txn}})
			Expect(code).To(Equal(http.StatusCreated), "%v", a)
			// B's listener asks again about B's message.
			code, _ = call(base, tokB, "POST", "/api/v1/messages/"+b["id"].(string)+"/resend", map[string]any{})
			Expect(code).To(Equal(http.StatusAccepted))
			Eventually(func() int { return len(lB.got()) }).Should(Equal(2 * (i + 1)))
		}
		Expect(lB.got()).To(HaveEach("VERIFIED"), "every postback of B's went to B")
		Eventually(func() int { return len(lA.got()) }).Should(Equal(20))
		Expect(lA.got()).To(HaveEach("VERIFIED"))
		_, listA := call(base, tokA, "GET", "/api/v1/postbacks", nil)
		_, listB := call(base, tokB, "GET", "/api/v1/postbacks", nil)
		Expect(listA["postbacks"]).To(HaveLen(20), "A's History has A's postbacks only")
		Expect(listB["postbacks"]).To(HaveLen(40))
	})

	It("answers INVALID, and records nothing, for a postback several accounts' messages match", func() {
		base, tokA, lA, tokB, lB := twoAccounts()
		for _, tok := range []string{tokA, tokB} {
			code, out := call(base, tok, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "params": map[string]any{"txn_id": "BOTH0000000000000"}})
			Expect(code).To(Equal(http.StatusCreated), "%v", out)
		}
		Eventually(lA.got).Should(HaveLen(1))
		Eventually(lB.got).Should(HaveLen(1))
		resp, err := http.Post(base+"/cgi-bin/webscr", "application/x-www-form-urlencoded", strings.NewReader("cmd=_notify-validate&txn_id=BOTH0000000000000"))
		Expect(err).NotTo(HaveOccurred())
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(string(answer)).To(Equal("INVALID"))
		for _, tok := range []string{tokA, tokB} {
			_, list := call(base, tok, "GET", "/api/v1/postbacks", nil)
			Expect(list["postbacks"]).To(HaveLen(1), "only its listener's own postback")
		}
	})

	It("refuses a message whose verify_sign another account's has (the same seed), saying why, and keeps the first account's postbacks its own", func() {
		_, srv := newSandbox(nil)
		base := srv.URL
		_, tokA, lA := account(base, "team-a")
		_, tokB, _ := account(base, "team-b")
		code, out := call(base, tokA, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "seed": "42"})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		code, out = call(base, tokB, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "seed": "42"})
		Expect(code).To(Equal(http.StatusConflict), "%v", out)
		Expect(out["error"]).To(HaveKeyWithValue("message", ContainSubstring("the same seed in two accounts makes the same message")))
		Expect(messageIDs(base, tokB)).To(BeEmpty(), "nothing sent, nothing kept")
		code, _ = call(base, tokA, "POST", "/api/v1/paypal/notifications", map[string]any{"kind": "web_accept", "seed": "42"})
		Expect(code).To(Equal(http.StatusCreated), "an account may send its own message again")
		Eventually(lA.got).Should(Equal([]string{"VERIFIED", "VERIFIED"}))
	})

	It("gives each account a PayDo lookup token of its own: no account, and not the public default token, reads another's checkout", func() {
		_, srv := newSandbox(nil)
		base := srv.URL
		ack := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(ack.Close)
		tokens := map[string][2]string{} // name: API token, PayDo token
		for _, name := range []string{"team-a", "team-b"} {
			code, out := call(base, admin, "POST", "/api/v1/accounts", map[string]any{"name": name})
			Expect(code).To(Equal(http.StatusCreated), "%v", out)
			Expect(out["paydo_token"]).To(HavePrefix("ipnlab_paydo_"))
			tokens[name] = [2]string{out["token"].(string), out["paydo_token"].(string)}
		}
		Expect(tokens["team-a"][1]).NotTo(Equal(tokens["team-b"][1]))
		code, out := call(base, tokens["team-b"][0], "POST", "/api/v1/paydo/notifications",
			map[string]any{"kind": "checkout", "notify_url": ack.URL, "params": map[string]any{"identifier": "tx-b", "amount": "40.00", "currency": "USD"}})
		Expect(code).To(Equal(http.StatusCreated), "%v", out)
		lookup := func(token string) int {
			req, err := http.NewRequest(http.MethodGet, base+"/paydo/v1/transactions/tx-b", nil)
			Expect(err).NotTo(HaveOccurred())
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			return resp.StatusCode
		}
		Expect(lookup(tokens["team-b"][1])).To(Equal(http.StatusOK))
		Expect(lookup(tokens["team-a"][1])).To(Equal(http.StatusNotFound), "A's token finds nothing of B's")
		Expect(lookup("ipnlab-paydo-token")).To(Equal(http.StatusUnauthorized), "the public default token is nobody's")

		// A checkout reusing B's id, and a token B has, are refused.
		code, out = call(base, tokens["team-a"][0], "POST", "/api/v1/paydo/notifications",
			map[string]any{"kind": "checkout", "notify_url": ack.URL, "params": map[string]any{"identifier": "tx-b", "amount": "1.00", "currency": "USD"}})
		Expect(code).To(Equal(http.StatusConflict), "%v", out)
		Expect(lookup(tokens["team-b"][1])).To(Equal(http.StatusOK))
		code, out = call(base, tokens["team-a"][0], "PUT", "/api/v1/paydo/projects/shop/api-token", map[string]any{"token": tokens["team-b"][1]})
		Expect(code).To(Equal(http.StatusConflict), "%v", out)
		code, _ = call(base, tokens["team-a"][0], "PUT", "/api/v1/paydo/projects/shop/api-token", map[string]any{"token": "team-a-shop"})
		Expect(code).To(Equal(http.StatusNoContent))
	})

	It("rotates a token (the old one stops at once), deletes an account, and serves /metrics by account to the admin and the metrics token", func() {
		_, srv := newSandbox(nil)
		base := srv.URL
		idA, tokA, lA := account(base, "team-a")
		idB, tokB, _ := account(base, "team-b")
		send(base, tokA)
		Eventually(lA.got).Should(HaveLen(1))

		code, out := call(base, admin, "POST", "/api/v1/accounts/"+idA+"/rotate-token", nil)
		Expect(code).To(Equal(http.StatusOK))
		newA := out["token"].(string)
		code, _ = call(base, tokA, "GET", "/api/v1/messages", nil)
		Expect(code).To(Equal(http.StatusUnauthorized))
		Expect(messageIDs(base, newA)).To(HaveLen(1), "History stays with the account")

		code, _ = call(base, admin, "POST", "/api/v1/accounts", map[string]any{"name": "team-a"})
		Expect(code).To(Equal(http.StatusConflict))
		code, out = call(base, admin, "POST", "/api/v1/accounts", map[string]any{"name": "Team A!"})
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(out["error"].(map[string]any)["message"]).To(ContainSubstring(`name "Team A!"`))
		code, _ = call(base, admin, "POST", "/api/v1/accounts", map[string]any{"name": "x", "colour": "red"})
		Expect(code).To(Equal(http.StatusBadRequest))

		for _, tok := range []string{admin, "scrape"} {
			req, _ := http.NewRequest("GET", base+"/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.StatusCode).To(Equal(http.StatusOK))
			v, err := metrics.Parse(resp.Body)
			resp.Body.Close()
			Expect(err).NotTo(HaveOccurred())
			Expect(v.Sum("ipnlab_messages_total", "account", idA)).To(Equal(1.0))
			Expect(v.Sum("ipnlab_messages_total", "account", idB)).To(BeZero())
			Expect(v).To(HaveKey("go_goroutines"))
		}
		code, _ = call(base, tokB, "GET", "/metrics", nil)
		Expect(code).To(Equal(http.StatusUnauthorized), "an account's token does not read every account's figures")

		code, _ = call(base, admin, "DELETE", "/api/v1/accounts/"+idB, nil)
		Expect(code).To(Equal(http.StatusNoContent))
		code, _ = call(base, tokB, "GET", "/api/v1/messages", nil)
		Expect(code).To(Equal(http.StatusUnauthorized))
		code, _ = call(base, admin, "DELETE", "/api/v1/accounts/"+idB, nil)
		Expect(code).To(Equal(http.StatusNotFound))
		_, list := call(base, admin, "GET", "/api/v1/accounts", nil)
		Expect(list["accounts"]).To(HaveLen(1))
	})

	It("keeps accounts, their tokens and their History in its store across a restart; a deleted account leaves nothing behind", func() {
		path := filepath.Join(GinkgoT().TempDir(), "sandbox.db")
		jnl, err := sqlitejournal.Open(path)
		Expect(err).NotTo(HaveOccurred())
		sb, srv := newSandbox(jnl)
		idA, tokA, lA := account(srv.URL, "team-a")
		idB, tokB, lB := account(srv.URL, "team-b")
		a1 := send(srv.URL, tokA)
		send(srv.URL, tokB)
		Eventually(lA.got).Should(HaveLen(1))
		Eventually(lB.got).Should(HaveLen(1))
		code, _ := call(srv.URL, admin, "DELETE", "/api/v1/accounts/"+idB, nil)
		Expect(code).To(Equal(http.StatusNoContent))
		srv.Close()
		sb.Close()
		Expect(jnl.Close()).To(Succeed())

		jnl, err = sqlitejournal.Open(path)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(jnl.Close)
		count := func(id string) int {
			n := 0
			for _, kind := range []string{delivery.KindMessage, delivery.KindAttempt, paypal.KindMessage, paypal.KindPostback} {
				Expect(jnl.Scan("acct/"+id+"/"+kind, func(string, []byte) error { n++; return nil })).To(Succeed())
			}
			return n
		}
		Expect(count(idA)).To(BeNumerically(">=", 4), "the account kept its message, attempt and postback")
		Expect(count(idB)).To(BeZero(), "the deleted account's records are gone")
		_, srv = newSandbox(jnl)
		Expect(messageIDs(srv.URL, tokA)).To(Equal([]string{a1}))
		code, _ = call(srv.URL, tokB, "GET", "/api/v1/messages", nil)
		Expect(code).To(Equal(http.StatusUnauthorized))
		// A's postbacks still go to A: its verify_signs are indexed again.
		lA.verifyURL = srv.URL + "/cgi-bin/webscr"
		code, _ = call(srv.URL, tokA, "POST", "/api/v1/messages/"+a1+"/resend", map[string]any{})
		Expect(code).To(Equal(http.StatusAccepted))
		Eventually(lA.got).Should(Equal([]string{"VERIFIED", "VERIFIED"}))
	})
})
