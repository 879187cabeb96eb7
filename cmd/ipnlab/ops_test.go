package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/ipnlab/ipnlab/emulator/metrics"
)

var _ = Describe("serve as a service", func() {
	It("logs JSON lines, serves profiles on loopback and metrics behind the metrics token", func() {
		s, base := startServe("--log-format", "json", "--debug-addr", "127.0.0.1:0",
			"--api-token", "api-secret", "--metrics-token", "scrape-secret")
		DeferCleanup(func() { s.Terminate().Wait(10 * time.Second) })
		Eventually(s.Err).WithTimeout(5 * time.Second).Should(gbytes.Say(`"msg":"emulator listening"`))

		lines := bufio.NewScanner(bytes.NewReader(s.Err.Contents()))
		n := 0
		for lines.Scan() {
			var entry map[string]any
			Expect(json.Unmarshal(lines.Bytes(), &entry)).To(Succeed(), "a log line that is not JSON: %s", lines.Text())
			Expect(entry).To(HaveKey("level"))
			n++
		}
		Expect(n).To(BeNumerically(">=", 2))

		pprofURL := regexp.MustCompile(`"url":"(http://127\.0\.0\.1:\d+/debug/pprof/)"`).FindSubmatch(s.Err.Contents())
		Expect(pprofURL).NotTo(BeNil(), "the log names the profiles' URL")
		resp, err := http.Get(string(pprofURL[1]) + "goroutine?debug=1")
		Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		Expect(string(body)).To(ContainSubstring("goroutine profile"))

		get := func(token string) *http.Response {
			req, _ := http.NewRequest("GET", base+"/metrics", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			return resp
		}
		r := get("")
		r.Body.Close()
		Expect(r.StatusCode).To(Equal(http.StatusUnauthorized))
		r = get("scrape-secret")
		defer r.Body.Close()
		Expect(r.StatusCode).To(Equal(http.StatusOK))
		v, err := metrics.Parse(r.Body)
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(HaveKey("ipnlab_retry_queue_waiting"))
		Expect(v).To(HaveKey("process_resident_memory_bytes"))
	})
})
