package meter_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// BenchmarkGateway compares chat completions through the data plane
// without admissions and with the meter (SQLite ledger, a daily budget
// large enough never to refuse).
func BenchmarkGateway(b *testing.B) {
	up := newChatUpstream(b)
	cfg := gatewayConfig(b, up.URL)
	l := mustSQLite(b).Ledger()
	m := mustMeter(b, cfg, meter.Options{Ledger: l, Budgets: l})
	if err := m.SetBudget(context.Background(), &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "bench",
		Amount: 1 << 50, Period: tollgate.PeriodDay}); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name       string
		admissions []tollgate.Admission
	}{{"plain", nil}, {"metered", []tollgate.Admission{m}}} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := proxy.New(cfg, proxy.Options{Auth: bearerAuth{}, Admissions: bc.admissions, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			gw := httptest.NewServer(p)
			defer gw.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			b.SetParallelism(16)
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions",
						strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
					req.Header.Set("Authorization", "Bearer bench")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// BenchmarkAdmit is the meter alone: reserve, open record (group commit),
// settle, from many goroutines.
func BenchmarkAdmit(b *testing.B) {
	cfg := mustConfig(b, "")
	l := mustSQLite(b).Ledger()
	m := mustMeter(b, cfg, meter.Options{Ledger: l, Budgets: l})
	p := principal("bench", "t1", "")
	b.SetParallelism(32)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rel, err := m.Admit(context.Background(), call(p, "chat"))
			if err != nil {
				b.Error(err)
				return
			}
			rel(context.Background(), ok(tollgate.Units{InputTokens: 5, OutputTokens: 7}))
		}
	})
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU (user + system) this process used so far: a cost per
// request that does not depend on what else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
