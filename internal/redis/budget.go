package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// budgetReserveScript adds ARGV[1] to every key if each stays within its
// limit (ARGV[1+i]). Returns {1, i} when key i is missing (nothing
// changed), {2, i} when key i has no room, {0, 0} when reserved. Amounts
// are integer micro-units, exact in Lua numbers up to 2^53.
const budgetReserveScript = `
local amount = tonumber(ARGV[1])
local missing = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i end
end
if #missing > 0 then return {1, unpack(missing)} end
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i])) + amount > tonumber(ARGV[1 + i]) then return {2, i} end
end
for i = 1, #KEYS do redis.call('INCRBY', KEYS[i], amount) end
return {0, 0}
`

// budgetAdjustScript adds ARGV[1] to every key that exists and returns the
// new values, -1 for a missing key.
const budgetAdjustScript = `
local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[i] = redis.call('INCRBY', KEYS[i], ARGV[1])
  else
    out[i] = -1
  end
end
return out
`

// BudgetCounters are the cluster's live budget counters: one integer key
// per budget and period, changed only by Lua scripts so a reservation
// checks and takes room under every key at once.
type BudgetCounters struct {
	db      *DB
	reserve *goredis.Script
	adjust  *goredis.Script
}

var _ tollgate.BudgetCounters = (*BudgetCounters)(nil)

// BudgetCounters returns the budget counters under the DB's prefix.
func (db *DB) BudgetCounters() *BudgetCounters {
	return &BudgetCounters{db: db, reserve: goredis.NewScript(budgetReserveScript), adjust: goredis.NewScript(budgetAdjustScript)}
}

// Ping reports whether Redis answers, for readiness checks.
func (b *BudgetCounters) Ping(ctx context.Context) error { return b.db.Ping(ctx) }

// Reserve adds amount under every counter, or changes nothing.
func (b *BudgetCounters) Reserve(ctx context.Context, cs []tollgate.BudgetCounter, amount tollgate.Money) ([]int, int, error) {
	keys := make([]string, len(cs))
	args := make([]any, 1, len(cs)+1)
	args[0] = strconv.FormatInt(int64(amount), 10)
	for i, c := range cs {
		keys[i] = b.db.key(c.Key)
		args = append(args, strconv.FormatInt(int64(c.Limit), 10))
	}
	res, err := b.reserve.Run(ctx, b.db.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, -1, fmt.Errorf("reserve budget: %w", err)
	}
	switch res[0] {
	case 1:
		missing := make([]int, 0, len(res)-1)
		for _, i := range res[1:] {
			missing = append(missing, int(i)-1)
		}
		return missing, -1, nil
	case 2:
		return nil, int(res[1]) - 1, nil
	}
	return nil, -1, nil
}

// Init sets a missing counter; an existing one is kept.
func (b *BudgetCounters) Init(ctx context.Context, key string, value tollgate.Money, expires time.Time) error {
	var ttl time.Duration
	if !expires.IsZero() {
		ttl = max(time.Until(expires), time.Second)
	}
	if err := b.db.rdb.SetNX(ctx, b.db.key(key), int64(value), ttl).Err(); err != nil {
		return fmt.Errorf("init budget counter: %w", err)
	}
	return nil
}

// Adjust adds delta to the counters that exist.
func (b *BudgetCounters) Adjust(ctx context.Context, keys []string, delta tollgate.Money) ([]tollgate.Money, error) {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = b.db.key(k)
	}
	res, err := b.adjust.Run(ctx, b.db.rdb, full, strconv.FormatInt(int64(delta), 10)).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("adjust budget: %w", err)
	}
	out := make([]tollgate.Money, len(res))
	for i, v := range res {
		out[i] = tollgate.Money(v)
	}
	return out, nil
}
