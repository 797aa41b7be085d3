package postgres_test

import (
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/internal/storetest"
)

// BenchmarkJobPick: the time to pick the next job must not grow with the
// queue's length (go test -bench JobPick ./internal/postgres, with TOLLGATE_TEST_POSTGRES).
func BenchmarkJobPick(b *testing.B) {
	testURL(b)
	for _, n := range []int{1_000, 10_000, 30_000} {
		b.Run(fmt.Sprintf("queued=%d/users=1000", n), func(b *testing.B) {
			storetest.BenchPick(b, MustOpen(b).Jobs(), n, 1000)
		})
	}
}
