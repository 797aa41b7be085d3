package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// LedgerStore is what an engine's ledger implements.
type LedgerStore interface {
	tollgate.Ledger
	tollgate.BudgetStore
}

// RunLedger runs the ledger and budget-override suite. open must return a
// new, migrated, empty ledger for each call and arrange for it to be
// closed with t.Cleanup.
func RunLedger(t *testing.T, open func(t *testing.T) LedgerStore) {
	t.Run("OpenThenSettle", func(t *testing.T) { testOpenThenSettle(t, open(t)) })
	t.Run("OpenConflict", func(t *testing.T) { testOpenConflict(t, open(t)) })
	t.Run("Reconcile", func(t *testing.T) { testReconcile(t, open(t)) })
	t.Run("Leases", func(t *testing.T) { testLeases(t, open(t)) })
	t.Run("Held", func(t *testing.T) { testHeld(t, open(t)) })
	t.Run("HeldMove", func(t *testing.T) { testHeldMove(t, open(t)) })
	t.Run("Committed", func(t *testing.T) { testCommitted(t, open(t)) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, open(t)) })
	t.Run("Export", func(t *testing.T) { testExport(t, open(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, open(t)) })
	t.Run("BudgetOverrides", func(t *testing.T) { testBudgetOverrides(t, open(t)) })
	t.Run("MarkAlert", func(t *testing.T) { testMarkAlert(t, open(t)) })
}

// day0 is midnight UTC of a fixed day; records start at day0 + d.
var day0 = time.Date(2026, time.November, 3, 0, 0, 0, 0, time.UTC)

func openRecord(id, user, tenant string, start time.Duration, reserved tollgate.Money) *tollgate.UsageRecord {
	return &tollgate.UsageRecord{RequestID: id, Start: day0.Add(start), UserID: user, TenantID: tenant,
		Route: "chat", Model: "m1", BytesIn: 100, Reserved: reserved}
}

func settle(r *tollgate.UsageRecord, cost tollgate.Money, u tollgate.Units) *tollgate.UsageRecord {
	s := *r
	s.End, s.Outcome, s.Status, s.Settled = r.Start.Add(1500*time.Millisecond), tollgate.ResultOK, 200, true
	s.BytesOut, s.LatencyMS, s.Units, s.Cost = 2000, 1500, u, cost
	return &s
}

