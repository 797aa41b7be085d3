package redis

import (
	"context"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// rateScript decides GCRA for every key of a request at once, on Redis's
// clock so replicas with skewed clocks agree. KEYS are the counters; ARGV
// holds N and the period in microseconds for each key. Every key admits and
// counts, or none counts. It returns {allowed, limit, remaining, reset_us,
// retry_us, key index} for the tightest (or the refusing) key. The
// arithmetic is that of internal/limit's gcraStep.
const rateScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = redis.call('MGET', unpack(KEYS))
local allowed, limit, remaining, reset, retry, which = 1, 0, -1, 0, 0, 0
local next = {}
for i = 1, #KEYS do
  local n = tonumber(ARGV[2*i-1])
  local em = math.floor(tonumber(ARGV[2*i]) / n)
  local window = em * n
  local tat = tonumber(tats[i]) or now
  if tat < now then tat = now end
  local nt = tat + em
  if nt - now > window then
    local r = nt - now - window
    if allowed == 1 or r > retry then
      allowed, limit, remaining, reset, retry, which = 0, n, 0, tat - now, r, i
    end
  elseif allowed == 1 then
    next[i] = nt
    local rem = math.floor((window - (nt - now)) / em)
    if remaining < 0 or rem < remaining then
      limit, remaining, reset, which = n, rem, nt - now, i
    end
  end
end
if allowed == 1 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%.0f', next[i]), 'PX', math.ceil((next[i] - now) / 1000) + 1)
  end
end
return {allowed, limit, remaining, reset, retry, which}
`

// seedScript raises rate keys to at least the state of their seeds. KEYS
// are the counters; ARGV holds each key's busy time in microseconds. The
// theoretical arrival time becomes Redis's now plus busy, unless it is
// later already.
const seedScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local busy = tonumber(ARGV[i])
  local target = now + busy
  local tat = tonumber(redis.call('GET', KEYS[i])) or 0
  if busy > 0 and tat < target then
    redis.call('SET', KEYS[i], string.format('%.0f', target), 'PX', math.ceil(busy / 1000) + 1)
  end
end
return 1
`

// seedBatch is the number of keys seeded per script call.
const seedBatch = 512

// Rates is the cluster RateStore: exact across replicas.
type Rates struct {
	db     *DB
	script *goredis.Script
	admit  *goredis.Script
	seed   *goredis.Script
}

var _ tollgate.RateSeeder = (*Rates)(nil)

// Seed raises keys to at least their seeds' state, in batches.
func (r *Rates) Seed(ctx context.Context, seeds []tollgate.RateSeed) error {
	for len(seeds) > 0 {
		n := min(len(seeds), seedBatch)
		names := make([]string, n)
		args := make([]any, n)
		for i, s := range seeds[:n] {
			names[i] = r.db.key(s.Key)
			args[i] = strconv.FormatInt(s.Busy.Microseconds(), 10)
		}
		if err := r.seed.Run(ctx, r.db.rdb, names, args...).Err(); err != nil {
			return fmt.Errorf("redis rate seed: %w", err)
		}
		seeds = seeds[n:]
	}
	return nil
}

// Allow decides every key in one atomic script call.
func (r *Rates) Allow(ctx context.Context, keys []tollgate.RateKey) (tollgate.RateDecision, error) {
	if len(keys) == 0 {
		return tollgate.RateDecision{Allowed: true}, nil
	}
	names := make([]string, len(keys))
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		names[i] = r.db.key(k.Key)
		args = append(args, k.Rate.N, strconv.FormatInt(k.Rate.Period.Microseconds(), 10))
	}
	vals, err := r.script.Run(ctx, r.db.rdb, names, args...).Int64Slice()
	if err != nil {
		return tollgate.RateDecision{}, fmt.Errorf("redis rate limit: %w", err)
	}
	if len(vals) != 6 {
		return tollgate.RateDecision{}, fmt.Errorf("redis rate limit: unexpected reply %v", vals)
	}
	return decision(vals, keys), nil
}
