package meter

import (
	"fmt"
	"math"
	"slices"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// dim is one billable dimension of a call.
type dim int

const (
	dimRequests dim = iota
	dimInputTokens
	dimOutputTokens
	dimImages
	dimMegapixels // quantity in millis of a megapixel
	dimAudio      // quantity in milliseconds
	dimGPU        // quantity in milliseconds
	dimOutAudio   // audio returned; quantity in milliseconds
	numDims
)

// quantities are a call's (or a period's) billable amounts per dimension,
// in integer base quantities: counts, tokens, or thousandths of a megapixel
// or second.
type quantities [numDims]int64

// dimInfo returns a dimension's config unit name and how many base
// quantities one priced unit holds (1000 tokens, 1000 millis, 1 request).
func dimInfo(d dim) (name string, scale int64) {
	switch d {
	case dimRequests:
		return "requests", 1
	case dimInputTokens:
		return "input_tokens", 1000
	case dimOutputTokens:
		return "output_tokens", 1000
	case dimImages:
		return "images", 1
	case dimMegapixels:
		return "megapixels", 1000
	case dimAudio:
		return "audio_seconds", 1000
	case dimGPU:
		return "gpu_seconds", 1000
	default:
		return "output_audio_seconds", 1000
	}
}

// configScale converts a config count of a unit (free units, tier From) to
// base quantities: megapixels and seconds are kept in thousandths.
func configScale(d dim) int64 {
	switch d {
	case dimMegapixels, dimAudio, dimGPU, dimOutAudio:
		return 1000
	default:
		return 1
	}
}

func dimByName(name string) (dim, bool) {
	for d := range numDims {
		if n, _ := dimInfo(d); n == name {
			return d, true
		}
	}
	return 0, false
}

// quantitiesOf turns units of requests calls into quantities.
func quantitiesOf(requests int64, u tollgate.Units) quantities {
	return quantities{requests, u.InputTokens, u.OutputTokens, u.Images, u.MegapixelMillis, u.AudioMillis, u.GPUMillis, u.OutputAudioMillis}
}

// freeQuantities converts a plan's free units (by config unit name).
func freeQuantities(free map[string]int64) quantities {
	var q quantities
	for name, n := range free {
		if d, ok := dimByName(name); ok {
			q[d] = satMul(n, configScale(d))
		}
	}
	return q
}

type tier struct {
	from  int64 // base quantity from which price applies
	price tollgate.Money
}

// dimPrice is one dimension's price per priced unit (per 1k for tokens),
// with graduated tiers sorted by from.
type dimPrice struct {
	base  tollgate.Money
	tiers []tier
}

// priceTable is the compiled price of one route (or one model on it).
type priceTable [numDims]dimPrice

// compilePrice parses p, taking fields p leaves empty from parent (nil for
// a route's own price).
func compilePrice(p config.Price, parent *priceTable) (priceTable, error) {
	var t priceTable
	if parent != nil {
		t = *parent
	}
	fields := [numDims]string{p.PerRequest, p.Per1kInputTokens, p.Per1kOutputToken, p.PerImage, p.PerMegapixel, p.PerAudioSecond, p.PerGPUSecond, p.PerOutputAudioSecond}
	for d, s := range fields {
		if s == "" {
			continue
		}
		m, err := tollgate.ParseMoney(s)
		if err != nil {
			return t, fmt.Errorf("price: %w", err)
		}
		t[d].base = m
	}
	if len(p.Tiers) > 0 {
		for d := range t {
			t[d].tiers = nil
		}
	}
	for _, tr := range p.Tiers {
		d, ok := dimByName(tr.Unit)
		if !ok {
			return t, tollgate.Errorf(tollgate.EInvalid, "price tier: unknown unit %q", tr.Unit)
		}
		m, err := tollgate.ParseMoney(tr.Price)
		if err != nil {
			return t, fmt.Errorf("price tier: %w", err)
		}
		t[d].tiers = append(t[d].tiers, tier{from: satMul(tr.From, configScale(d)), price: m})
	}
	for d := range t {
		slices.SortStableFunc(t[d].tiers, func(a, b tier) int { return cmpInt(a.from, b.from) })
	}
	return t, nil
}

// hasTiers reports whether any dimension is priced in tiers.

// at returns the price at base quantity pos and where the next tier starts
// (MaxInt64 when none does).
func (dp *dimPrice) at(pos int64) (tollgate.Money, int64) {
	price, next := dp.base, int64(math.MaxInt64)
	for _, tr := range dp.tiers {
		if tr.from <= pos {
			price = tr.price
			continue
		}
		next = tr.from
		break
	}
	return price, next
}

// maxPrice is the highest price the dimension can charge per unit.
func (dp *dimPrice) maxPrice() tollgate.Money {
	m := dp.base
	for _, tr := range dp.tiers {
		m = max(m, tr.price)
	}
	return m
}

// cost prices quantity q of dimension d, given that before was already used
// in the billing period and free is included by the plan. Usage below free
// costs nothing; each part of [before, before+q) above it costs the tier
// price in force there. The sum is rounded half up to the micro-unit once
// per dimension.
func (t *priceTable) cost(d dim, q, before, free int64) tollgate.Money {
	if q <= 0 {
		return 0
	}
	dp := &t[d]
	pos, end := max(before, free), satAdd(before, q)
	var num int64
	for pos < end {
		price, next := dp.at(pos)
		seg := min(end, next)
		num = satAdd(num, satMul(seg-pos, int64(price)))
		pos = seg
	}
	_, scale := dimInfo(d)
	return tollgate.Money(roundDiv(num, scale))
}

// Cost prices one call's quantities q given the period's usage before it
// and the plan's free units.
func (t *priceTable) Cost(q, before, free quantities) tollgate.Money {
	var total int64
	for d := range numDims {
		total = satAdd(total, int64(t.cost(d, q[d], before[d], free[d])))
	}
	return tollgate.Money(total)
}

// MaxCost is the most quantities q can cost whatever the period's usage:
// every unit at the dimension's highest price, no free units.
func (t *priceTable) MaxCost(q quantities) tollgate.Money {
	var total int64
	for d := range numDims {
		if q[d] <= 0 {
			continue
		}
		_, scale := dimInfo(d)
		total = satAdd(total, roundDiv(satMul(q[d], int64(t[d].maxPrice())), scale))
	}
	return tollgate.Money(total)
}

// roundDiv divides a non-negative n by d, rounding half up.
func roundDiv(n, d int64) int64 {
	if d == 1 {
		return n
	}
	return n/d + boolInt(n%d*2 >= d)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// satAdd and satMul saturate at MaxInt64 instead of wrapping; quantities
// and prices are never negative.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
