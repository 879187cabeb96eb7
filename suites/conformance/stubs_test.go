package conformance_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/joshdk/go-junit"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"

	"github.com/ipnlab/ipnlab/scenarios"
	"github.com/ipnlab/ipnlab/scenarios/catalog"
	"github.com/ipnlab/ipnlab/suites/conformance"
)

// stub is a small IPN listener written the way real ones are, with one
// way of posting back (a variant PayPal accepts, or one bug). Correct
// unless its hooks say otherwise: it acks 200 at once, posts the message
// back from a goroutine, and retries (quickly) on anything but an exact
// VERIFIED or INVALID answered with HTTP 200.
type stub struct {
	name string
	// postback builds the request from the raw body PayPal sent.
	postback func(verifyURL string, raw []byte) *http.Request
	// settled decides from the verifier's answer whether to stop asking.
	settled func(status int, body string) bool
	// inHandler verifies inside the handler before answering, with no
	// timeout: 200 once settled, 500 otherwise (PayPal resends).
	inHandler bool
	// fails are the checks its bug names (none for a variant).
	fails []string
}

// correctly posts back the raw body after cmd=_notify-validate&.
func correctly(verifyURL string, raw []byte) *http.Request {
	return form(verifyURL, append([]byte("cmd=_notify-validate&"), raw...))
}

func form(u string, body []byte) *http.Request {
	req, _ := http.NewRequest("POST", u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "stub-listener/1.0")
	return req
}

func exactAnswer(status int, body string) bool {
	return status == 200 && (body == "VERIFIED" || body == "INVALID")
}

func (s stub) serve(verifyURL string) *httptest.Server {
	settled := s.settled
	if settled == nil {
		settled = exactAnswer
	}
	ask := func(raw []byte) (int, string, error) {
		req := s.postback(verifyURL, raw)
		if req == nil {
			return http.StatusOK, "INVALID", nil // turned away: nothing to ask
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if s.inHandler {
			if status, body, err := ask(raw); err != nil || !settled(status, body) {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusOK)
		go func() {
			for try := 0; try < 10; try++ {
				if status, body, err := ask(raw); err == nil && settled(status, body) {
					return
				}
				time.Sleep(20 * time.Millisecond << min(try, 3))
			}
		}()
	}))
}

var (
	hexEscape = regexp.MustCompile(`%[0-9A-F]{2}`)

	// The variants of a correct postback that PayPal accepts.
	variants = []stub{
		{name: "cmd last", postback: func(u string, raw []byte) *http.Request {
			return form(u, append(append([]byte{}, raw...), "&cmd=_notify-validate"...))
		}},
		{name: "cmd in the query string", postback: func(u string, raw []byte) *http.Request {
			return form(u+"?cmd=_notify-validate", raw)
		}},
		{name: "no Content-Type", postback: func(u string, raw []byte) *http.Request {
			req := correctly(u, raw)
			req.Header.Del("Content-Type")
			return req
		}},
		{name: "no User-Agent", fails: nil, postback: func(u string, raw []byte) *http.Request {
			req := correctly(u, raw)
			req.Header.Set("User-Agent", "")
			return req
		}},
		{name: "%20 for spaces and lower-case hex", postback: func(u string, raw []byte) *http.Request {
			b := bytes.ReplaceAll(raw, []byte("+"), []byte("%20"))
			b = hexEscape.ReplaceAllFunc(b, bytes.ToLower)
			return correctly(u, b)
		}},
		{name: "a leading &", postback: func(u string, raw []byte) *http.Request {
			return form(u, append([]byte("&cmd=_notify-validate&"), raw...))
		}},
	}

	// Listeners with one bug each, written independently of the mutants.
	buggy = []stub{
		{name: "re-encodes the values as UTF-8 (reads the bytes as Latin-1)", postback: func(u string, raw []byte) *http.Request {
			return correctly(u, rebuild(raw, func(v string) string {
				runes := make([]rune, len(v))
				for i := 0; i < len(v); i++ {
					runes[i] = rune(v[i])
				}
				return string(runes)
			}, url.QueryUnescape, false))
		}, fails: []string{"PP-VERIFY-UTF-8", "PP-VERIFY-WINDOWS-1252", "PP-VERIFY-WINDOWS-1255"}},
		{name: "drops blank fields", postback: func(u string, raw []byte) *http.Request {
			return correctly(u, rebuild(raw, func(v string) string { return v }, url.QueryUnescape, true))
		}, fails: []string{"PP-VERIFY-EMPTY-FIELDS"}},
		{name: "posts '+' back as %2B", postback: func(u string, raw []byte) *http.Request {
			return correctly(u, rebuild(raw, func(v string) string { return v }, url.PathUnescape, false))
		}, fails: []string{"PP-VERIFY-PLUS"}},
		{name: "trusts VERIFIED with HTTP 500", settled: func(status int, body string) bool {
			return body == "VERIFIED" || exactAnswer(status, body)
		}, postback: correctly, fails: []string{"PP-OUTAGE-500-VERIFIED"}},
		{name: "acks 200 after an HTML page", settled: func(status int, body string) bool {
			return status == 200
		}, postback: correctly, fails: []string{"PP-OUTAGE-200-PAGE"}},
		{name: "verifies before acking, with no timeout", inHandler: true, postback: correctly,
			fails: []string{"PP-ACK-SLOW-VERIFIER"}},
		// Its form turns away keys such as transaction[0].amount before
		// verifying: the message is acked and never posted back.
		{name: "turns Adaptive Payments away before verifying", postback: func(u string, raw []byte) *http.Request {
			if bytes.Contains(raw, []byte("transaction%5B")) {
				return nil
			}
			return correctly(u, raw)
		}, fails: []string{"PP-VERIFY-ADAPTIVE"}},
	}
)

