package limit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Backend modes reported by Status.
const (
	ModeLocal    = "local"    // one node: counters in process
	ModeRemote   = "redis"    // cluster: counters in Redis, exact across replicas
	ModeFallback = "fallback" // Redis unreachable: local limits of limit ÷ replicas
	ModeRefusing = "refusing" // Redis unreachable and redis_failure: refuse
)

// failover sends decisions to the shared (Redis) stores while they answer
// and to local stores with limits divided by the replica count while they
// do not. A background ping switches back when the shared stores return.
//
// A switch grants no fresh burst. While on Redis the local store follows
// its decisions (each key's state as a fraction of its window), so the
// fallback starts from where Redis was: n replicas at limit ÷ n from the
// same fraction admit together what Redis would have. On the way back the
// local state is seeded into Redis (a key keeps the more spent of the
// two), so what the fallback admitted still counts.
type failover struct {
	remoteRates tollgate.RateStore
	remoteSlots tollgate.ConcurrencyStore
	localRates  *MemoryRates
	localSlots  *MemorySlots
	ping        func(context.Context) error
	timeout     time.Duration
	replicas    int
	refuse      bool
	log         *slog.Logger
	gauge       prometheus.Gauge

	down    atomic.Bool
	mu      sync.Mutex
	lastErr error
	since   time.Time
}

// remote reports whether decisions currently go to the shared stores.
func (f *failover) remote() bool { return f.remoteRates != nil && !f.down.Load() }

func (f *failover) fail(err error) {
	if f.down.CompareAndSwap(false, true) {
		f.mu.Lock()
		f.lastErr, f.since = err, time.Now()
		f.mu.Unlock()
		f.gauge.Set(1)
		f.log.Warn("redis unreachable; using local limits", "fallback", !f.refuse, "err", err)
	}
}

// check pings the shared stores and switches back to them when they answer.
func (f *failover) check(ctx context.Context) {
	if f.remoteRates == nil || !f.down.Load() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, f.timeout)
	err := f.ping(pctx)
	cancel()
	if err != nil {
		f.mu.Lock()
		f.lastErr = err
		f.mu.Unlock()
		return
	}
	// What the fallback admitted counts in the shared store too, so the
	// return grants no fresh burst (the shared state may have been lost
	// with a restarted Redis, or have replenished meanwhile). Many keys
	// take many round trips: the seed gets more time than one call.
	if s, ok := f.remoteRates.(tollgate.RateSeeder); ok {
		sctx, cancel := context.WithTimeout(ctx, max(20*f.timeout, 5*time.Second))
		defer cancel()
		if err := s.Seed(sctx, f.localRates.busy()); err != nil {
			f.mu.Lock()
			f.lastErr = err
			f.mu.Unlock()
			return
		}
	}
	f.down.Store(false)
	f.gauge.Set(0)
	f.log.Info("redis reachable again; limits are exact across replicas")
}

