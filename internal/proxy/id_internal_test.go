package proxy

import (
	"testing"
	"time"
)

// TestRequestIDsSortByTime: generated ids are 32 hex digits, unique, and
// a later millisecond sorts after an earlier one (the ledger appends).
func TestRequestIDsSortByTime(t *testing.T) {
	s := newIDSource()
	t0 := time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := s.next(t0.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 32 || !validRequestID(id) {
			t.Fatalf("id %q is not 32 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %q of a later millisecond sorts before %q", id, prev)
		}
		prev = id
	}
	if a, b := s.next(t0), s.next(t0); a == b {
		t.Fatal("two ids of one millisecond are equal")
	}
}
