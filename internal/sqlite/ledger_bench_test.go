package sqlite

import (
	"context"
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
// 256. Reported per record, in wall time and in cpu-ns/op, the CPU time
// of the whole process (checkpoints and GC included), which a busy
// machine disturbs less. BENCH_DROP="index …" drops those indexes first,
// to price each one.
func BenchmarkLedgerWrite(b *testing.B) {
	benchLedgerWrite(b, func(int) int { return 16 })
}

// BenchmarkLedgerWriteSmallOpens is BenchmarkLedgerWrite with the open
// batches of a loaded gateway: one or two records each.
func BenchmarkLedgerWriteSmallOpens(b *testing.B) {
	benchLedgerWrite(b, func(i int) int { return 1 + i%2 })
}

func benchLedgerWrite(b *testing.B, openBatch func(i int) int) {
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
			// The meter's writer passes a context that is never done, which
			// spares the driver a watcher for every statement.
			ctx := context.Background()
			l := db.Ledger()
			start := time.Date(2026, time.November, 23, 0, 0, 0, 0, time.UTC)
			var pending []*tollgate.UsageRecord
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			for i, batch := 0, 0; i < b.N; batch++ {
				open := make([]*tollgate.UsageRecord, openBatch(batch))
				for j := range open {
					open[j] = &tollgate.UsageRecord{RequestID: fmt.Sprintf("%016x%016x", start.UnixMilli(), i+j), NewID: newID,
						Start: start, UserID: "usr_1", TenantID: "acme", Route: "bench", Reserved: 100}
				}
				i += len(open)
				if err := l.Write(ctx, open, nil); err != nil {
					b.Fatal(err)
				}
				for _, r := range open {
					s := *r
					s.End, s.Outcome, s.Status, s.BytesOut, s.Cost, s.Settled = start.Add(time.Millisecond), tollgate.ResultOK, 200, 219, 100, true
					pending = append(pending, &s)
				}
				if len(pending) >= 256 {
					if err := l.Write(ctx, nil, pending); err != nil {
						b.Fatal(err)
					}
					pending = pending[:0]
				}
			}
			b.StopTimer()
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkJournalAppend measures the journal's share of an open record:
// appends of one or two records, as a loaded gateway's group commits
// make them, each released so segments come and go. Reported per record.
func BenchmarkJournalAppend(b *testing.B) {
	j := newJournal(filepath.Join(b.TempDir(), "db"), defaultSegmentSize, time.Now)
	b.Cleanup(func() { _ = j.close() })
	start := time.Date(2026, time.November, 23, 0, 0, 0, 0, time.UTC)
	var recs []*tollgate.UsageRecord
	for i := range 2 {
		recs = append(recs, &tollgate.UsageRecord{RequestID: fmt.Sprintf("req%023d", i), Start: start,
			UserID: "usr_k3v9q0c2m1x7b4ab", TenantID: "acme", Route: "chat", Model: "llama-3-8b", Reserved: 100})
	}
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for i, batch := 0, 0; i < b.N; batch++ {
		n := 1 + batch%2
		seg, err := j.append(recs[:n])
		if err != nil {
			b.Fatal(err)
		}
		j.release(seg, n)
		i += n
	}
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkLedgerSettle measures settlement alone: records that were
// never opened, settled in batches of 256. Reported per record.
func BenchmarkLedgerSettle(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "db"))
	if err := db.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	l := db.Ledger()
	start := time.Date(2026, time.November, 23, 0, 0, 0, 0, time.UTC)
	batch := make([]*tollgate.UsageRecord, 256)
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for j := range batch {
			batch[j] = &tollgate.UsageRecord{RequestID: fmt.Sprintf("%016x%016x", start.UnixMilli(), i+j), Start: start,
				End: start.Add(time.Millisecond), UserID: "usr_1", TenantID: "acme", Route: "bench", Outcome: tollgate.ResultOK,
				Status: 200, BytesOut: 219, Cost: 100, Reserved: 100, Settled: true}
		}
		if err := l.Write(ctx, nil, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
