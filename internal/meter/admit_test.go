package meter_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// fire admits n calls by p at once through the meters in turn, releases
// the admitted ones as served, and returns how many were admitted and how
// many refused with insufficient_quota.
func fire(t *testing.T, meters []*meter.Meter, p *tollgate.Principal, route string, n int) (admitted, quota int64) {
	t.Helper()
	var a, q atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			rel, err := meters[i%len(meters)].Admit(context.Background(), call(p, route))
			switch tollgate.ErrorCode(err) {
			case "":
				a.Add(1)
				rel(context.Background(), ok(tollgate.Units{}))
			case tollgate.EQuota:
				q.Add(1)
			default:
				t.Errorf("Admit: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	return a.Load(), q.Load()
}

func TestBudgetIsExactOnOneNode(t *testing.T) {
	m, l, _ := setup(t, "")
	p := principal("u1", "t1", "capped")
	admitted, quota := fire(t, []*meter.Meter{m}, p, "chat", 200)
	if admitted != 50 || quota != 150 {
		t.Fatalf("admitted %d, refused %d; want exactly 50 and 150", admitted, quota)
	}
	m.Stop()
	if n, cost := total(t, l, tollgate.UsageQuery{UserID: "u1"}); n != 50 || cost.String() != "0.050000" {
		t.Errorf("ledger: %d requests costing %s, want 50 costing 0.050000", n, cost)
	}
}

func TestBudgetIsExactAcrossReplicas(t *testing.T) {
	pg, url, schema := mustPostgres(t)
	_, rurl, prefix := mustRedis(t)
	cfg := mustConfig(t, "")
	var meters []*meter.Meter
	for range 2 {
		// Each replica has its own pools, as separate processes would.
		l := openPostgres(t, url, schema).Ledger()
		rc := openRedis(t, rurl, prefix).BudgetCounters()
		meters = append(meters, mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: rc, Cluster: true}))
	}
	p := principal("u1", "t1", "capped")
	admitted, quota := fire(t, meters, p, "chat", 200)
	if admitted != 50 || quota != 150 {
		t.Fatalf("admitted %d, refused %d; want exactly 50 and 150", admitted, quota)
	}
	for _, m := range meters {
		m.Stop()
	}
	if n, cost := total(t, pg.Ledger(), tollgate.UsageQuery{UserID: "u1"}); n != 50 || cost.String() != "0.050000" {
		t.Errorf("ledger: %d requests costing %s, want 50 costing 0.050000", n, cost)
	}
}

func TestRedisLostCountersAreRebuiltFromTheLedger(t *testing.T) {
	_, url, schema := mustPostgres(t)
	rdb, rurl, prefix := mustRedis(t)
	cfg := mustConfig(t, "")
	l := openPostgres(t, url, schema).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: openRedis(t, rurl, prefix).BudgetCounters(), Cluster: true})
	p := principal("u1", "t1", "capped")
	if a, _ := fire(t, []*meter.Meter{m}, p, "chat", 30); a != 30 {
		t.Fatalf("admitted %d of the first 30", a)
	}
	m.Stop() // every settlement committed
	if err := rdb.DeletePrefix(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2 := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: openRedis(t, rurl, prefix).BudgetCounters(), Cluster: true})
	if a, q := fire(t, []*meter.Meter{m2}, p, "chat", 40); a != 20 || q != 20 {
		t.Errorf("after Redis lost its counters: admitted %d, refused %d; want 20 and 20", a, q)
	}
}

func TestReservationReleasedOnFailure(t *testing.T) {
	m, l, _ := setup(t, "")
	p := principal("u1", "t1", "capped")
	// 50 calls fail upstream or are rejected: each costs nothing and
	// gives its reservation back, so 50 more still fit.
	for i := range 50 {
		rel, err := m.Admit(context.Background(), call(p, "chat"))
		if err != nil {
			t.Fatalf("Admit %d: %v", i, err)
		}
		res := tollgate.ResultUpstreamError
		if i%2 == 0 {
			res = tollgate.ResultRejected
		}
		rel(context.Background(), &tollgate.Outcome{Status: 502, Result: res})
	}
	if a, q := fire(t, []*meter.Meter{m}, p, "chat", 60); a != 50 || q != 10 {
		t.Errorf("admitted %d, refused %d after 50 failures; want 50 and 10", a, q)
	}
	m.Stop()
	if n, cost := total(t, l, tollgate.UsageQuery{UserID: "u1"}); n != 100 || cost.String() != "0.050000" {
		t.Errorf("ledger: %d records costing %s, want 100 costing 0.050000", n, cost)
	}
}

