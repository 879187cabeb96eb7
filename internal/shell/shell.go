// Package shell writes command lines a user pastes into a POSIX shell
// (replay lines, the console's "made again" command, exported
// variables): every value quoted so that it stays one word and runs
// nothing, whatever it holds.
package shell

import "strings"

// safe are the bytes a word may hold unquoted.
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/@=+%"

// Quote is s as one shell word: as it is when every byte is safe, else in
// single quotes (a quote inside written '\”).
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command is name followed by args, each quoted.
func Command(name string, args ...string) string {
	words := make([]string, 0, len(args)+1)
	words = append(words, name)
	for _, a := range args {
		words = append(words, Quote(a))
	}
	return strings.Join(words, " ")
}
