package limit_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/limit/limittest"
)

func TestStores(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		t.Run("rates", func(t *testing.T) { limittest.RateStore(t, limit.NewMemoryRates(nil)) })
		t.Run("slots", func(t *testing.T) { limittest.ConcurrencyStore(t, limit.NewMemorySlots()) })
		t.Run("counters", func(t *testing.T) { limittest.CounterStore(t, limit.NewMemoryCounters(nil, 0)) })
		t.Run("bans", func(t *testing.T) { limittest.BanStore(t, limit.NewMemoryBans()) })
	})
	t.Run("redis", func(t *testing.T) {
		db := MustRedis(t, redisURL(t))
		t.Run("rates", func(t *testing.T) { limittest.RateStore(t, db.Rates()) })
		t.Run("slots", func(t *testing.T) { limittest.ConcurrencyStore(t, db.Slots()) })
		t.Run("counters", func(t *testing.T) { limittest.CounterStore(t, db.Counters()) })
		t.Run("bans", func(t *testing.T) { limittest.BanStore(t, db.Bans()) })
		t.Run("rates and slots at once", func(t *testing.T) { limittest.LimitAdmitter(t, db.Rates(), db.Slots()) })
	})
}
