package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// BenchmarkLedgerWrite measures the meter's two group commits per
// record: its open record in a batch of 16, its settlement in a batch of
// 256. Reported per record. BENCH_DROP="index …" drops those indexes
// first, to price each one.
func BenchmarkLedgerWrite(b *testing.B) {
	for _, newID := range []bool{true, false} {
		b.Run(fmt.Sprintf("newID=%v", newID), func(b *testing.B) {
			db := open(b, filepath.Join(b.TempDir(), "db"))
			if err := db.Migrate(b.Context()); err != nil {
				b.Fatal(err)
			}
			for _, q := range strings.Fields(os.Getenv("BENCH_DROP")) {
				if _, err := db.write.ExecContext(b.Context(), "DROP INDEX "+q); err != nil {
					b.Fatal(err)
				}
			}
			l := db.Ledger()
			start := time.Date(2026, time.November, 23, 0, 0, 0, 0, time.UTC)
			var pending []*tollgate.UsageRecord
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += 16 {
				open := make([]*tollgate.UsageRecord, 16)
				for j := range open {
					open[j] = &tollgate.UsageRecord{RequestID: fmt.Sprintf("%016x%016x", start.UnixMilli(), i+j), NewID: newID,
						Start: start, UserID: "usr_1", TenantID: "acme", Route: "bench", Reserved: 100}
				}
				if err := l.Write(b.Context(), open, nil); err != nil {
					b.Fatal(err)
				}
				for _, r := range open {
					s := *r
					s.End, s.Outcome, s.Status, s.BytesOut, s.Cost, s.Settled = start.Add(time.Millisecond), tollgate.ResultOK, 200, 219, 100, true
					pending = append(pending, &s)
				}
				if len(pending) >= 256 {
					if err := l.Write(b.Context(), nil, pending); err != nil {
						b.Fatal(err)
					}
					pending = pending[:0]
				}
			}
		})
	}
}