func TestTenantBudgetSharedByItsUsers(t *testing.T) {
	m, _, _ := setup(t, "")
	var admitted int
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		rel, err := m.Admit(context.Background(), call(principal(u, "acme", "tenantcap"), "chat"))
		if tollgate.ErrorCode(err) == tollgate.EQuota {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		admitted++
		rel(context.Background(), ok(tollgate.Units{}))
	}
	if admitted != 3 {
		t.Errorf("admitted %d calls of acme's users, want 3 (tenant budget 0.003)", admitted)
	}
	if _, err := m.Admit(context.Background(), call(principal("f", "other", "tenantcap"), "chat")); err != nil {
		t.Errorf("another tenant was refused: %v", err)
	}
}

func TestOverrideReplacesPlanBudget(t *testing.T) {
	m, l, _ := setup(t, "")
	if err := m.SetBudget(context.Background(), &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "vip",
		Amount: 2000, Period: tollgate.PeriodTotal}); err != nil {
		t.Fatal(err)
	}
	p := principal("vip", "t1", "capped")
	if a, q := fire(t, []*meter.Meter{m}, p, "chat", 5); a != 2 || q != 3 {
		t.Errorf("admitted %d, refused %d; want 2 and 3 under a total credit of 0.002", a, q)
	}
	if err := m.DeleteBudget(context.Background(), tollgate.ScopeUser, "vip"); err != nil {
		t.Fatal(err)
	}
	if a, _ := fire(t, []*meter.Meter{m}, p, "chat", 5); a != 5 {
		t.Errorf("admitted %d of 5 after the override was removed (plan: 0.05 a day)", a)
	}
	_ = l
}

func TestReservationFromMaxTokensAndSettledToActual(t *testing.T) {
	m, l, _ := setup(t, "")
	if err := m.SetBudget(context.Background(), &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "u1",
		Amount: 10_000, Period: tollgate.PeriodDay}); err != nil {
		t.Fatal(err)
	}
	p := principal("u1", "t1", "")
	c := call(p, "tokens")
	c.BytesIn, c.MaxOutputTokens = 1000, 3000
	// Reserved: 0.001 + 1000 input × 0.001/1k + 3000 output × 0.002/1k = 0.008.
	rel, err := m.Admit(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	second := call(p, "tokens")
	second.BytesIn, second.MaxOutputTokens = 1000, 3000
	if _, err := m.Admit(context.Background(), second); tollgate.ErrorCode(err) != tollgate.EQuota {
		t.Fatalf("a second 0.008 reservation fit in 0.010 with 0.008 held: %v", err)
	}
	rel(context.Background(), ok(tollgate.Units{InputTokens: 200, OutputTokens: 500})) // costs 0.0022
	m.Stop()
	r, err := l.Record(context.Background(), c.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reserved.String() != "0.008000" || r.Cost.String() != "0.002200" || r.Units.OutputTokens != 500 || !r.Settled {
		t.Errorf("record: reserved %s cost %s units %+v", r.Reserved, r.Cost, r.Units)
	}
}

func TestBudgetStatesForMe(t *testing.T) {
	m, _, _ := setup(t, "")
	p := principal("u1", "t1", "capped")
	fire(t, []*meter.Meter{m}, p, "chat", 12)
	st, err := m.BudgetStates(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Scope != "user" || st[0].Limit != "0.050000" || st[0].Committed != "0.012000" ||
		st[0].Remaining != "0.038000" || st[0].Period != "day" || st[0].PeriodStart == nil {
		t.Errorf("budget states = %+v", st)
	}
	if st, err := m.BudgetStates(context.Background(), principal("u2", "t1", "")); err != nil || len(st) != 0 {
		t.Errorf("a plan without budgets: %+v, %v", st, err)
	}
}

// TestCountersUnreachableFailsClosed: without its budget counters (Redis
// down) the meter refuses calls with 503 rather than forwarding them over
// budget or unrecorded.
func TestCountersUnreachableFailsClosed(t *testing.T) {
	cfg := mustConfig(t, "")
	l := mustSQLite(t).Ledger()
	down := openRedis(t, "redis://127.0.0.1:1/0", "tg_test_down:")
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: down.BudgetCounters(), Cluster: true})
	c := call(principal("u1", "t1", "capped"), "chat")
	_, err := m.Admit(context.Background(), c)
	if tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("Admit with Redis down: %v, want unavailable", err)
	}
	if _, err := l.Record(context.Background(), c.RequestID); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Errorf("a refused call left a record: %v", err)
	}
	// Callers without a budget need no counters.
	if _, err := m.Admit(context.Background(), call(principal("u2", "t1", ""), "chat")); err != nil {
		t.Errorf("unbudgeted call refused: %v", err)
	}
}
