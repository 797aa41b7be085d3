-- Paced load for bench/run.sh: each connection waits a random delay with
-- mean DELAY_MS (environment) between a response and its next request, so
-- the offered rate is about connections * 1000 / (DELAY_MS + latency)
-- instead of "as fast as possible". wrk reports the latency of each
-- request without the delay.
local mean = tonumber(os.getenv("DELAY_MS") or "5")

function setup(thread)
  thread:set("seed", math.random(1, 1e9))
end

function init(args)
  math.randomseed(seed)
end

function delay()
  -- uniform on [0, 2*mean]: the mean is kept, the connections drift apart
  return math.random(0, 2 * mean)
end
