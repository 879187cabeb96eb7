// Package suggest finds the name a user most likely meant when a word
// names nothing known: "did you mean web_accept?" for web_acept.
package suggest

import (
	"fmt"
	"strings"
)

// Closest is the candidate nearest to word, when one is near enough to
// be a slip: the same but for case and punctuation (latin9, Latin-9), or
// at most two edits apart (one for words of four letters or fewer). Ties
// go to the earlier candidate.
func Closest(word string, candidates []string) (string, bool) {
	w := fold(word)
	if w == "" {
		return "", false
	}
	limit := 2
	if len(w) <= 4 {
		limit = 1
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		d := distance(w, fold(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist <= limit
}

// Hint is " (did you mean "X"?)" for the closest candidate, or "".
func Hint(word string, candidates []string) string {
	if c, ok := Closest(word, candidates); ok && c != word {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// fold lower-cases s and drops what separates words: "-", "_", ".", " ".
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}

// distance is the Levenshtein distance between a and b, by bytes (the
// names compared are ASCII).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
