package conformance

import (
	"fmt"
	"strings"
)

// Catalog renders the check catalog as Markdown (docs/conformance.md holds
// a copy that CI keeps current).
func Catalog() string {
	var b strings.Builder
	group := ""
	for _, c := range Checks() {
		if g := string(c.Level) + " / " + c.Provider; g != group {
			group = g
			fmt.Fprintf(&b, "\n### %s %s\n\n| ID | requirement | labels | scenario |\n|---|---|---|---|\n",
				strings.ToUpper(c.Provider[:1])+c.Provider[1:], c.Level)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` |\n", c.ID, c.Requirement, strings.Join(c.Labels, ", "), c.Scenario)
	}
	return b.String()
}