func mustWrite(t *testing.T, l LedgerStore, open, settled []*tollgate.UsageRecord) {
	t.Helper()
	if err := l.Write(t.Context(), open, settled); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func testOpenThenSettle(t *testing.T, l LedgerStore) {
	r := openRecord("req-1", "u1", "t1", time.Hour+123456789, 5000)
	mustWrite(t, l, []*tollgate.UsageRecord{r}, nil)
	got, err := l.Record(t.Context(), "req-1")
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if got.Settled || got.Seq != 0 || got.Reserved != 5000 || got.UserID != "u1" || got.TenantID != "t1" {
		t.Errorf("open record = %+v", got)
	}
	wantTime(t, "Start", got.Start, r.Start)
	wantTime(t, "End", got.End, time.Time{})

	u := tollgate.Units{InputTokens: 10, OutputTokens: 20, Images: 1, MegapixelMillis: 786, AudioMillis: 1500, GPUMillis: 250,
		OutputAudioMillis: 2800}
	s := settle(r, 4200, u)
	mustWrite(t, l, nil, []*tollgate.UsageRecord{s})
	got, err = l.Record(t.Context(), "req-1")
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if !got.Settled || got.Seq <= 0 || got.Cost != 4200 || got.Reserved != 5000 || got.Outcome != tollgate.ResultOK ||
		got.Status != 200 || got.BytesOut != 2000 || got.LatencyMS != 1500 {
		t.Errorf("settled record = %+v", got)
	}
	u.Megapixels = 0.786
	if got.Units != u {
		t.Errorf("units = %+v, want %+v", got.Units, u)
	}
	wantTime(t, "End", got.End, s.End)

	// Settling again changes nothing: the first settlement is the truth.
	again := settle(r, 9999, tollgate.Units{})
	mustWrite(t, l, nil, []*tollgate.UsageRecord{again})
	if got2, _ := l.Record(t.Context(), "req-1"); got2.Cost != 4200 || got2.Seq != got.Seq {
		t.Errorf("second settle changed the record: cost %s seq %d", got2.Cost, got2.Seq)
	}

	// A record never appended is inserted settled.
	lone := settle(openRecord("req-2", "u1", "t1", 2*time.Hour, 0), 10, tollgate.Units{})
	mustWrite(t, l, nil, []*tollgate.UsageRecord{lone})
	if got, err := l.Record(t.Context(), "req-2"); err != nil || !got.Settled || got.Cost != 10 {
		t.Errorf("lone settle = %+v, %v", got, err)
	}

	_, err = l.Record(t.Context(), "nope")
	wantCode(t, "Record(nope)", err, tollgate.ENotFound)
}

func testOpenConflict(t *testing.T, l LedgerStore) {
	mustWrite(t, l, []*tollgate.UsageRecord{openRecord("a", "u1", "t1", 0, 1)}, nil)
	err := l.Write(t.Context(), []*tollgate.UsageRecord{openRecord("b", "u1", "t1", 0, 1), openRecord("a", "u1", "t1", 0, 1)}, nil)
	wantCode(t, "Write(duplicate)", err, tollgate.EConflict)
	_, err = l.Record(t.Context(), "b")
	wantCode(t, "Record(b) of the failed batch", err, tollgate.ENotFound)
}

func testReconcile(t *testing.T, l LedgerStore) {
	a := openRecord("a", "u1", "t1", time.Minute, 700)
	b := openRecord("b", "u1", "t1", 2*time.Minute, 300)
	c := openRecord("c", "u2", "t1", 10*time.Minute, 900) // still in flight
	d := openRecord("d", "u1", "t1", 0, 50)
	e := openRecord("e", "u1", "t1", time.Minute, 10) // a replica's: reconciled when its lease expires
	e.Replica = "r1"
	if err := l.RenewLease(t.Context(), "r1", day0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, l, []*tollgate.UsageRecord{a, b, c, d, e}, []*tollgate.UsageRecord{settle(d, 40, tollgate.Units{})})

	at := day0.Add(time.Hour)
	got, err := l.Reconcile(t.Context(), day0.Add(5*time.Minute), at, true)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.RequestID)
		if r.Outcome != tollgate.ResultUnknown || !r.Settled || r.Cost != r.Reserved {
			t.Errorf("reconciled %s = %+v", r.RequestID, r)
		}
	}
	if !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("reconciled %v, want [a b]", ids)
	}
	rec, _ := l.Record(t.Context(), "a")
	if !rec.Settled || rec.Outcome != tollgate.ResultUnknown || rec.Cost != 700 || rec.Seq == 0 {
		t.Errorf("stored a = %+v", rec)
	}
	wantTime(t, "a.End", rec.End, at)
	if rec, _ := l.Record(t.Context(), "c"); rec.Settled {
		t.Errorf("c started after the cutoff but was reconciled")
	}
	if rec, _ := l.Record(t.Context(), "e"); rec.Settled {
		t.Errorf("e names a replica with a lease but was reconciled")
	}
	if rec, _ := l.Record(t.Context(), "d"); rec.Cost != 40 || rec.Outcome != tollgate.ResultOK {
		t.Errorf("settled d changed: %+v", rec)
	}

	got, err = l.Reconcile(t.Context(), day0.Add(time.Hour), at, false)
	if err != nil || len(got) != 1 || got[0].RequestID != "c" || got[0].Cost != 0 {
		t.Fatalf("Reconcile without charge = %+v, %v", got, err)
	}
	if rec, _ := l.Record(t.Context(), "c"); rec.Cost != 0 || !rec.Settled {
		t.Errorf("c = %+v, want settled at no cost", rec)
	}
	if got, err := l.Reconcile(t.Context(), day0.Add(time.Hour), at, true); err != nil || len(got) != 0 {
		t.Errorf("Reconcile with nothing open = %v, %v", got, err)
	}
}

