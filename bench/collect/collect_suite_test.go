package main

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/internal/specwait"
)

func TestCollect(t *testing.T) {
	RegisterFailHandler(Fail)
	specwait.Defaults()
	RunSpecs(t, "bench collect")
}

const sample = `goos: linux
goarch: amd64
pkg: github.com/ipnlab/ipnlab/form
cpu: Test CPU
BenchmarkParse/form.Parse-2         	  303483	      3000 ns/op	 236.13 MB/s	    4408 B/op	      10 allocs/op
BenchmarkParse/baseline=url.ParseQuery-2         	  166066	     10000 ns/op	  81.20 MB/s	    5680 B/op	      53 allocs/op
BenchmarkParse/form.Parse-2         	  303483	      4000 ns/op	 236.13 MB/s	    4408 B/op	      10 allocs/op
BenchmarkParse/baseline=url.ParseQuery-2         	  166066	     10000 ns/op	  81.20 MB/s	    5680 B/op	      53 allocs/op
PASS
ok  	github.com/ipnlab/ipnlab/form	3.1s
pkg: github.com/ipnlab/ipnlab/listener
BenchmarkEndToEnd/concurrency=64-2  3000  400000 ns/op  16000 ceiling_ipn/s  2400 e2e_ipn/s  0.15 ratio
BenchmarkEndToEnd/concurrency=64-2  3000  400000 ns/op  17000 ceiling_ipn/s  2600 e2e_ipn/s  0.16 ratio
BenchmarkEndToEnd/concurrency=64-2  3000  400000 ns/op  15000 ceiling_ipn/s  2300 e2e_ipn/s  0.14 ratio
BenchmarkSuite/without-slow-2  1  2000000000 ns/op  2.1 suite_wall_seconds  50 checks
`

var _ = Describe("collect", func() {
	It("summarizes every metric over its runs and pairs same-run ratios", func() {
		runs, err := Parse(strings.NewReader(sample))
		Expect(err).NotTo(HaveOccurred())
		Expect(runs.Header).To(Equal(map[string]string{"goos": "linux", "goarch": "amd64", "cpu": "Test CPU"}))
		res := Summarize(runs, "go1.x", time.Unix(0, 0))
		Expect(res.Benchmarks["BenchmarkEndToEnd/concurrency=64"]["ratio"]).To(Equal(Stat{Min: 0.14, Median: 0.15, Max: 0.16, Runs: 3}))
		Expect(res.Benchmarks["BenchmarkParse/form.Parse"]["ns/op"]).To(Equal(Stat{Min: 3000, Median: 3500, Max: 4000, Runs: 2}))
		Expect(res.Figures).To(HaveKeyWithValue("e2e_ratio_to_ceiling", 0.15))
		Expect(res.Figures).To(HaveKeyWithValue("suite_wall_seconds", 2.1))
		Expect(res.Figures["form_parse_ratio_to_url_parsequery"]).To(BeNumerically("~", 0.35, 1e-9))

		byKey := map[string]Headline{}
		for _, h := range res.Headlines {
			byKey[h.Key] = h
		}
		Expect(*byKey["e2e_ratio_to_ceiling"].Met).To(BeFalse())
		Expect(*byKey["suite_wall_seconds"].Met).To(BeTrue())
		Expect(byKey["container_start_to_ready_ms"].Missing).To(BeTrue())
		Expect(res.Console()).To(ContainSubstring("target >= 0.35: NOT met"))
		Expect(res.Markdown()).To(ContainSubstring("| reference listener (durable SQLite, synchronous=FULL) end to end IPN/s over the HTTP ceiling, concurrency 64 | 0.15 | 0.14 | 0.16 | >= 0.35 (**not met**) |"))
	})

	It("joins the ends of a result line that a benchmark's own output cut in two", func() {
		runs, err := Parse(strings.NewReader("BenchmarkExplore-2   \t       1\t175731108776 ns/op\t         5.000 median_histories\n" +
			"BenchmarkExplore-2   \texplore against the mutant gallery (5 seeds each, default budget):\n" +
			"ack-204                  found from 5/5 seeds, median 1 histories, 0.0s\n" +
			"       1\t112503759409 ns/op\t         7.000 median_histories\n"))
		Expect(err).NotTo(HaveOccurred())
		Expect(runs.Metrics["BenchmarkExplore"]["median_histories"]).To(Equal([]float64{5, 7}))
	})

	It("keeps the sections bench/test-time.sh and bench/busy-test.sh wrote when it rewrites RESULTS.md, and nothing else", func() {
		busy := "<!-- busy:begin -->\n## make test beside a CPU hog\n| 1 | passed | 600 |\n<!-- busy:end -->"
		own := "<!-- test-time:begin -->\n## make test's own time\n| 1 | passed | 300 |\n<!-- test-time:end -->"
		Expect(keptSections("# Benchmark results\n\nold figures\n\n" + busy + "\n")).To(Equal("\n" + busy + "\n"))
		Expect(keptSections("# Benchmark results\n\nold figures\n\n" + busy + "\n\n" + own + "\n")).To(Equal("\n" + own + "\n\n" + busy + "\n"))
		Expect(keptSections("# Benchmark results\n\nold figures\n")).To(BeEmpty())
	})

	It("refuses input with no results, or a result it cannot read", func() {
		_, err := Parse(strings.NewReader("PASS\nok x 1s\n"))
		Expect(err).To(MatchError(ContainSubstring("no benchmark results")))
		_, err = Parse(strings.NewReader("BenchmarkX-2  10  12 ns/op 7\n"))
		Expect(err).To(MatchError(ContainSubstring("line 1")))
		_, err = Parse(strings.NewReader("BenchmarkX-2  10  twelve ns/op\n"))
		Expect(err).To(MatchError(ContainSubstring(`value "twelve"`)))
	})
})
