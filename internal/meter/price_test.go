package meter

import (
	"testing"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

func mustPrice(t *testing.T, p config.Price) priceTable {
	t.Helper()
	pt, err := compilePrice(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestCost(t *testing.T) {
	chat := config.Price{PerRequest: "0.001", Per1kInputTokens: "0.0005", Per1kOutputToken: "0.0015"}
	media := config.Price{PerImage: "0.02", PerMegapixel: "0.01", PerAudioSecond: "0.0001", PerGPUSecond: "0.0004"}
	tiered := config.Price{PerRequest: "0.01", Tiers: []config.Tier{
		{Unit: "requests", From: 100, Price: "0.005"},
		{Unit: "requests", From: 1000, Price: "0.001"},
	}}
	tests := []struct {
		name    string
		price   config.Price
		units   tollgate.Units
		before  quantities
		free    map[string]int64
		want    string
		wantMax string
	}{
		{name: "per request only", price: chat, want: "0.001000", wantMax: "0.001000"},
		{name: "tokens", price: chat, units: tollgate.Units{InputTokens: 1000, OutputTokens: 2000},
			want: "0.004500", wantMax: "0.004500"},
		// 1 token at 0.0005/1k is 0.5 micro-units: rounded half up.
		{name: "rounding half up", price: chat, units: tollgate.Units{InputTokens: 1}, want: "0.001001", wantMax: "0.001001"},
		{name: "rounding below half", price: config.Price{Per1kInputTokens: "0.0004"}, units: tollgate.Units{InputTokens: 1}, want: "0.000000", wantMax: "0.000000"},
		{name: "media", price: media, units: tollgate.Units{Images: 2, MegapixelMillis: 4194, AudioMillis: 12500, GPUMillis: 3250},
			// 0.04 + 0.04194 + 0.00125 + 0.0013
			want: "0.084490", wantMax: "0.084490"},
		{name: "free requests cover the call", price: chat, free: map[string]int64{"requests": 10}, before: quantities{dimRequests: 9},
			want: "0.000000", wantMax: "0.001000"},
		{name: "free requests used up", price: chat, free: map[string]int64{"requests": 10}, before: quantities{dimRequests: 10},
			want: "0.001000", wantMax: "0.001000"},
		{name: "free tokens partly cover", price: chat, units: tollgate.Units{InputTokens: 3000},
			free: map[string]int64{"requests": 1, "input_tokens": 1000}, want: "0.001000", wantMax: "0.002500"},
		{name: "free gpu seconds in seconds", price: media, units: tollgate.Units{GPUMillis: 3000},
			free: map[string]int64{"gpu_seconds": 2}, want: "0.000400", wantMax: "0.001200"},
		{name: "first tier", price: tiered, before: quantities{dimRequests: 5}, want: "0.010000", wantMax: "0.010000"},
		{name: "second tier", price: tiered, before: quantities{dimRequests: 100}, want: "0.005000", wantMax: "0.010000"},
		{name: "third tier", price: tiered, before: quantities{dimRequests: 5000}, want: "0.001000", wantMax: "0.010000"},
		{name: "token tiers split one call", units: tollgate.Units{OutputTokens: 3000},
			price:  config.Price{Per1kOutputToken: "0.002", Tiers: []config.Tier{{Unit: "output_tokens", From: 10000, Price: "0.001"}}},
			before: quantities{dimOutputTokens: 9000}, want: "0.004000", wantMax: "0.006000"},
		{name: "a dearer tier reserves its price", units: tollgate.Units{OutputTokens: 1000},
			price:  config.Price{Per1kOutputToken: "0.001", Tiers: []config.Tier{{Unit: "output_tokens", From: 1000000, Price: "0.003"}}},
			before: quantities{}, want: "0.001000", wantMax: "0.003000"},
		{name: "free", price: config.Price{}, units: tollgate.Units{InputTokens: 5}, want: "0.000000", wantMax: "0.000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := mustPrice(t, tt.price)
			q := quantitiesOf(1, tt.units)
			if got := pt.Cost(q, tt.before, freeQuantities(tt.free)).String(); got != tt.want {
				t.Errorf("Cost = %s, want %s", got, tt.want)
			}
			if got := pt.MaxCost(q).String(); got != tt.wantMax {
				t.Errorf("MaxCost = %s, want %s", got, tt.wantMax)
			}
		})
	}
}

func TestModelPriceOverridesRoute(t *testing.T) {
	route := config.Price{PerRequest: "0.001", Per1kOutputToken: "0.002",
		Models: map[string]config.Price{"big": {Per1kOutputToken: "0.02"}}}
	base := mustPrice(t, route)
	big, err := compilePrice(route.Models["big"], &base)
	if err != nil {
		t.Fatal(err)
	}
	q := quantitiesOf(1, tollgate.Units{OutputTokens: 1000})
	if got := big.Cost(q, quantities{}, quantities{}).String(); got != "0.021000" {
		t.Errorf("big model = %s, want 0.021000 (route per_request kept, output overridden)", got)
	}
	if got := base.Cost(q, quantities{}, quantities{}).String(); got != "0.003000" {
		t.Errorf("route = %s, want 0.003000", got)
	}
}

func TestCostNeverExceedsMaxCost(t *testing.T) {
	pt := mustPrice(t, config.Price{PerRequest: "0.003", Per1kInputTokens: "0.0007", Per1kOutputToken: "0.0021",
		Tiers: []config.Tier{{Unit: "output_tokens", From: 500, Price: "0.0033"}, {Unit: "output_tokens", From: 5000, Price: "0.0001"}}})
	for before := int64(0); before < 6000; before += 37 {
		for out := int64(0); out < 700; out += 13 {
			q := quantitiesOf(1, tollgate.Units{InputTokens: out / 3, OutputTokens: out})
			c := pt.Cost(q, quantities{dimOutputTokens: before}, quantities{})
			if m := pt.MaxCost(q); c > m {
				t.Fatalf("before=%d out=%d: cost %s > max %s", before, out, c, m)
			}
		}
	}
}
