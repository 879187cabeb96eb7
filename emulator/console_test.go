package emulator_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator"
)

var _ = Describe("The console's files", func() {
	var api *httptest.Server
	BeforeEach(func() {
		emu, err := emulator.New(emulator.Config{APIToken: "tok"})
		Expect(err).NotTo(HaveOccurred())
		api = httptest.NewServer(emu)
		DeferCleanup(func() { api.Close(); emu.Close() })
	})
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(api.URL + path)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	It("serves the page and its assets without the token, with a strict policy; the data still needs it", func() {
		resp, body := get("/")
		Expect(resp.StatusCode).To(Equal(200))
		Expect(resp.Header.Get("Content-Type")).To(Equal("text/html; charset=utf-8"))
		Expect(resp.Header.Get("Content-Security-Policy")).To(ContainSubstring("default-src 'none'"))
		Expect(resp.Header.Get("X-Content-Type-Options")).To(Equal("nosniff"))
		Expect(body).To(ContainSubstring(`<script src="/console/app.js" defer></script>`))
		// Offline: nothing is fetched from another host.
		Expect(body).NotTo(MatchRegexp(`(src|href)="(https?:)?//`))

		for path, ct := range map[string]string{"/console/app.js": "text/javascript; charset=utf-8", "/console/app.css": "text/css; charset=utf-8"} {
			resp, body := get(path)
			Expect(resp.StatusCode).To(Equal(200), path)
			Expect(resp.Header.Get("Content-Type")).To(Equal(ct))
			Expect(body).NotTo(ContainSubstring("http://"), path)
			Expect(body).NotTo(ContainSubstring("https://"), path)
		}
		resp, _ = get("/api/v1/messages")
		Expect(resp.StatusCode).To(Equal(401))
	})

	It("answers 404 for files it does not have and 405 for other methods", func() {
		for _, path := range []string{"/console/nope.js", "/console/app.js/x", "/console/"} {
			resp, _ := get(path)
			Expect(resp.StatusCode).To(Equal(404), path)
		}
		resp, err := http.Post(api.URL+"/", "text/plain", strings.NewReader("x"))
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(405))
		Expect(resp.Header.Get("Allow")).To(Equal("GET"))
	})
})

var _ = Describe("Shutting down with consoles open", func() {
	It("ends long polls at once instead of waiting out their timeout", func() {
		srv, err := emulator.Start(emulator.Config{}, "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		answered := make(chan int, 1)
		go func() {
			defer GinkgoRecover()
			resp, err := http.Get(srv.URL() + "/api/v1/events/poll?timeout=5m")
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			answered <- resp.StatusCode
		}()
		// The poll is waiting when its connection is active on the server.
		Eventually(func() int { return srv.Events().Waiting() }).Should(Equal(1))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(ctx) }()
		Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
		Eventually(answered).Should(Receive(Equal(200)))
	})
})
