package meter_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// A route priced per second of output audio reserves its max_output_audio
// (with the GPU time of its timeout), and charges the audio returned, at
// most that bound, recorded apart from uploaded audio.
func TestOutputAudioReservedAtItsBoundAndChargedAsMeasured(t *testing.T) {
	m, l, _ := setup(t, `
  - name: tts
    path: /tts/
    type: gradio
    upstreams: [http://127.0.0.1:9]
    timeout: 60s
    max_output_audio: 30s
    price: {per_request: "0.01", per_gpu_second: "0.001", per_output_audio_second: "0.002"}
`)
	if err := m.SetBudget(context.Background(), &tollgate.BudgetOverride{Scope: tollgate.ScopeUser, ID: "u1",
		Amount: 260_000, Period: tollgate.PeriodDay}); err != nil {
		t.Fatal(err)
	}
	p := principal("u1", "t1", "")
	// Reserved: 0.01 + 60 s × 0.001 + 30 s × 0.002 = 0.13.
	first, err := m.Admit(context.Background(), call(p, "tts"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.Admit(context.Background(), call(p, "tts"))
	if err != nil {
		t.Fatalf("a second 0.13 reservation did not fit in 0.26: %v", err)
	}
	third := call(p, "tts")
	if _, err := m.Admit(context.Background(), third); tollgate.ErrorCode(err) != tollgate.EQuota {
		t.Fatalf("a third 0.13 reservation fit in 0.26 with 0.26 held: %v", err)
	}
	// 2.5 s of GPU and 2.8 s of audio: 0.01 + 0.0025 + 0.0056 = 0.0181.
	first(context.Background(), ok(tollgate.Units{GPUMillis: 2500, OutputAudioMillis: 2800, AudioMillis: 4000}))
	// 45 s of audio is charged as the bound, 30 s: 0.01 + 0.001 + 0.06 = 0.071.
	second(context.Background(), ok(tollgate.Units{GPUMillis: 1000, OutputAudioMillis: 45000}))
	m.Stop()
	rows, err := l.Usage(context.Background(), tollgate.UsageQuery{UserID: "u1", GroupBy: tollgate.GroupRoute})
	if err != nil || len(rows) != 1 {
		t.Fatalf("usage %+v, %v", rows, err)
	}
	r := rows[0]
	if r.Requests != 2 || r.Cost.String() != "0.089100" || r.Units.OutputAudioMillis != 47800 || r.Units.AudioMillis != 4000 {
		t.Errorf("ledger: %d requests costing %s, %d ms output audio, %d ms input audio; want 2, 0.089100, 47800, 4000",
			r.Requests, r.Cost, r.Units.OutputAudioMillis, r.Units.AudioMillis)
	}
}
