package httpserver_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/httpserver"
)

var _ = Describe("A server's shutdown", func() {
	It("closes a connection that never sent a request at once, and still waits for a request under way", func() {
		entered, release := make(chan struct{}), make(chan struct{})
		states := make(chan http.ConnState, 16)
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				close(entered)
				<-release
				_, _ = io.WriteString(w, "done")
			}),
			ConnState: func(_ net.Conn, st http.ConnState) {
				select {
				case states <- st:
				default:
				}
			},
		}
		httpserver.CloseSpareOnShutdown(srv)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		go func() { _ = srv.Serve(ln) }()
		DeferCleanup(srv.Close)

		// A spare: dialed, nothing sent (a client keeps one for later).
		spare, err := net.Dial("tcp", ln.Addr().String())
		Expect(err).NotTo(HaveOccurred())
		defer spare.Close()
		Eventually(states).Should(Receive(Equal(http.StateNew)), "the hook set before is still called")
		spareClosed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, spare)
			close(spareClosed)
		}()

		answer := make(chan string, 1)
		go func() {
			defer GinkgoRecover()
			resp, err := http.Get("http://" + ln.Addr().String())
			Expect(err).NotTo(HaveOccurred())
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answer <- string(body)
		}()
		Eventually(entered).Should(BeClosed())

		shutdown := make(chan error, 1)
		go func() { shutdown <- srv.Shutdown(context.Background()) }()
		// net/http alone counts the spare as busy for its first 5 s: the
		// bound is the bug's, not the machine's.
		Eventually(spareClosed).WithTimeout(4 * time.Second).Should(BeClosed())
		Expect(shutdown).NotTo(Receive(), "the request under way is waited for")
		close(release)
		Eventually(answer).Should(Receive(Equal("done")))
		Eventually(shutdown).Should(Receive(BeNil()))
	})
})
