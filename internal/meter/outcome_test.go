package meter_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// TestUpstreamErrorPricing: a call the upstream answered with an error is
// charged the tokens it reported, never its per-request price, and is
// recorded upstream_error even when the data plane called it ok.
func TestUpstreamErrorPricing(t *testing.T) {
	m, l, _ := setup(t, "")
	p := principal("u1", "acme", "")
	for _, tc := range []struct {
		name string
		out  tollgate.Outcome
		cost string
	}{
		{"upstream 500 with tokens", tollgate.Outcome{Status: 500, UpstreamStatus: 500, Result: tollgate.ResultUpstreamError}, "0.003000"},
		{"upstream 400 reported as ok", tollgate.Outcome{Status: 400, UpstreamStatus: 400, Result: tollgate.ResultOK}, "0.003000"},
		{"unreachable upstream", tollgate.Outcome{Status: 502, Result: tollgate.ResultUpstreamError}, "0.003000"},
		{"success", tollgate.Outcome{Status: 200, UpstreamStatus: 200, Result: tollgate.ResultOK}, "0.004000"},
	} {
		c := call(p, "tokens")
		c.MaxOutputTokens = 1000
		release, err := m.Admit(context.Background(), c)
		if err != nil {
			t.Fatalf("%s: Admit: %v", tc.name, err)
		}
		out := tc.out
		out.End, out.Units = time.Now(), tollgate.Units{InputTokens: 1000, OutputTokens: 1000}
		release(context.Background(), &out)
		m.Stop() // commits the settlement
		r, err := l.Record(context.Background(), c.RequestID)
		if err != nil {
			t.Fatalf("%s: Record: %v", tc.name, err)
		}
		want := tollgate.ResultUpstreamError
		if tc.out.Status < 400 {
			want = tollgate.ResultOK
		}
		if r.Outcome != want || r.Cost.String() != tc.cost {
			t.Errorf("%s: recorded %s costing %s; want %s costing %s", tc.name, r.Outcome, r.Cost, want, tc.cost)
		}
		m, l, _ = setup(t, "")
	}
}
