package meter

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// MemoryCounters are budget counters of a single node, guarded by one
// mutex. They start empty and are loaded from the ledger on first use.
type MemoryCounters struct {
	now   func() time.Time
	mu    sync.Mutex
	m     map[string]memCounter
	inits int // Init calls since the last sweep of expired counters
}

type memCounter struct {
	value   tollgate.Money
	expires time.Time
}

var _ tollgate.BudgetCounters = (*MemoryCounters)(nil)

// NewMemoryCounters returns empty counters; now is the clock that expires
// them (time.Now when nil).
func NewMemoryCounters(now func() time.Time) *MemoryCounters {
	if now == nil {
		now = time.Now
	}
	return &MemoryCounters{now: now, m: map[string]memCounter{}}
}

// get returns a live counter; an expired one is dropped. Call with mu held.
func (c *MemoryCounters) get(key string) (memCounter, bool) {
	v, ok := c.m[key]
	if ok && !v.expires.IsZero() && !c.now().Before(v.expires) {
		delete(c.m, key)
		return v, false
	}
	return v, ok
}

// Reserve adds amount to every counter if all stay within their limits.
func (c *MemoryCounters) Reserve(_ context.Context, cs []tollgate.BudgetCounter, amount tollgate.Money) ([]int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []int
	for i, bc := range cs {
		if _, ok := c.get(bc.Key); !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		return missing, -1, nil
	}
	for i, bc := range cs {
		if c.m[bc.Key].value+amount > bc.Limit {
			return nil, i, nil
		}
	}
	for _, bc := range cs {
		v := c.m[bc.Key]
		v.value += amount
		c.m[bc.Key] = v
	}
	return nil, -1, nil
}

// Init sets a missing counter.
func (c *MemoryCounters) Init(_ context.Context, key string, value tollgate.Money, expires time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.get(key); !ok {
		c.m[key] = memCounter{value: value, expires: expires}
	}
	// Counters of past periods are dropped now and then, so a long-running
	// node does not keep every user's every day.
	if c.inits++; c.inits >= 1024 {
		c.inits = 0
		now := c.now()
		for k, v := range c.m {
			if !v.expires.IsZero() && !now.Before(v.expires) {
				delete(c.m, k)
			}
		}
	}
	return nil
}

// Adjust adds delta to the counters that exist.
func (c *MemoryCounters) Adjust(_ context.Context, keys []string, delta tollgate.Money) ([]tollgate.Money, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]tollgate.Money, len(keys))
	for i, k := range keys {
		v, ok := c.get(k)
		if !ok {
			out[i] = -1
			continue
		}
		v.value += delta
		c.m[k] = v
		out[i] = v.value
	}
	return out, nil
}
