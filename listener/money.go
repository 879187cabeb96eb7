package listener

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amounts: cents in the ledger, strings with two decimals on the wire.

// Cents reads an amount such as "19.95", "-4.00", "25" or "" (zero) as
// the ledger keeps it.
func Cents(s string) (int64, error) { return cents(s) }

// cents reads an amount such as "19.95", "-4.00", "25" or "" (zero).
func cents(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("amount %q", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/100-1 {
		return 0, fmt.Errorf("amount %q", s)
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	c := w*100 + f
	if neg {
		c = -c
	}
	return c, nil
}

func money(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
