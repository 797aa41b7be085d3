package meter_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/internal/meter"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestStopSettlesCutOffCalls: calls still running when the meter stops (a
// drain that ran out of time) are settled as cancelled and charged as the
// route charges a cancelled call, not left open for the next start to
// charge their reservation; their late release changes nothing, and a
// call admitted after Stop is refused.
func TestStopSettlesCutOffCalls(t *testing.T) {
	cfg := mustConfig(t, "")
	l := mustSQLite(t).Ledger()
	m := mustMeter(t, cfg, meter.Options{Ledger: l, Budgets: l})
	p := principal("u1", "t1", "")
	running := call(p, "tokens") // reserved at 4096 output tokens: 0.009193
	release, err := m.Admit(context.Background(), running)
	if err != nil {
		t.Fatal(err)
	}
	done := call(p, "chat")
	releaseDone, err := m.Admit(context.Background(), done)
	if err != nil {
		t.Fatal(err)
	}
	releaseDone(context.Background(), ok(tollgate.Units{}))
	m.Stop()

	r, err := l.Record(context.Background(), running.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Settled || r.Outcome != tollgate.ResultCancelled || r.Cost.String() != "0.001000" {
		t.Fatalf("cut-off call recorded %+v; want settled, cancelled, charged its per-request price 0.001000", r)
	}
	release(context.Background(), ok(tollgate.Units{InputTokens: 100000}))
	if again, _ := l.Record(context.Background(), running.RequestID); again.Outcome != r.Outcome || again.Cost != r.Cost {
		t.Errorf("a release after Stop changed the record to %+v", again)
	}
	if d, _ := l.Record(context.Background(), done.RequestID); d.Outcome != tollgate.ResultOK {
		t.Errorf("the finished call was recorded %+v", d)
	}
	if _, err := m.Admit(context.Background(), call(p, "chat")); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Errorf("Admit after Stop: %v, want %s", err, tollgate.EUnavailable)
	}
}
