package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// admitScript is rateScript and acquireScript in one atomic step. KEYS are
// the rate keys, then the slot keys. ARGV: the number of rate keys, the
// lease id, the lease ttl in ms, N and period (µs) per rate key, then the
// limit per slot key. It returns the rate reply of rateScript plus a 7th
// element: 0, or the 1-based index (among slot keys) of a full one.
const admitScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowms = math.floor(now / 1000)
local nr, id, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
for i = nr + 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', nowms)
  if not redis.call('ZSCORE', KEYS[i], id) and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + 2*nr + i - nr]) then
    return {0, 0, 0, 0, 0, 0, i - nr}
  end
end
local allowed, limit, remaining, reset, retry, which = 1, 0, -1, 0, 0, 0
local next = {}
for i = 1, nr do
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  local n = tonumber(ARGV[2 + 2*i])
  local em = math.floor(tonumber(ARGV[3 + 2*i]) / n)
  local window = em * n
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
if allowed == 0 then
  return {0, limit, remaining, reset, retry, which, 0}
end
for i = 1, nr do
  redis.call('SET', KEYS[i], string.format('%.0f', next[i]), 'PX', math.ceil((next[i] - now) / 1000) + 1)
end
for i = nr + 1, #KEYS do
  redis.call('ZADD', KEYS[i], nowms + ttl, id)
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return {1, limit, remaining, reset, retry, which, 0}
`

var _ tollgate.LimitAdmitter = (*Rates)(nil)

// AdmitLimits decides rates and takes slots in one atomic script call;
// the slots are released through Slots.
func (r *Rates) AdmitLimits(ctx context.Context, id string, rates []tollgate.RateKey, slots []tollgate.SlotKey, ttl time.Duration) (tollgate.RateDecision, string, error) {
	keys := make([]string, 0, len(rates)+len(slots))
	args := make([]any, 0, 3+2*len(rates)+len(slots))
	args = append(args, len(rates), id, strconv.FormatInt(ttl.Milliseconds(), 10))
	for _, k := range rates {
		keys = append(keys, r.db.key(k.Key))
		args = append(args, k.Rate.N, strconv.FormatInt(k.Rate.Period.Microseconds(), 10))
	}
	for _, s := range slots {
		keys = append(keys, r.db.key(s.Key))
		args = append(args, s.Limit)
	}
	if len(keys) == 0 {
		return tollgate.RateDecision{Allowed: true}, "", nil
	}
	vals, err := r.admit.Run(ctx, r.db.rdb, keys, args...).Int64Slice()
	if err != nil {
		return tollgate.RateDecision{}, "", fmt.Errorf("redis admit: %w", err)
	}
	if len(vals) != 7 {
		return tollgate.RateDecision{}, "", fmt.Errorf("redis admit: unexpected reply %v", vals)
	}
	if i := int(vals[6]); i >= 1 && i <= len(slots) {
		return tollgate.RateDecision{}, slots[i-1].Key, nil
	}
	return decision(vals[:6], rates), "", nil
}

// decision reads the six-element reply of rateScript.
func decision(vals []int64, keys []tollgate.RateKey) tollgate.RateDecision {
	d := tollgate.RateDecision{
		Allowed:    vals[0] == 1,
		Limit:      int(vals[1]),
		Remaining:  int(max(0, vals[2])),
		Reset:      time.Duration(vals[3]) * time.Microsecond,
		RetryAfter: time.Duration(vals[4]) * time.Microsecond,
	}
	if i := int(vals[5]); i >= 1 && i <= len(keys) {
		d.Key = keys[i-1].Key
	}
	return d
}
