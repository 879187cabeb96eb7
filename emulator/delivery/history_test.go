package delivery_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/clock"
	"github.com/ipnlab/ipnlab/emulator/delivery"
)

var _ = Describe("History limit", func() {
	It("drops the oldest finished messages past the limit once EvictAfter has passed, never a queued one", func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/R1" {
				w.WriteHeader(500)
			}
		}))
		defer srv.Close()
		clk := clock.NewManual(t0)
		var evicted []string
		e, err := delivery.NewEngine(delivery.Config{Clock: clk, HistoryLimit: 2, EvictAfter: time.Minute,
			OnEvict: func(ids []string) { evicted = append(evicted, ids...) }})
		Expect(err).NotTo(HaveOccurred())
		defer e.Close()
		submit := func(id string) {
			_, err := e.Submit(delivery.Submission{ID: id, URL: srv.URL + "/" + id, Body: []byte("a=1"), Schedule: doubling()})
			Expect(err).NotTo(HaveOccurred())
			clk.WaitIdle()
		}
		submit("R1") // always 500, so retrying: never dropped
		for i := 1; i <= 3; i++ {
			submit(fmt.Sprintf("M%d", i))
		}
		Expect(evicted).To(BeEmpty(), "too recent to drop: a late postback must still be verified")
		Expect(clk.Advance(2 * time.Second)).To(Succeed())
		submit("M4")
		Expect(evicted).To(BeEmpty())
		Expect(clk.Advance(time.Minute)).To(Succeed()) // R1's retries run and fail
		submit("M5")
		Expect(evicted).To(Equal([]string{"M1", "M2", "M3"}))
		var ids []string
		for _, m := range e.List(nil) {
			ids = append(ids, m.ID)
		}
		Expect(ids).To(Equal([]string{"R1", "M4", "M5"}))
		_, ok := e.Get("M1")
		Expect(ok).To(BeFalse())
	})
})
