// Command collect turns `go test -bench` output (several runs of each
// benchmark, -count N) into bench/results.json and bench/RESULTS.md: every
// metric with its min, median and max, and the headline figures next to
// their targets. `make bench` runs it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

func main() {
	in := flag.String("in", "", "go test -bench output (default stdin)")
	jsonOut := flag.String("json", "bench/results.json", "where the JSON results go")
	mdOut := flag.String("md", "bench/RESULTS.md", "where the readable results go")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "collect: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	var r io.Reader = os.Stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "collect:", err)
			os.Exit(2)
		}
		defer f.Close()
		r = f
	}
	runs, err := Parse(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "collect:", err)
		os.Exit(2)
	}
	res := Summarize(runs, runtime.Version(), time.Now().UTC())
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "collect:", err)
		os.Exit(1)
	}
	md := res.Markdown()
	// The sections the scripts timing make test write are not a
	// benchmark's: kept.
	if old, err := os.ReadFile(*mdOut); err == nil {
		md += keptSections(string(old))
	}
	if err := os.WriteFile(*jsonOut, append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "collect:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*mdOut, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "collect:", err)
		os.Exit(1)
	}
	fmt.Print(res.Console())
}

// keptNames are the sections of RESULTS.md that make bench does not
// write: make test's own time (bench/test-time.sh) and make test beside
// a CPU hog (bench/busy-test.sh).
var keptNames = []string{"test-time", "busy"}

// keptSections are the parts of an earlier RESULTS.md that make bench
// does not write, each with the blank line before it; "" when there are
// none.
func keptSections(md string) string {
	var out strings.Builder
	for _, name := range keptNames {
		begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
		i, j := strings.Index(md, begin), strings.Index(md, end)
		if i < 0 || j < i {
			continue
		}
		out.WriteString("\n" + md[i:j+len(end)] + "\n")
	}
	return out.String()
}
