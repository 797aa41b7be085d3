package meter_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestReconcileAtStart(t *testing.T) {
	for _, tt := range []struct {
		charge   string
		wantCost string
		// After the restart the budget (0.05) holds what the lost calls
		// were charged: 10 × 0.001 when charged their reservation.
		wantAdmitted int64
		eachCost     int64
	}{
		{"reserved", "0.010000", 40, 1000},
		{"none", "0.000000", 50, 0},
	} {
		t.Run(tt.charge, func(t *testing.T) {
			cfg := mustConfig(t, "metering: {unknown_charge: "+tt.charge+"}\n")
			l := mustSQLite(t).Ledger()
			m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
			p := principal("u1", "t1", "capped")
			var ids []string
			for range 10 {
				c := call(p, "chat")
				if _, err := m.Admit(context.Background(), c); err != nil { // never released: the process "dies"
					t.Fatal(err)
				}
				ids = append(ids, c.RequestID)
			}
			// The process dies: m is never stopped (a Stop would settle
			// its calls as cancelled), and a new one starts.
			m2 := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
			for _, id := range ids {
				r, err := l.Record(context.Background(), id)
				if err != nil || !r.Settled || r.Outcome != tollgate.ResultUnknown || r.Cost != tollgate.Money(tt.eachCost) {
					t.Errorf("record %s after restart = %+v, %v", id, r, err)
				}
			}
			if n, cost := total(t, l, tollgate.UsageQuery{}); n != 10 || cost.String() != tt.wantCost {
				t.Errorf("ledger %d records costing %s, want 10 costing %s", n, cost, tt.wantCost)
			}
			if a, _ := fire(t, []*meter.Meter{m2}, p, "chat", 60); a != tt.wantAdmitted {
				t.Errorf("admitted %d after restart, want %d", a, tt.wantAdmitted)
			}
		})
	}
}

func TestBudgetAlertsPostedOncePerThreshold(t *testing.T) {
	var mu sync.Mutex
	var got []meter.Alert
	failures := 1
	arrived := make(chan struct{}, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 { // the first delivery fails: it is retried
			failures--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var a meter.Alert
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook body %s: %v", body, err)
		}
		got = append(got, a)
		arrived <- struct{}{}
	}))
	defer hook.Close()
	cfg := mustConfig(t, "webhooks: [{url: "+hook.URL+"}]\n")
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, WebhookBackoff: time.Millisecond})
	p := principal("u1", "t1", "capped")
	fire(t, []*meter.Meter{m}, p, "chat", 45)
	<-arrived
	fire(t, []*meter.Meter{m}, p, "chat", 20) // 5 fit, then refusals
	<-arrived
	// A second meter on the same store (another replica, or a restart)
	// crossing 80% again in the same period does not send it again.
	m2 := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, WebhookBackoff: time.Millisecond})
	if err := m2.SetBudget(context.Background(), &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "u1", Amount: 60_000, Period: tollgate.PeriodDay}); err != nil {
		t.Fatal(err)
	}
	if a, _ := fire(t, []*meter.Meter{m2}, p, "chat", 1); a != 1 {
		t.Fatalf("the raised budget admitted %d calls, want 1", a)
	}
	m.Stop()
	m2.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Percent != 80 || got[1].Percent != 100 || got[0].ID != "u1" || got[0].Scope != "user" ||
		got[1].Committed != "0.050000" || got[1].Limit != "0.050000" || got[0].Type != meter.EventBudgetThreshold {
		t.Errorf("alerts = %+v; want 80%% then 100%% of u1's daily budget, once each", got)
	}
}

func TestGraduatedTiersAndFreeUnitsOverTheMonth(t *testing.T) {
	cfg := mustConfig(t, "")
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
	p := principal("u9", "t1", "trial")
	serveN := func(m *meter.Meter, n int) (ids []string) {
		for range n {
			ids = append(ids, serve(t, m, p, "tiered", "", time.Now(), 0, 0))
		}
		return ids
	}
	ids := serveN(m, 8)
	m.Stop()
	// After a restart the month's usage is read back from the ledger.
	m2 := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
	ids = append(ids, serveN(m2, 1)...)
	m2.Stop()
	var costs []string
	for _, id := range ids {
		r, err := l.Record(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		costs = append(costs, r.Cost.String())
	}
	// 2 free requests, 3 at the base price, then the tier from the 6th on.
	want := []string{"0.000000", "0.000000", "0.010000", "0.010000", "0.010000", "0.005000", "0.005000", "0.005000", "0.005000"}
	if fmt.Sprint(costs) != fmt.Sprint(want) {
		t.Errorf("costs = %v, want %v", costs, want)
	}
}

func TestGraduatedTiersAcrossReplicas(t *testing.T) {
	pg, url, schema := mustPostgres(t)
	_, rurl, prefix := mustRedis(t)
	cfg := mustConfig(t, "")
	var meters []*meter.Meter
	for range 2 {
		l := openPostgres(t, url, schema).Ledger()
		meters = append(meters, mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l, Counters: openRedis(t, rurl, prefix).BudgetCounters(), Cluster: true}))
	}
	p := principal("u9", "t1", "trial")
	var ids []string
	for i := range 8 {
		ids = append(ids, serve(t, meters[i%2], p, "tiered", "", time.Now(), 0, 0))
	}
	for _, m := range meters {
		m.Stop() // settlements committed
	}
	var costs []string
	for _, id := range ids {
		r, err := pg.Ledger().Record(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		costs = append(costs, r.Cost.String())
	}
	want := []string{"0.000000", "0.000000", "0.010000", "0.010000", "0.010000", "0.005000", "0.005000", "0.005000"}
	if fmt.Sprint(costs) != fmt.Sprint(want) {
		t.Errorf("costs across two replicas = %v, want %v (free units and tiers shared)", costs, want)
	}
}

func TestImagesInRequestAreMeteredAndPriced(t *testing.T) {
	m, l, _ := setup(t, "")
	var img bytes.Buffer
	_ = png.Encode(&img, image.NewGray(image.Rect(0, 0, 1000, 500)))
	body, _ := json.Marshal(map[string]any{"images": []string{
		"data:image/png;base64," + base64.StdEncoding.EncodeToString(img.Bytes()),
		base64.StdEncoding.EncodeToString(img.Bytes())}})
	c := call(principal("u1", "t1", ""), "colorize")
	c.Body, c.BytesIn = body, int64(len(body))
	rel, err := m.Admit(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	rel(context.Background(), ok(tollgate.Units{}))
	m.Stop()
	r, err := l.Record(context.Background(), c.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	// 2 images of 0.5 MP: 2 × 0.02 + 1.0 × 0.01.
	if r.Units.Images != 2 || r.Units.MegapixelMillis != 1000 || r.Cost.String() != "0.050000" || r.Reserved.String() != "0.050000" {
		t.Errorf("record units %+v cost %s reserved %s", r.Units, r.Cost, r.Reserved)
	}
}
