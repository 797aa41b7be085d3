package limit

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// MemorySlots is the in-process ConcurrencyStore. Leases never expire: in
// one process a slot is always released by its holder.
type MemorySlots struct {
	mu    sync.Mutex
	count map[string]int
	held  map[string][]string // lease id -> keys
}

var _ tollgate.ConcurrencyStore = (*MemorySlots)(nil)

// NewMemorySlots returns an empty in-process ConcurrencyStore.
func NewMemorySlots() *MemorySlots {
	return &MemorySlots{count: map[string]int{}, held: map[string][]string{}}
}

// Acquire takes a slot under every key or none.
func (m *MemorySlots) Acquire(_ context.Context, id string, keys []tollgate.SlotKey, _ time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.held[id]; ok {
		return "", nil
	}
	for _, k := range keys {
		if m.count[k.Key] >= k.Limit {
			return k.Key, nil
		}
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		m.count[k.Key]++
		names = append(names, k.Key)
	}
	m.held[id] = names
	return "", nil
}

// Renew does nothing: in-process leases do not expire.
func (m *MemorySlots) Renew(context.Context, map[string][]string, time.Duration) error { return nil }

// Release frees id's slots; releasing twice is harmless.
func (m *MemorySlots) Release(_ context.Context, id string, _ []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.held[id] {
		if m.count[k]--; m.count[k] <= 0 {
			delete(m.count, k)
		}
	}
	delete(m.held, id)
	return nil
}

// InFlight returns the slots held under key.
func (m *MemorySlots) InFlight(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count[key]
}

// MemoryCounters is the in-process CounterStore. It holds at most max
// entries (expired ones go first), so attacker-chosen keys cannot grow it
// without bound.
type MemoryCounters struct {
	mu  sync.Mutex
	now func() time.Time
	max int
	m   map[string]memCounter
}

type memCounter struct {
	tollgate.Counter
	expires time.Time
}

var _ tollgate.CounterStore = (*MemoryCounters)(nil)

// NewMemoryCounters returns an in-process CounterStore holding at most max
// entries (100000 when max <= 0).
func NewMemoryCounters(now func() time.Time, max int) *MemoryCounters {
	if max <= 0 {
		max = 100_000
	}
	return &MemoryCounters{now: orNow(now), max: max, m: map[string]memCounter{}}
}

// Incr adds one to key.
func (m *MemoryCounters) Incr(_ context.Context, key string, now time.Time, ttl time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.m[key]
	if ok && !m.now().Before(c.expires) {
		c = memCounter{}
	}
	if !ok && len(m.m) >= m.max {
		m.evict()
	}
	c.Count++
	c.Last = now
	c.expires = m.now().Add(ttl)
	m.m[key] = c
	return c.Count, nil
}

func (m *MemoryCounters) evict() {
	now := m.now()
	for k, c := range m.m {
		if !now.Before(c.expires) {
			delete(m.m, k)
		}
	}
	for k := range m.m { // still full: drop arbitrary entries
		if len(m.m) < m.max*9/10 {
			break
		}
		delete(m.m, k)
	}
}

// Counters returns the counters of keys; absent or expired keys are zero.
func (m *MemoryCounters) Counters(_ context.Context, keys ...string) ([]tollgate.Counter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]tollgate.Counter, len(keys))
	for i, k := range keys {
		if c, ok := m.m[k]; ok && now.Before(c.expires) {
			out[i] = c.Counter
		}
	}
	return out, nil
}

// Delete removes keys.
func (m *MemoryCounters) Delete(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.m, k)
	}
	return nil
}

// MemoryBans is the in-process BanStore.
type MemoryBans struct {
	mu   sync.Mutex
	bans map[string]tollgate.Ban
}

var _ tollgate.BanStore = (*MemoryBans)(nil)

// NewMemoryBans returns an empty in-process BanStore.
func NewMemoryBans() *MemoryBans { return &MemoryBans{bans: map[string]tollgate.Ban{}} }

// PutBan stores b.
func (m *MemoryBans) PutBan(_ context.Context, b *tollgate.Ban) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bans[b.IP] = *b
	return nil
}

// DeleteBan lifts the ban of ip. ENotFound if there is none.
func (m *MemoryBans) DeleteBan(_ context.Context, ip string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.bans[ip]; !ok {
		return tollgate.Errorf(tollgate.ENotFound, "no ban for %s", ip)
	}
	delete(m.bans, ip)
	return nil
}

// Bans lists the bans that end after now and forgets the others.
func (m *MemoryBans) Bans(_ context.Context, now time.Time) ([]*tollgate.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*tollgate.Ban
	for ip, b := range m.bans {
		if !b.Until.After(now) {
			delete(m.bans, ip)
			continue
		}
		out = append(out, &b)
	}
	return out, nil
}

// MemoryBus is the in-process Bus: Publish calls every subscriber directly.
type MemoryBus struct {
	mu   sync.Mutex
	subs map[int]func(tollgate.Event)
	next int
}

var _ tollgate.Bus = (*MemoryBus)(nil)

// NewMemoryBus returns an in-process Bus.
func NewMemoryBus() *MemoryBus { return &MemoryBus{subs: map[int]func(tollgate.Event){}} }

// Publish calls every subscriber with e before returning.
func (b *MemoryBus) Publish(_ context.Context, e tollgate.Event) error {
	b.mu.Lock()
	subs := make([]func(tollgate.Event), 0, len(b.subs))
	for _, h := range b.subs {
		subs = append(subs, h)
	}
	b.mu.Unlock()
	for _, h := range subs {
		h(e)
	}
	return nil
}

// Subscribe registers handle and calls resync once, now.
func (b *MemoryBus) Subscribe(handle func(tollgate.Event), resync func()) (stop func()) {
	b.mu.Lock()
	id := b.next
	b.next++
	b.subs[id] = handle
	b.mu.Unlock()
	if resync != nil {
		resync()
	}
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}
