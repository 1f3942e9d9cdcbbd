-- wrk script for bench/run: builds tRPC requests the way @trpc/client
-- (superjson transformer) sends them, and writes the run's numbers as JSON.
--
-- Env:
--   BENCH_MODE    me | login | batch | batch-jsonl
--   BENCH_TOKENS  file with one bearer token per line (me, batch, batch-jsonl)
--   BENCH_USERS   file with "email password" per line (login)
--   BENCH_BATCH   calls per batch (default 10)
--   BENCH_OUT     where done() writes the JSON summary (optional)
-- Requests rotate over the tokens/users so load spreads over many sessions.

local mode = os.getenv("BENCH_MODE") or "me"
local batch = tonumber(os.getenv("BENCH_BATCH") or "10")

-- encodeURIComponent('{"json":null,"meta":{"values":["undefined"],"v":1}}')
local UNDEF = "%7B%22json%22%3Anull%2C%22meta%22%3A%7B%22values%22%3A%5B%22undefined%22%5D%2C%22v%22%3A1%7D%7D"

local function lines(path)
  local out = {}
  if not path then return out end
  local f = io.open(path, "r")
  if not f then return out end
  for l in f:lines() do
    if l ~= "" then out[#out + 1] = l end
  end
  f:close()
  return out
end

local reqs = {}
local n = 0

function init(args)
  if mode == "login" then
    for _, l in ipairs(lines(os.getenv("BENCH_USERS"))) do
      local email, password = l:match("^(%S+)%s+(%S+)$")
      local body = '{"json":{"email":"' .. email .. '","password":"' .. password .. '"}}'
      reqs[#reqs + 1] = wrk.format("POST", "/trpc/auth.login",
        { ["content-type"] = "application/json" }, body)
    end
  else
    local path
    if mode == "me" then
      path = "/trpc/auth.me?input=" .. UNDEF
    else
      local names, inputs = {}, {}
      for i = 0, batch - 1 do
        names[#names + 1] = "auth.me"
        inputs[#inputs + 1] = "%22" .. i .. "%22%3A" .. UNDEF
      end
      path = "/trpc/" .. table.concat(names, ",") .. "?batch=1&input=%7B" ..
        table.concat(inputs, "%2C") .. "%7D"
    end
    local tokens = lines(os.getenv("BENCH_TOKENS"))
    if #tokens == 0 then tokens = { "none" } end
    for _, t in ipairs(tokens) do
      local h = { ["authorization"] = "Bearer " .. t }
      if mode == "batch-jsonl" then h["trpc-accept"] = "application/jsonl" end
      reqs[#reqs + 1] = wrk.format("GET", path, h)
    end
  end
  if #reqs == 0 then
    io.stderr:write("trpc.lua: nothing to send for mode " .. mode .. "\n")
    os.exit(2)
  end
  n = math.random(#reqs) - 1
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function done(summary, latency, requests)
  local out = os.getenv("BENCH_OUT")
  if not out then return end
  local f = assert(io.open(out, "w"))
  local e = summary.errors
  f:write(string.format(
    '{"mode":"%s","requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    mode, summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
  f:close()
end
