package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// UnitNames returns the billable unit names used by free units and price
// tiers.
func UnitNames() []string {
	return []string{"requests", "input_tokens", "output_tokens", "images", "megapixels", "audio_seconds", "gpu_seconds", "output_audio_seconds"}
}

// RateOff turns a rate limit off where a default would apply (for example
// protection.ip_rate_limit: off).
const RateOff = "off"

// Rate is a parsed "N/period" limit: a burst of N and N per Period.
type Rate struct {
	N      int
	Period time.Duration
}

// ParseRate parses "N/s", "N/m" or "N/h" (also "N/sec", "N/min", "N/hour").
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/s, N/m or N/h", s)
	}
	count, err := strconv.Atoi(n)
	if err != nil || count <= 0 {
		return Rate{}, fmt.Errorf("rate %q: N must be a positive integer", s)
	}
	var d time.Duration
	switch per {
	case "s", "sec", "second":
		d = time.Second
	case "m", "min", "minute":
		d = time.Minute
	case "h", "hour":
		d = time.Hour
	default:
		return Rate{}, fmt.Errorf("rate %q: period must be s, m or h", s)
	}
	return Rate{N: count, Period: d}, nil
}

// ParseSize parses a byte size such as "512", "64KiB", "10MiB", "1GiB"
// (also KB, MB, GB as powers of 1000).
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q: want a positive size such as 10MiB", s)
	}
	return n * mult, nil
}
