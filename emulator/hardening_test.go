package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
	"github.com/ipnlab/ipnlab/emulator/journal"
	"github.com/ipnlab/ipnlab/emulator/paydo"
	"github.com/ipnlab/ipnlab/emulator/paypal"
	"github.com/ipnlab/ipnlab/internal/testenv"
)

var _ = Describe("PayPal's and PayDo's services with a journal", func() {
	var (
		emu  *emulator.Emulator
		api  *httptest.Server
		ack  *httptest.Server
		hold atomic.Pointer[string] // a kind whose commits wait to be let go
		held chan []journal.Entry
		let  chan struct{}
	)
	BeforeEach(func() {
		disk := testenv.NewSlowDisk()
		held, let = make(chan []journal.Entry), make(chan struct{})
		hold.Store(nil)
		// Every commit goes through at once, but one holding the kind
		// asked for, which waits for the spec.
		go func() {
			for entries := range disk.Entered {
				if k := hold.Load(); k != nil && slices.ContainsFunc(entries, func(e journal.Entry) bool { return e.Kind == *k }) {
					held <- entries
					<-let
				}
				disk.Release <- struct{}{}
			}
		}()
		var err error
		emu, err = emulator.New(emulator.Config{Clock: clock.NewManual(t0), Journal: disk})
		Expect(err).NotTo(HaveOccurred())
		api = httptest.NewServer(emu)
		ack = httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		DeferCleanup(func() {
			hold.Store(nil)
			select { // a spec that failed while a commit was held
			case let <- struct{}{}:
			default:
			}
			api.Close()
			ack.Close()
			emu.Close()
			close(disk.Entered)
		})
	})
	holding := func(kind string) { hold.Store(&kind) }

	It("answer postbacks, sends and History with no lock held while a postback's commit is on its way to disk", func() {
		v, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: ack.URL})
		Expect(err).NotTo(HaveOccurred())
		holding(paypal.KindPostback)
		answered := make(chan string, 1)
		go func() {
			resp, err := http.Post(api.URL+"/cgi-bin/webscr", "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("cmd=_notify-validate&"), v.Body...)))
			if err != nil {
				answered <- err.Error()
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			answered <- b.String()
		}()
		Eventually(held).Should(Receive())
		Expect(emu.PayPal().Responsive(time.Second)).To(BeTrue(), "PayPal's lock is free during the commit: sends and History go on")
		Consistently(answered).ShouldNot(Receive(), "the answer waits for the postback to be on disk")
		let <- struct{}{}
		Eventually(answered).Should(Receive(Equal("VERIFIED")))
	})

	It("registers a PayDo URL or token with no lock held during its commit", func() {
		holding(paydo.KindProject)
		done := make(chan error, 1)
		go func() { done <- emu.PayDo().RegisterCheckoutURL("shop", ack.URL) }()
		Eventually(held).Should(Receive())
		Expect(emu.PayDo().Responsive(time.Second)).To(BeTrue(), "PayDo's lock is free during the commit")
		Consistently(done).ShouldNot(Receive(), "it returns once the registration is on disk")
		let <- struct{}{}
		Eventually(done).Should(Receive(BeNil()))
	})

	It("journals a PayDo transaction's state in its message's commit, never apart", func() {
		holding(paydo.KindTransaction)
		done := make(chan error, 1)
		go func() {
			_, err := emu.SendPayDo(emulator.PayDoRequest{Kind: "checkout", NotifyURL: ack.URL})
			done <- err
		}()
		var entries []journal.Entry
		Eventually(held).Should(Receive(&entries))
		Expect(entries).To(ContainElement(HaveField("Kind", delivery.KindMessage)), "the message is in the same commit")
		Expect(emu.PayDo().Responsive(time.Second)).To(BeTrue())
		let <- struct{}{}
		Eventually(done).Should(Receive(BeNil()))
	})
})

var _ = Describe("An emulator whose store is no longer its own", func() {
	It("fails /healthz saying so", func() {
		lost := errors.New("the lock's connection: terminating connection due to administrator command")
		var gone atomic.Bool
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), StoreHealth: func() error {
			if gone.Load() {
				return lost
			}
			return nil
		}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(emu.Close)
		health := func() (int, string) {
			rec := httptest.NewRecorder()
			emu.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			return rec.Code, rec.Body.String()
		}
		code, _ := health()
		Expect(code).To(Equal(http.StatusOK))
		gone.Store(true)
		code, body := health()
		Expect(code).To(Equal(http.StatusServiceUnavailable))
		Expect(body).To(ContainSubstring(`"status": "store lost"`))
		Expect(body).To(ContainSubstring("terminating connection"))
	})
})

var _ = Describe("A served emulator", func() {
	It("stops answering once closed, and a later Close or Shutdown returns at once", func() {
		srv, err := emulator.Start(emulator.Config{Clock: clock.NewManual(t0)}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		resp, err := http.Get(srv.URL() + "/healthz")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		srv.Close()
		_, err = http.Get(srv.URL() + "/healthz")
		Expect(err).To(HaveOccurred(), "the HTTP server is closed too")
		srv.Close()
		Expect(srv.Shutdown(context.Background())).To(Succeed())
	})
})

var _ = Describe("A bulk resend", func() {
	It("answers per message: those it could not resend are listed with why, and the others went", func() {
		fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
		DeferCleanup(fail.Close)
		emu, err := emulator.New(emulator.Config{Clock: clock.NewManual(t0), PayPal: paypal.Settings{Profile: paypal.Profile{NotifyURL: fail.URL, Enabled: true}}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(emu.Close)
		pp, err := emu.SendPayPal(emulator.SendRequest{Kind: "web_accept", NotifyURL: fail.URL})
		Expect(err).NotTo(HaveOccurred())
		pd, err := emu.SendPayDo(emulator.PayDoRequest{Kind: "checkout", NotifyURL: fail.URL})
		Expect(err).NotTo(HaveOccurred())
		emu.WaitIdle()
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/messages/resend",
			strings.NewReader(`{"since": "2020-01-01T00:00:00Z", "status": "Retrying", "use_profile_url": true}`)))
		Expect(rec.Code).To(Equal(http.StatusAccepted), rec.Body.String())
		var out struct {
			Resent  []string                 `json:"resent"`
			Refused []emulator.ResendRefusal `json:"refused"`
		}
		Expect(json.Unmarshal(rec.Body.Bytes(), &out)).To(Succeed())
		Expect(out.Resent).To(Equal([]string{pp.ID}))
		Expect(out.Refused).To(ConsistOf(emulator.ResendRefusal{ID: pd[0].ID, Error: "use_profile_url is PayPal's: PayDo has no profile URL"}))
	})
})