// rebuild decodes every pair with unescape, maps its value, and encodes
// it again as url.QueryEscape does, in the original order.
func rebuild(raw []byte, mapValue func(string) string, unescape func(string) (string, error), dropBlank bool) []byte {
	var out []string
	for _, pair := range strings.Split(string(raw), "&") {
		name, value, _ := strings.Cut(pair, "=")
		n, _ := unescape(name)
		v, _ := unescape(value)
		if dropBlank && v == "" {
			continue
		}
		out = append(out, url.QueryEscape(n)+"="+url.QueryEscape(mapValue(v)))
	}
	return []byte(strings.Join(out, "&"))
}

// failing is the checks s fails, in order: its bug's, or the warning of
// a missing User-Agent (a SHOULD; it does not fail the run).
func (s stub) failing() []string {
	if s.name == "no User-Agent" {
		return []string{"PP-POSTBACK-USER-AGENT"}
	}
	return slices.Sorted(slices.Values(s.fails))
}

// runStub runs the protocol checks focus selects ("" all) against a stub
// with seed.
func runStub(s stub, focus string, seed uint64) verdicts {
	ln := freeListenerErr()
	srv := s.serve("http://" + ln.Addr().String() + "/cgi-bin/webscr")
	defer srv.Close()
	cfg := conformance.Defaults()
	cfg.EmulatorListener, cfg.Listener, cfg.Seed = ln, srv.URL, seed
	cfg.AckTimeout, cfg.PostbackWait, cfg.Name, cfg.Focus = time.Second, time.Second, s.name, focus
	return verdictsOf(conformance.RunAll(context.Background(), cfg, nil))
}

var _ = Describe("Verdicts against listeners written independently", func() {
	It("fail, for every seed, exactly the checks that name each one's bug, and nothing for the postbacks PayPal accepts", func() {
		all := append(append([]stub{}, variants...), buggy...)
		byName := map[string]stub{}
		var names []string
		for _, s := range all {
			byName[s.name] = s
			names = append(names, s.name)
		}
		seeds := sweepSeeds()
		selections := map[string][]map[string]bool{}
		for _, n := range names {
			selections[n] = make([]map[string]bool, seeds)
		}
		results := sweep(names, seeds, func(name string, i int, seed uint64) verdicts {
			var focus string
			focus, selections[name][i] = sweepSelection(i, byName[name].failing())
			return runStub(byName[name], focus, seed)
		})
		var table strings.Builder
		for _, n := range names {
			fmt.Fprintf(&table, "%-62s %s\n", n, strings.Join(results[n][0].failed, " "))
		}
		AddReportEntry(fmt.Sprintf("stub listeners over %d seeds (failing checks)", seeds), table.String(), ReportEntryVisibilityAlways)
		for _, s := range all {
			want := s.failing()
			for i, v := range results[s.name] {
				Expect(v.err).NotTo(HaveOccurred(), s.name)
				if len(want) == 0 {
					Expect(v.failed).To(BeEmpty(), "%s, seed #%d: a postback PayPal accepts was failed", s.name, i)
				} else {
					Expect(v.failed).To(Equal(want), "%s, seed #%d: the failing checks must be exactly those that name its bug", s.name, i)
				}
				Expect(v.blocked).To(Equal(only(results[s.name][0].blocked, selections[s.name][i])), "%s, seed #%d: blocked checks moved with the seed", s.name, i)
			}
		}
	})
})