// probe pings the shared stores: a failure while on them switches to the
// fallback, an answer while on the fallback switches back.
func (f *failover) probe(ctx context.Context) {
	if f.remoteRates == nil {
		return
	}
	if f.down.Load() {
		f.check(ctx)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if err := f.ping(pctx); err != nil && ctx.Err() == nil {
		f.fail(err)
	}
}

func (f *failover) refused() error {
	return &tollgate.Error{Code: tollgate.EUnavailable, Message: "limits are unavailable; try again shortly", RetryAfter: 1}
}

// allow decides keys on the shared store, or locally when it is down.
func (f *failover) allow(ctx context.Context, keys []tollgate.RateKey) (tollgate.RateDecision, error) {
	if f.remote() {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		d, err := f.remoteRates.Allow(cctx, keys)
		cancel()
		if err == nil {
			f.localRates.follow(keys, d)
			return d, nil
		}
		if ctx.Err() != nil {
			return d, fmt.Errorf("rate limit: %w", ctx.Err())
		}
		f.fail(err)
	}
	if f.remoteRates == nil {
		return f.localRates.Allow(ctx, keys)
	}
	if f.refuse {
		return tollgate.RateDecision{}, f.refused()
	}
	local := make([]tollgate.RateKey, len(keys))
	for i, k := range keys {
		local[i] = tollgate.RateKey{Key: k.Key, Rate: divideRate(k.Rate, f.replicas)}
	}
	return f.localRates.Allow(ctx, local)
}

// acquire takes slots on the shared store, or locally when it is down. It
// returns the store that holds them, for the release.
func (f *failover) acquire(ctx context.Context, id string, keys []tollgate.SlotKey, ttl time.Duration) (tollgate.ConcurrencyStore, string, error) {
	if f.remote() {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		full, err := f.remoteSlots.Acquire(cctx, id, keys, ttl)
		cancel()
		if err == nil {
			return f.remoteSlots, full, nil
		}
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("concurrency: %w", ctx.Err())
		}
		f.fail(err)
	}
	if f.remoteSlots == nil {
		full, err := f.localSlots.Acquire(ctx, id, keys, ttl)
		return f.localSlots, full, err
	}
	if f.refuse {
		return nil, "", f.refused()
	}
	local := make([]tollgate.SlotKey, len(keys))
	for i, k := range keys {
		local[i] = tollgate.SlotKey{Key: k.Key, Limit: max(1, k.Limit/f.replicas)}
	}
	full, err := f.localSlots.Acquire(ctx, id, local, ttl)
	return f.localSlots, full, err
}

// admit decides rates and takes slots, both or neither: in one call when
// the shared store offers it, else slots first, then rates (releasing the
// slots when the rates refuse). It returns the store holding the slots.
func (f *failover) admit(ctx context.Context, id string, rates []tollgate.RateKey, slots []tollgate.SlotKey, ttl time.Duration) (tollgate.RateDecision, tollgate.ConcurrencyStore, string, error) {
	if a, ok := f.remoteRates.(tollgate.LimitAdmitter); ok && len(slots) > 0 && f.remote() {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		d, full, err := a.AdmitLimits(cctx, id, rates, slots, ttl)
		cancel()
		if err == nil {
			if full == "" {
				f.localRates.follow(rates, d)
			}
			return d, f.remoteSlots, full, nil
		}
		if ctx.Err() != nil {
			return d, nil, "", fmt.Errorf("admit: %w", ctx.Err())
		}
		f.fail(err)
	}
	var store tollgate.ConcurrencyStore
	if len(slots) > 0 {
		var full string
		var err error
		if store, full, err = f.acquire(ctx, id, slots, ttl); err != nil || full != "" {
			return tollgate.RateDecision{}, nil, full, err
		}
	}
	d := tollgate.RateDecision{Allowed: true}
	if len(rates) > 0 {
		var err error
		if d, err = f.allow(ctx, rates); err != nil || !d.Allowed {
			if store != nil {
				names := make([]string, len(slots))
				for i, s := range slots {
					names[i] = s.Key
				}
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
				_ = store.Release(rctx, id, names)
				cancel()
			}
			return d, nil, "", err
		}
	}
	return d, store, "", nil
}

// divideRate returns r shared by n replicas: the same sustained rate ÷ n,
// with a burst of at least one.
func divideRate(r tollgate.Rate, n int) tollgate.Rate {
	if n <= 1 {
		return r
	}
	per := max(1, r.N/n)
	return tollgate.Rate{N: per, Period: r.Period * time.Duration(per*n) / time.Duration(r.N)}
}

// Status is the limiter's backend state, for /readyz details.
type Status struct {
	Mode string `json:"mode"` // local, redis, fallback or refusing
	// Error is why Redis is considered unreachable (fallback, refusing).
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

func (f *failover) status() Status {
	switch {
	case f.remoteRates == nil:
		return Status{Mode: ModeLocal}
	case !f.down.Load():
		return Status{Mode: ModeRemote}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Mode: ModeFallback, Since: f.since}
	if f.refuse {
		st.Mode = ModeRefusing
	}
	if f.lastErr != nil {
		st.Error = f.lastErr.Error()
	}
	return st
}