func testCommitted(t *testing.T, l LedgerStore) {
	old := openRecord("old", "u1", "t1", -48*time.Hour, 1000)
	s1 := openRecord("s1", "u1", "t1", time.Hour, 500)
	s2 := openRecord("s2", "u2", "t1", time.Hour, 500)
	o1 := openRecord("o1", "u1", "t1", 2*time.Hour, 800) // open: its reservation counts
	o2 := openRecord("o2", "u1", "t2", 3*time.Hour, 100)
	mustWrite(t, l, []*tollgate.UsageRecord{old, s1, s2, o1, o2},
		[]*tollgate.UsageRecord{settle(old, 900, tollgate.Units{}), settle(s1, 250, tollgate.Units{}), settle(s2, 70, tollgate.Units{})})
	for _, tt := range []struct {
		scope tollgate.BudgetScope
		id    string
		since time.Time
		want  tollgate.Money
	}{
		{tollgate.ScopeUser, "u1", day0, 250 + 800 + 100},
		{tollgate.ScopeUser, "u1", time.Time{}, 900 + 250 + 800 + 100},
		{tollgate.ScopeUser, "u2", day0, 70},
		{tollgate.ScopeTenant, "t1", day0, 250 + 70 + 800},
		{tollgate.ScopeTenant, "t2", day0, 100},
		{tollgate.ScopeUser, "nobody", day0, 0},
	} {
		got, err := l.Committed(t.Context(), tt.scope, tt.id, tt.since)
		if err != nil || got != tt.want {
			t.Errorf("Committed(%s %s since %v) = %s, %v; want %s", tt.scope, tt.id, tt.since, got, err, tt.want)
		}
	}
	_, err := l.Committed(t.Context(), "planet", "x", day0)
	wantCode(t, "Committed(planet)", err, tollgate.EInvalid)

	failed := openRecord("failed", "u1", "t1", 4*time.Hour, 100)
	f := settle(failed, 0, tollgate.Units{InputTokens: 50})
	f.Outcome = tollgate.ResultUpstreamError
	cancelled := openRecord("cancelled", "u1", "t1", 5*time.Hour, 100)
	c := settle(cancelled, 30, tollgate.Units{InputTokens: 7, OutputAudioMillis: 900})
	c.Outcome = tollgate.ResultCancelled
	mustWrite(t, l, []*tollgate.UsageRecord{failed, cancelled}, []*tollgate.UsageRecord{f, c})
	tot, err := l.UnitTotals(t.Context(), "u1", day0)
	if err != nil || tot.Requests != 2 || tot.Cost != 280 || tot.Units.InputTokens != 7 ||
		tot.Units.OutputAudioMillis != 900 {
		t.Errorf("UnitTotals(u1) = %+v, %v; want the ok and the cancelled record of the day, not the failed one", tot, err)
	}
}

func testUsage(t *testing.T, l LedgerStore) {
	recs := []struct {
		id, user, tenant, route, model string
		start                          time.Duration
		cost                           tollgate.Money
		tokens                         int64
	}{
		{"1", "u1", "t1", "chat", "small", time.Hour, 100, 10},
		{"2", "u1", "t1", "chat", "big", 2 * time.Hour, 1000, 20},
		{"3", "u2", "t1", "img", "", 25 * time.Hour, 50000, 0},
		{"4", "u3", "t2", "chat", "small", 26 * time.Hour, 7, 1},
		{"5", "u1", "t1", "chat", "small", 49 * time.Hour, 3, 2},
	}
	var open, settled []*tollgate.UsageRecord
	for _, r := range recs {
		o := openRecord(r.id, r.user, r.tenant, r.start, r.cost)
		o.Route, o.Model = r.route, r.model
		open = append(open, o)
		settled = append(settled, settle(o, r.cost, tollgate.Units{InputTokens: r.tokens, OutputTokens: 2 * r.tokens}))
	}
	open = append(open, openRecord("inflight", "u1", "t1", time.Hour, 99999))
	mustWrite(t, l, open, settled)

	// The open record "inflight" (u1, t1, chat, m1, day 1, 99999
	// reserved) is in flight in its groups, in none of the sums.
	type row struct {
		key      string
		requests int64
		cost     tollgate.Money
		inFlight int64
		reserved tollgate.Money
	}
	for _, tt := range []struct {
		name string
		q    tollgate.UsageQuery
		want []row
	}{
		{"total", tollgate.UsageQuery{}, []row{{"", 5, 51110, 1, 99999}}},
		{"by day", tollgate.UsageQuery{GroupBy: tollgate.GroupDay},
			[]row{{"2026-11-03", 2, 1100, 1, 99999}, {"2026-11-04", 2, 50007, 0, 0}, {"2026-11-05", 1, 3, 0, 0}}},
		{"by user", tollgate.UsageQuery{GroupBy: tollgate.GroupUser}, []row{{"u1", 3, 1103, 1, 99999}, {"u2", 1, 50000, 0, 0}, {"u3", 1, 7, 0, 0}}},
		{"by tenant", tollgate.UsageQuery{GroupBy: tollgate.GroupTenant}, []row{{"t1", 4, 51103, 1, 99999}, {"t2", 1, 7, 0, 0}}},
		{"by route", tollgate.UsageQuery{GroupBy: tollgate.GroupRoute}, []row{{"chat", 4, 1110, 1, 99999}, {"img", 1, 50000, 0, 0}}},
		{"by model", tollgate.UsageQuery{GroupBy: tollgate.GroupModel},
			[]row{{"", 1, 50000, 0, 0}, {"big", 1, 1000, 0, 0}, {"m1", 0, 0, 1, 99999}, {"small", 3, 110, 0, 0}}},
		{"one user by model", tollgate.UsageQuery{GroupBy: tollgate.GroupModel, UserID: "u1"},
			[]row{{"big", 1, 1000, 0, 0}, {"m1", 0, 0, 1, 99999}, {"small", 2, 103, 0, 0}}},
		{"one tenant one route", tollgate.UsageQuery{TenantID: "t1", Route: "chat"}, []row{{"", 3, 1103, 1, 99999}}},
		{"window", tollgate.UsageQuery{From: day0.Add(2 * time.Hour), To: day0.Add(49 * time.Hour), GroupBy: tollgate.GroupUser},
			[]row{{"u1", 1, 1000, 0, 0}, {"u2", 1, 50000, 0, 0}, {"u3", 1, 7, 0, 0}}},
		{"empty", tollgate.UsageQuery{UserID: "nobody"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Usage(t.Context(), tt.q)
			if err != nil {
				t.Fatalf("Usage: %v", err)
			}
			var rows []row
			for _, r := range got {
				rows = append(rows, row{r.Key, r.Requests, r.Cost, r.InFlight, r.Reserved})
			}
			if !slices.Equal(rows, tt.want) {
				t.Errorf("rows = %v, want %v", rows, tt.want)
			}
		})
	}
	lines, err := l.Usage(t.Context(), tollgate.UsageQuery{GroupBy: tollgate.GroupLine, TenantID: "t1"})
	if err != nil {
		t.Fatalf("Usage(line): %v", err)
	}
	var got []string
	for _, r := range lines {
		got = append(got, fmt.Sprintf("%s/%s/%s:%d:%s:%d:%d", r.UserID, r.Route, r.Model, r.Requests, r.Cost, r.Units.OutputTokens, r.InFlight))
	}
	want := []string{"u1/chat/big:1:0.001000:40:0", "u1/chat/m1:0:0.000000:0:1", "u1/chat/small:2:0.000103:24:0", "u2/img/:1:0.050000:0:0"}
	if !slices.Equal(got, want) {
		t.Errorf("lines = %v, want %v", got, want)
	}
	_, err = l.Usage(t.Context(), tollgate.UsageQuery{GroupBy: "planet"})
	wantCode(t, "Usage(planet)", err, tollgate.EInvalid)
}

