package conformance_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// pastASCII is a percent-escaped byte past ASCII.
var pastASCII = regexp.MustCompile(`%[89A-Fa-f][0-9A-Fa-f]`)

var _ = Describe("A check whose messages a verify check's bug kept from being verified", func() {
	It("is blocked by that check, even when the verifier cannot name the charset the listener got wrong", func() {
		// The listener's postbacks pass through a form library that turns
		// every byte past ASCII into '?': accented and Hebrew names come
		// back changed, so those messages are never verified, and so
		// never credited.
		ln := freeListener()
		verifier := "http://" + ln.Addr().String() + "/cgi-bin/webscr"
		mangle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			body = pastASCII.ReplaceAll(body, []byte("%3F"))
			resp, err := http.Post(verifier, r.Header.Get("Content-Type"), bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(resp.Body)
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(answer)
		}))
		DeferCleanup(mangle.Close)
		ref := referenceListenerWith(ln, mangle.URL, nil)
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Probe = ln, ref.URL+"/ipn/paypal", ref.URL
		cfg.AckTimeout, cfg.Focus = 2*time.Second, "PP-VERIFY-ASCII,PP-VERIFY-WINDOWS-1252,PP-VERIFY-WINDOWS-1255,PP-CHARSET-NAME"
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		got := byID(rep)
		Expect(got["PP-VERIFY-ASCII"].Status).To(Equal(scenarios.Passed))
		Expect(got["PP-VERIFY-WINDOWS-1252"].Status).To(Equal(scenarios.Failed))
		name := got["PP-CHARSET-NAME"]
		Expect(name.Status).To(Equal(scenarios.Blocked), "%s: %s", name.Message, strings.Join(name.Evidence, "\n"))
		Expect(name.BlockedBy).To(ContainElement("PP-VERIFY-WINDOWS-1252"))
	})
})