var _ = Describe("A listener configured as in production", func() {
	It("drops sandbox messages: without --live a notice says so, with --live its postbacks are judged", func() {
		// It posts back correctly, but only messages without test_ipn=1.
		prod := func(verifyURL string) *httptest.Server {
			return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				w.WriteHeader(http.StatusOK)
				if q, _ := url.ParseQuery(string(raw)); q.Get("test_ipn") == "1" {
					return
				}
				go func() {
					if resp, err := http.DefaultClient.Do(correctly(verifyURL, raw)); err == nil {
						resp.Body.Close()
					}
				}()
			}))
		}
		for _, live := range []bool{false, true} {
			ln := freeListener()
			srv := prod("http://" + ln.Addr().String() + "/cgi-bin/webscr")
			cfg := conformance.Defaults()
			cfg.EmulatorListener, cfg.Listener, cfg.Live, cfg.Focus = ln, srv.URL, live, "PP-POSTBACK-SENT,PP-VERIFY-ASCII"
			cfg.PostbackWait = time.Second
			rep, err := conformance.RunAll(context.Background(), cfg, nil)
			srv.Close()
			Expect(err).NotTo(HaveOccurred())
			res := byID(rep)
			if live {
				Expect(rep.Notices).To(BeEmpty())
				Expect(res["PP-POSTBACK-SENT"].Status).To(Equal(scenarios.Passed))
				Expect(res["PP-VERIFY-ASCII"].Status).To(Equal(scenarios.Passed))
				Expect(res["PP-POSTBACK-SENT"].Replay).To(BeEmpty())
			} else {
				Expect(rep.Notices).To(ConsistOf(ContainSubstring("it may drop sandbox messages (test_ipn=1): if it is configured as in production, run with --live")))
				Expect(res["PP-POSTBACK-SENT"].Status).To(Equal(scenarios.Failed))
				Expect(res["PP-VERIFY-ASCII"].Status).To(Equal(scenarios.Blocked))
			}
		}
	})
})

var _ = Describe("The catalog", func() {
	It("waits no fixed wall time: every wait comes from the run's windows", func() {
		names, err := catalog.Names()
		Expect(err).NotTo(HaveOccurred())
		for _, n := range names {
			sc, err := catalog.Get(n)
			Expect(err).NotTo(HaveOccurred())
			for _, st := range sc.Steps {
				if e, ok := st.(*scenarios.Expect); ok {
					Expect(e.Within).To(BeEmpty(), "%s line %d sets within: %s", n, e.Line(), e.Within)
				}
			}
		}
	})
})