func testExport(t *testing.T, l LedgerStore) {
	var opened []*tollgate.UsageRecord
	for i := range 7 {
		o := openRecord(fmt.Sprintf("r%d", i), "u1", "t1", time.Duration(i)*time.Minute, 10)
		opened = append(opened, o)
	}
	mustWrite(t, l, opened, nil)
	if got, err := l.Export(t.Context(), 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("Export before settling = %d records, %v; want none", len(got), err)
	}
	// Settled in reverse order of start: the export follows settlement.
	var want []string
	for i := len(opened) - 1; i >= 0; i-- {
		mustWrite(t, l, nil, []*tollgate.UsageRecord{settle(opened[i], 5, tollgate.Units{})})
		want = append(want, opened[i].RequestID)
	}
	late := openRecord("late", "u1", "t1", 0, 10)
	mustWrite(t, l, []*tollgate.UsageRecord{late}, nil)
	if _, err := l.Reconcile(t.Context(), day0.Add(time.Hour), day0.Add(time.Hour), true); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	want = append(want, "late")

	var got []string
	var cursor int64
	for {
		page, err := l.Export(t.Context(), cursor, 3)
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("Export returned %d records, limit 3", len(page))
		}
		for _, r := range page {
			got, cursor = append(got, r.RequestID), r.Seq
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
}

func testConcurrentWriters(t *testing.T, l LedgerStore) {
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				o := openRecord(fmt.Sprintf("w%d-%d", w, i), "u1", "t1", time.Duration(i)*time.Second, 3)
				if err := l.Write(t.Context(), []*tollgate.UsageRecord{o}, nil); err != nil {
					errs <- err
					return
				}
				if err := l.Write(t.Context(), nil, []*tollgate.UsageRecord{settle(o, 2, tollgate.Units{})}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Write: %v", err)
	}
	seen := map[string]bool{}
	var cursor int64
	for {
		page, err := l.Export(t.Context(), cursor, 37)
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if seen[r.RequestID] || r.Seq <= cursor {
				t.Fatalf("export repeated %s or went backwards (seq %d after %d)", r.RequestID, r.Seq, cursor)
			}
			seen[r.RequestID], cursor = true, r.Seq
		}
	}
	if len(seen) != writers*each {
		t.Errorf("exported %d records, want %d", len(seen), writers*each)
	}
	if got, _ := l.Committed(t.Context(), tollgate.ScopeUser, "u1", time.Time{}); got != writers*each*2 {
		t.Errorf("Committed = %s, want %s", got, tollgate.Money(writers*each*2))
	}
}

