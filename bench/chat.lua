-- Chat load for bench/run.sh's openai target: every request is a POST of
-- the same OpenAI chat completion body (bench/chat.json: a system and a
-- user message, max_tokens set, no stream), as an OpenAI SDK sends it.
-- With DELAY_MS in the environment each connection is also paced as
-- bench/pace.lua paces it (a random delay of that mean between a response
-- and its next request); without it, requests go as fast as they are
-- answered.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
-- The body is the file CHAT_BODY names (run.sh: bench/chat.json).
local f = assert(io.open(os.getenv("CHAT_BODY") or "bench/chat.json", "rb"))
wrk.body = f:read("*a")
f:close()

local mean = tonumber(os.getenv("DELAY_MS") or "")

if mean then
  function setup(thread)
    thread:set("seed", math.random(1, 1e9))
  end

  function init(args)
    math.randomseed(seed)
  end

  function delay()
    return math.random(0, 2 * mean)
  end
end
