package tollgate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Money is an amount in micro-units (1e-6) of the configured currency. It is
// never a float.
type Money int64

// MicrosPerUnit is the number of micro-units in one unit of currency.
const MicrosPerUnit = 1_000_000

// ParseMoney parses a decimal string such as "5", "0.0015" or "-1.25" with at
// most six fractional digits. EInvalid for anything else.
func ParseMoney(s string) (Money, error) {
	orig := s
	bad := func(why string) (Money, error) {
		return 0, Errorf(EInvalid, "invalid amount %q: %s", orig, why)
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") {
		return bad("want digits such as 1.50")
	}
	if len(frac) > 6 {
		return bad("more than 6 decimal places")
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return bad("want digits such as 1.50")
			}
		}
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/MicrosPerUnit-1 {
		return bad("too large")
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	m := w*MicrosPerUnit + f
	if neg {
		m = -m
	}
	return Money(m), nil
}

// String formats m with six decimals, e.g. "0.050000".
func (m Money) String() string {
	sign := ""
	v := int64(m)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%06d", sign, v/MicrosPerUnit, v%MicrosPerUnit)
}
