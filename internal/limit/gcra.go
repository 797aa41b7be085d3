package limit

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// gcraStep applies one GCRA step to a key whose theoretical arrival time is
// tat, at now (both in the same unit, e.g. nanoseconds). The burst window is
// N emission intervals, so a fresh key admits N at once and then N per
// period. internal/redis runs the same arithmetic in Lua.
func gcraStep(tat, now int64, r tollgate.Rate) (newTAT int64, ok bool, remaining int, reset, retry int64) {
	t := int64(r.Period) / int64(r.N)
	window := t * int64(r.N)
	tat = max(tat, now)
	next := tat + t
	if next-now > window {
		return tat, false, 0, tat - now, next - now - window
	}
	return next, true, int((window - (next - now)) / t), next - now, 0
}

// MemoryRates is the in-process RateStore: a sharded map of theoretical
// arrival times. Keys whose budget is full again are dropped as the map
// grows, so memory stays bounded by the keys active within their period.
type MemoryRates struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [64]rateShard
}

type rateShard struct {
	mu    sync.Mutex
	tats  map[string]int64 // unix nanoseconds
	sweep int              // size at which the next sweep runs
}

var _ tollgate.RateStore = (*MemoryRates)(nil)

// NewMemoryRates returns an in-process RateStore reading time from now
// (time.Now when nil).
func NewMemoryRates(now func() time.Time) *MemoryRates {
	m := &MemoryRates{now: orNow(now), seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].tats = map[string]int64{}
		m.shards[i].sweep = 1024
	}
	return m
}

func (m *MemoryRates) shard(key string) int {
	return int(maphash.String(m.seed, key) % uint64(len(m.shards)))
}

// Allow decides every key at once: all admit and count, or none counts.
func (m *MemoryRates) Allow(_ context.Context, keys []tollgate.RateKey) (tollgate.RateDecision, error) {
	var buf [2][8]int // no allocation for the usual few keys
	idx, locked := buf[0][:0], buf[1][:0]
	for _, k := range keys {
		i := m.shard(k.Key)
		idx, locked = append(idx, i), append(locked, i)
	}
	slices.Sort(locked)
	locked = slices.Compact(locked)
	for _, i := range locked {
		m.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range locked {
			m.shards[i].mu.Unlock()
		}
	}()

	now := m.now().UnixNano()
	d := tollgate.RateDecision{Allowed: true, Remaining: -1}
	var nbuf [8]int64
	next := nbuf[:0]
	for range keys {
		next = append(next, 0)
	}
	for i, k := range keys {
		tat, ok, rem, reset, retry := gcraStep(m.shards[idx[i]].tats[k.Key], now, k.Rate)
		next[i] = tat
		switch {
		case !ok && (d.Allowed || retry > int64(d.RetryAfter)):
			d = tollgate.RateDecision{Limit: k.Rate.N, Reset: time.Duration(reset), RetryAfter: time.Duration(retry), Key: k.Key}
		case ok && d.Allowed && (d.Remaining < 0 || rem < d.Remaining):
			d.Limit, d.Remaining, d.Reset, d.Key = k.Rate.N, rem, time.Duration(reset), k.Key
		}
	}
	if !d.Allowed {
		return d, nil
	}
	for i, k := range keys {
		s := &m.shards[idx[i]]
		s.tats[k.Key] = next[i]
		if len(s.tats) >= s.sweep {
			s.evict(now)
		}
	}
	return d, nil
}

// follow records what a shared store decided for keys, so that a switch to
// this store continues from that state instead of granting a fresh burst:
// the decision's key (the tightest, or the refusing one) takes the shared
// state as it is across replicas, and when the call was admitted every
// other key counts it.
func (m *MemoryRates) follow(keys []tollgate.RateKey, d tollgate.RateDecision) {
	now := m.now().UnixNano()
	for _, k := range keys {
		if k.Rate.N <= 0 {
			continue
		}
		s := &m.shards[m.shard(k.Key)]
		s.mu.Lock()
		switch {
		case k.Key == d.Key:
			s.tats[k.Key] = now + int64(d.Reset)
		case d.Allowed:
			t := int64(k.Rate.Period) / int64(k.Rate.N)
			s.tats[k.Key] = min(max(s.tats[k.Key], now)+t, now+t*int64(k.Rate.N))
		}
		if len(s.tats) >= s.sweep {
			s.evict(now)
		}
		s.mu.Unlock()
	}
}

// busy lists the keys not fully replenished, each with the time until it
// is: the state to carry to a shared store.
func (m *MemoryRates) busy() []tollgate.RateSeed {
	now := m.now().UnixNano()
	var out []tollgate.RateSeed
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for k, tat := range s.tats {
			if tat > now {
				out = append(out, tollgate.RateSeed{Key: k, Busy: time.Duration(tat - now)})
			}
		}
		s.mu.Unlock()
	}
	return out
}

// evict drops keys whose budget is full again (tat in the past): for them
// an absent key and the stored one decide the same.
func (s *rateShard) evict(now int64) {
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
		}
	}
	s.sweep = max(1024, 2*len(s.tats))
}

// Len returns the number of keys held, for tests of bounded memory.
func (m *MemoryRates) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}

func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
