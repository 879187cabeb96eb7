package conformance

import (
	"fmt"
	"strings"

	"github.com/ipnlab/ipnlab/listener/mutants"
)

// Gallery renders the mutant gallery as Markdown: each bug, what it costs,
// and the checks that must catch it.
func Gallery() string {
	var b strings.Builder
	b.WriteString("\n| mutant | bug | what it costs | caught by |\n|---|---|---|---|\n")
	for _, m := range mutants.All() {
		ids := make([]string, len(m.Targets))
		for i, t := range m.Targets {
			ids[i] = "`" + t + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, m.Bug, m.Why, strings.Join(ids, ", "))
	}
	return b.String()
}