var _ = Describe("The reports as CI systems read them", func() {
	It("count a SHOULD not met as a warning apart from failures, a skip only for what did not run, and wall time for checks run side by side", func() {
		// A listener that sends no User-Agent (a SHOULD) and turns CRLF
		// into LF before posting back (a MUST).
		s := stub{name: "no User-Agent, CRLF as LF", postback: func(u string, raw []byte) *http.Request {
			req := correctly(u, bytes.ReplaceAll(raw, []byte("%0D%0A"), []byte("%0A")))
			req.Header.Set("User-Agent", "")
			return req
		}}
		ln := freeListenerErr()
		srv := s.serve("http://" + ln.Addr().String() + "/cgi-bin/webscr")
		defer srv.Close()
		cfg := conformance.Defaults()
		cfg.EmulatorListener, cfg.Listener, cfg.Seed = ln, srv.URL, 5
		cfg.AckTimeout, cfg.PostbackWait = time.Second, time.Second
		cfg.Focus = "PP-POSTBACK-USER-AGENT,PP-VERIFY-CRLF,PP-ACK-GENUINE,PP-VERIFY-UTF-8,PP-CREDIT-ONCE,PD-ALLOWLIST"
		rep, err := conformance.RunAll(context.Background(), cfg, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Summary).To(MatchFields(IgnoreExtras, Fields{"Passed": Equal(2), "Failed": Equal(1), "Warnings": Equal(1)}))
		Expect(rep.Conformant()).To(BeFalse())

		var console strings.Builder
		rep.WriteConsole(&console)
		Expect(console.String()).To(ContainSubstring("warn PP-POSTBACK-USER-AGENT"))
		Expect(console.String()).To(ContainSubstring("2 passed, 1 failed, 1 warnings"))
		Expect(console.String()).To(MatchRegexp(`not run\n  \d+ check\(s\): not selected by the label filter or focus\n`))
		Expect(console.String()).To(MatchRegexp(`\n  1 check\(s\): business level needs the listener's probe`))
		Expect(console.String()).To(MatchRegexp(`\n  1 check\(s\): no PayDo listener given`))
		Expect(console.String()).NotTo(ContainSubstring("off  PP-"), "what did not run is summed up, not listed")

		path := filepath.Join(GinkgoT().TempDir(), "junit.xml")
		Expect(rep.WriteJUnit(path)).To(Succeed())
		suites, err := junit.IngestFile(path)
		Expect(err).NotTo(HaveOccurred())
		tests := map[string]junit.Test{}
		var totals junit.Totals
		for _, su := range suites {
			totals.Tests += su.Totals.Tests
			totals.Passed += su.Totals.Passed
			totals.Failed += su.Totals.Failed
			totals.Skipped += su.Totals.Skipped
			totals.Error += su.Totals.Error
			for _, t := range su.Tests {
				id, _, _ := strings.Cut(t.Name, ":")
				tests[id] = t
			}
		}
		// The checks this run could judge are its tests, the business one
		// skipped without a probe among them; those it was not given
		// (not selected, PayDo without a PayDo listener) are not: the
		// JSON report lists them as disabled.
		Expect(totals).To(MatchFields(IgnoreExtras, Fields{"Tests": Equal(5), "Passed": Equal(3), "Failed": Equal(1), "Error": BeZero(), "Skipped": Equal(1)}))
		Expect(tests).NotTo(HaveKey("PP-CHARGEBACK"))
		Expect(tests).NotTo(HaveKey("PD-ALLOWLIST"))
		ua := tests["PP-POSTBACK-USER-AGENT"]
		Expect(ua.Status).To(Equal(junit.StatusPassed), "a warning is a passed case, not a skip")
		Expect(ua.SystemOut).To(ContainSubstring("SHOULD not met"))
		Expect(string(mustRead(path))).To(MatchRegexp(`<property name="warning" value="SHOULD not met">`))
		Expect(tests["PP-VERIFY-CRLF"].Status).To(Equal(junit.StatusFailed))
		Expect(tests["PP-CREDIT-ONCE"].Status).To(Equal(junit.StatusSkipped))
		Expect(tests["PP-CREDIT-ONCE"].Message).To(ContainSubstring("needs the listener's probe"))

		// Time: the run's wall time at the top; a suite's is the span its
		// checks took side by side, not the sum of their times.
		raw := mustRead(path)
		var doc struct {
			Time   float64 `xml:"time,attr"`
			Suites []struct {
				Name  string  `xml:"name,attr"`
				Time  float64 `xml:"time,attr"`
				Cases []struct {
					Time float64 `xml:"time,attr"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		Expect(xml.Unmarshal(raw, &doc)).To(Succeed())
		Expect(doc.Time).To(BeNumerically("~", rep.Seconds, 0.001))
		first, last := map[string]float64{}, map[string]float64{}
		for _, c := range rep.Checks {
			name := "ipnlab conformance " + string(c.Level) + " " + c.Provider
			if c.Status == scenarios.Skipped || c.Status == scenarios.Disabled {
				continue
			}
			if f, ok := first[name]; !ok || c.Started < f {
				first[name] = c.Started
			}
			last[name] = max(last[name], c.Started+c.Seconds)
		}
		Expect(first).To(HaveKey("ipnlab conformance protocol paypal"))
		for _, su := range doc.Suites {
			Expect(su.Time).To(BeNumerically("~", last[su.Name]-first[su.Name], 0.0005), su.Name)
			Expect(su.Time).To(BeNumerically("<=", rep.Seconds+0.0005), su.Name)
		}
	})
})

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	return b
}