func testBudgetOverrides(t *testing.T, l LedgerStore) {
	_, err := l.Budget(t.Context(), tollgate.ScopeUser, "u1")
	wantCode(t, "Budget(absent)", err, tollgate.ENotFound)

	b := &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "u1", Amount: 5_000_000, Period: tollgate.PeriodDay}
	if err := l.SetBudget(t.Context(), b); err != nil {
		t.Fatalf("SetBudget: %v", err)
	}
	if b.UpdatedAt.IsZero() {
		t.Errorf("UpdatedAt not set")
	}
	got, err := l.Budget(t.Context(), tollgate.ScopeUser, "u1")
	if err != nil || got.Amount != 5_000_000 || got.Period != tollgate.PeriodDay || got.Alerts != nil {
		t.Errorf("Budget = %+v, %v", got, err)
	}
	b2 := &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "u1", Amount: 7, Period: tollgate.PeriodTotal, Alerts: []int{50, 90}}
	if err := l.SetBudget(t.Context(), b2); err != nil {
		t.Fatalf("SetBudget(replace): %v", err)
	}
	got, err = l.Budget(t.Context(), tollgate.ScopeUser, "u1")
	if err != nil || got.Amount != 7 || got.Period != tollgate.PeriodTotal || !slices.Equal(got.Alerts, []int{50, 90}) {
		t.Errorf("replaced Budget = %+v, %v", got, err)
	}
	noAlerts := &tollgate.BudgetOverride{Scope: tollgate.ScopeTenant, ID: "t1", Amount: 0, Period: tollgate.PeriodMonth, Alerts: []int{}}
	if err := l.SetBudget(t.Context(), noAlerts); err != nil {
		t.Fatalf("SetBudget(tenant): %v", err)
	}
	list, err := l.Budgets(t.Context())
	if err != nil || len(list) != 2 || list[0].Scope != tollgate.ScopeTenant || list[1].ID != "u1" {
		t.Fatalf("Budgets = %+v, %v", list, err)
	}
	if list[0].Alerts == nil || len(list[0].Alerts) != 0 {
		t.Errorf("empty alert list came back as %v, want [] (no alerts, not the plan's)", list[0].Alerts)
	}
	for _, bad := range []*tollgate.BudgetOverride{
		{Scope: "planet", ID: "x", Period: tollgate.PeriodDay},
		{Scope: tollgate.ScopeUser, ID: "x", Period: "week"},
		{Scope: tollgate.ScopeUser, ID: "x", Period: tollgate.PeriodDay, Amount: -1},
		{Scope: tollgate.ScopeUser, ID: "", Period: tollgate.PeriodDay},
		{Scope: tollgate.ScopeUser, ID: "x", Period: tollgate.PeriodDay, Alerts: []int{0}},
	} {
		wantCode(t, fmt.Sprintf("SetBudget(%+v)", bad), l.SetBudget(t.Context(), bad), tollgate.EInvalid)
	}
	if err := l.DeleteBudget(t.Context(), tollgate.ScopeUser, "u1"); err != nil {
		t.Fatalf("DeleteBudget: %v", err)
	}
	wantCode(t, "DeleteBudget(again)", l.DeleteBudget(t.Context(), tollgate.ScopeUser, "u1"), tollgate.ENotFound)
	_, err = l.Budget(t.Context(), tollgate.ScopeUser, "u1")
	wantCode(t, "Budget(deleted)", err, tollgate.ENotFound)
}

func testMarkAlert(t *testing.T, l LedgerStore) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 10 {
		wg.Go(func() {
			first, err := l.MarkAlert(t.Context(), tollgate.ScopeUser, "u1", day0, 80)
			if err != nil {
				t.Errorf("MarkAlert: %v", err)
			}
			if first {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firsts != 1 {
		t.Errorf("%d callers were first to send the 80%% alert, want 1", firsts)
	}
	for _, tt := range []struct {
		id      string
		period  time.Time
		percent int
	}{{"u1", day0, 100}, {"u1", day0.AddDate(0, 0, 1), 80}, {"u2", day0, 80}} {
		if first, err := l.MarkAlert(t.Context(), tollgate.ScopeUser, tt.id, tt.period, tt.percent); err != nil || !first {
			t.Errorf("MarkAlert(%v) = %v, %v; want a first send", tt, first, err)
		}
	}
}
